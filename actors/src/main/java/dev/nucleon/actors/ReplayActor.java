package dev.nucleon.actors;

import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.actors.serialization.NucleonMessage;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.replay.AddResult;
import dev.nucleon.replay.DropReason;
import dev.nucleon.replay.DroppedGroup;
import dev.nucleon.replay.ReplayBuffer;
import dev.nucleon.replay.TrainingBatch;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * Drives the replay buffer: scored groups arrive from reward scorers, are admitted by the coordinator (only the
 * current attempt of an in-flight prompt), assembled into groups with advantages, filtered (staleness,
 * zero-variance, ...), and cut into training batches that the learner pulls one at a time.
 */
public final class ReplayActor extends AbstractBehavior<ReplayActor.Command> {

  public static final ServiceKey<Command> KEY = ServiceKey.create(Command.class, "nucleon-replay");

  public sealed interface Command {}

  /** A prompt group's scored trajectories. */
  public record Scored(PromptGroup group, List<ScoredTrajectory> trajectories) implements Command, NucleonMessage {}

  /** The learner is idle and takes the next batch. */
  public record LearnerReady(ActorRef<LearnerActor.Command> learner) implements Command {}

  /** The learner published a new policy version. */
  public record VersionChanged(int version) implements Command {}

  /** The data ran out: the next batch is cut from whatever is queued, even short of a full one. */
  public record Flush() implements Command, NucleonMessage {}

  private record Admitted(Coordinator.Admission admission) implements Command {}

  private record Key(long promptId, int attempt) {}

  private final ReplayBuffer buffer;
  private final ActorRef<Coordinator.Command> coordinator;
  private final NucleonMetrics metrics;
  private final ActorRef<Coordinator.Admission> admissions;
  private final Map<Key, Scored> awaiting = new HashMap<>();
  private ActorRef<LearnerActor.Command> idleLearner;
  private boolean flush;

  public static Behavior<Command> create(ReplayBuffer buffer, ActorRef<Coordinator.Command> coordinator,
      NucleonMetrics metrics) {
    return Behaviors.setup(ctx -> new ReplayActor(ctx, buffer, coordinator, metrics));
  }

  private ReplayActor(ActorContext<Command> ctx, ReplayBuffer buffer, ActorRef<Coordinator.Command> coordinator,
      NucleonMetrics metrics) {
    super(ctx);
    this.buffer = buffer;
    this.coordinator = coordinator;
    this.metrics = metrics;
    this.admissions = ctx.messageAdapter(Coordinator.Admission.class, Admitted::new);
    ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(Scored.class, this::onScored)
        .onMessage(Admitted.class, this::onAdmitted)
        .onMessage(LearnerReady.class, this::onLearnerReady)
        .onMessage(VersionChanged.class, this::onVersionChanged)
        .onMessage(Flush.class, f -> {
          flush = true;
          offerBatch();
          return this;
        })
        .build();
  }

  private Behavior<Command> onScored(Scored s) {
    awaiting.put(new Key(s.group().promptId(), s.group().attempt()), s);
    coordinator.tell(new Coordinator.GroupReady(s.group().promptId(), s.group().attempt(), admissions));
    return this;
  }

  private Behavior<Command> onAdmitted(Admitted a) {
    Scored s = awaiting.remove(new Key(a.admission().promptId(), a.admission().attempt()));
    if (s == null || !a.admission().admitted()) {
      return this;
    }
    List<Long> dropped = new ArrayList<>();
    List<String> reasons = new ArrayList<>();
    List<Long> stale = new ArrayList<>();
    boolean anyStale = false;
    for (ScoredTrajectory t : s.trajectories()) {
      AddResult r = buffer.add(t);
      if (r.sampleDropped() != null) {
        metrics.replayDropped(r.sampleDropped().label(), 1);
        anyStale |= r.sampleDropped() == DropReason.STALE;
      }
      if (r.group() == AddResult.GroupStatus.DROPPED) {
        boolean isStale = r.groupDropped() == DropReason.STALE || (r.groupDropped() == DropReason.EMPTY && anyStale);
        if (isStale) {
          stale.add(r.promptId());
        } else {
          dropped.add(r.promptId());
          reasons.add(r.groupDropped().label());
        }
      }
    }
    report(dropped, reasons, stale);
    offerBatch();
    return this;
  }

  private Behavior<Command> onLearnerReady(LearnerReady r) {
    idleLearner = r.learner();
    offerBatch();
    return this;
  }

  private Behavior<Command> onVersionChanged(VersionChanged v) {
    List<Long> stale = new ArrayList<>();
    List<Long> dropped = new ArrayList<>();
    List<String> reasons = new ArrayList<>();
    for (DroppedGroup g : buffer.setPolicyVersion(v.version())) {
      if (g.reason() == DropReason.STALE || g.reason() == DropReason.EMPTY) {
        stale.add(g.promptId());
      } else {
        dropped.add(g.promptId());
        reasons.add(g.reason().label());
      }
    }
    report(dropped, reasons, stale);
    offerBatch();
    return this;
  }

  private void report(List<Long> dropped, List<String> reasons, List<Long> stale) {
    if (!dropped.isEmpty() || !stale.isEmpty()) {
      metrics.replayDropped("group", dropped.size() + stale.size());
      coordinator.tell(new Coordinator.GroupsFiltered(dropped, reasons, stale));
    }
    metrics.replayGroups(buffer.readyGroups());
  }

  private void offerBatch() {
    if (idleLearner == null) {
      return;
    }
    Optional<TrainingBatch> batch = flush ? buffer.flush() : buffer.pollBatch();
    if (batch.isPresent()) {
      // staleness as the learner trains it (the version at the cut, as the step row's staleness_max); measured on
      // arrival instead, a trajectory trained one version later counted as fresh
      for (dev.nucleon.replay.TrainingSample t : batch.get().samples()) {
        metrics.trajectoryStaleness(batch.get().policyVersion() - t.trajectory().oldestVersion());
      }
      idleLearner.tell(new LearnerActor.Train(batch.get()));
      idleLearner = null;
      metrics.replayGroups(buffer.readyGroups());
    }
  }
}
