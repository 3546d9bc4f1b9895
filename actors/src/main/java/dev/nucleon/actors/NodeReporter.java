package dev.nucleon.actors;

import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.NucleonMetrics;
import java.time.Duration;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/** Pushes the node's figures to the coordinator every few seconds, for the cluster-wide status view. */
public final class NodeReporter {

  private enum Tick {
    INSTANCE
  }

  private NodeReporter() {}

  public static Behavior<Object> create(NucleonMetrics metrics, ActorRef<Coordinator.Command> coordinator,
      Duration every) {
    return Behaviors.withTimers(timers -> {
      timers.startTimerWithFixedDelay(Tick.INSTANCE, Duration.ofMillis(200), every);
      return Behaviors.receiveMessage(m -> {
        coordinator.tell(new Coordinator.NodeReport(metrics.snapshot()));
        return Behaviors.same();
      });
    });
  }
}
