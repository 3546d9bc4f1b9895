package dev.nucleon.actors.coordinator;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.nucleon.actors.RunReporter;
import dev.nucleon.actors.RunSettings;
import dev.nucleon.actors.run.RunConfig;
import dev.nucleon.rollout.data.Dataset;
import dev.nucleon.rollout.data.DatasetSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * In deterministic mode one worker samples every group: a second worker asking for work fails the run with the
 * reason (the coordinator's failure reaches the run reporter), instead of silently splitting the batches.
 */
class DeterministicCoordinatorTest {

  private final ActorTestKit kit = ActorTestKit.create("deterministic-coordinator",
      ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = ERROR"));

  @AfterEach
  void stop() {
    kit.shutdownTestKit();
  }

  @Test
  void aSecondWorkerFailsTheRunWithTheReason() {
    Path repo = Path.of("..").toAbsolutePath().normalize();
    var config = RunConfig.load(repo.resolve("conf/quickstart.conf"), Map.of(
        "nucleon.model.path", "\"" + repo.resolve("conf/models/quickstart-base") + "\"",
        "nucleon.run.deterministic", "true",
        "nucleon.algorithm.max-staleness", "0",
        "nucleon.run.eval.size", "4"));
    RunSettings settings = RunSettings.from(config);
    Dataset data = Dataset.load(DatasetSettings.from(config));
    TestProbe<RunReporter.Command> reporter = kit.createTestProbe();
    ActorRef<Coordinator.Command> coordinator = kit.spawn(
        Coordinator.create(settings, new DatasetPromptSource(data), reporter.getRef(), null, 0));
    TestProbe<Coordinator.WorkReply> a = kit.createTestProbe();
    TestProbe<Coordinator.WorkReply> b = kit.createTestProbe();
    coordinator.tell(new Coordinator.RequestWork("worker-a", 0, 32, a.getRef()));
    a.expectMessageClass(Coordinator.WorkReply.class, Duration.ofSeconds(5));
    coordinator.tell(new Coordinator.RequestWork("worker-a", 0, 32, a.getRef()));
    a.expectMessageClass(Coordinator.WorkReply.class, Duration.ofSeconds(5)); // the same worker again is fine
    coordinator.tell(new Coordinator.RequestWork("worker-b", 0, 32, b.getRef()));
    RunReporter.Failed failed = reporter.fishForMessage(Duration.ofSeconds(5),
        m -> m instanceof RunReporter.Failed
            ? org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.complete()
            : org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.continueAndIgnore())
        .stream().filter(RunReporter.Failed.class::isInstance).map(RunReporter.Failed.class::cast).findFirst()
        .orElseThrow();
    assertTrue(failed.reason().contains("one rollout worker") && failed.reason().contains("worker-b"),
        failed.reason());
    b.expectNoMessage(Duration.ofMillis(200));
  }
}
