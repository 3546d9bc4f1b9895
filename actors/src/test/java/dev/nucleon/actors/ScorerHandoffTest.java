package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.NDManager;
import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.tokenizer.HfTokenizer;
import dev.nucleon.rollout.RolloutEngine;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Executors;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A rollout worker holds every group it hands to a reward scorer until that scorer says the result went on: when the
 * scorer disappears first, the groups go to another scorer at once (no group timeout), and a delivered group is
 * never sent again.
 */
class ScorerHandoffTest {

  private static final Path BASE = TestRuns.REPO.resolve("conf/models/quickstart-base");
  /** One actor system per test: each test's scorers are the only ones its worker sees. */
  private ActorTestKit kit;

  @BeforeEach
  void start() {
    kit = ActorTestKit.create();
  }

  @AfterEach
  void stop() {
    kit.shutdownTestKit();
  }

  /**
   * A scorer that takes hand-offs and never answers (its node is about to die), registered like a real one (so
   * workers ask for work); it passes on what it gets to {@code seen}.
   */
  static Behavior<RewardScorer.Command> silent(ActorRef<RewardScorer.Command> seen) {
    return Behaviors.setup(ctx -> {
      ctx.getSystem().receptionist().tell(Receptionist.register(RewardScorer.KEY, ctx.getSelf()));
      return Behaviors.receiveMessage(m -> {
        seen.tell(m);
        return Behaviors.same();
      });
    });
  }

  @Test
  void groupsHeldByALostScorerGoToAnotherAtOnceAndDeliveredOnesAreNotSentAgain() throws Exception {
    Engines.start();
    ModelFiles.Checkpoint ckpt = ModelFiles.read(BASE);
    var pool = Executors.newFixedThreadPool(2);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ckpt.instantiate(m);
        HfTokenizer tok = HfTokenizer.load(BASE)) {
      RolloutEngine engine = new RolloutEngine(new Generator(model, 0), tok, SamplingParams.greedy(4));
      NucleonMetrics metrics = new NucleonMetrics("test", List.of("rollout", "reward"));
      TestProbe<RewardScorer.Command> doomedSaw = kit.createTestProbe();
      ActorRef<RewardScorer.Command> doomed = kit.spawn(silent(doomedSaw.getRef()), "doomed");
      TestProbe<Coordinator.Command> coordinator = kit.createTestProbe();
      TestProbe<ReplayActor.Command> replay = kit.createTestProbe();
      kit.spawn(RolloutWorker.create("rollout-h", engine, coordinator.getRef(), 2, metrics));

      // the worker asks for work once it knows a scorer; it gets two groups
      Coordinator.RequestWork ask = coordinator.expectMessageClass(Coordinator.RequestWork.class,
          Duration.ofSeconds(30));
      List<PromptGroup> groups = List.of(
          new PromptGroup(11, 0, "12+30=", "42", Map.of(), 2, 1),
          new PromptGroup(12, 3, "7+8=", "15", Map.of(), 2, 2));
      ask.replyTo().tell(new Coordinator.Work(groups, replay.getRef()));
      Set<Long> handedToDoomed = new TreeSet<>();
      for (int i = 0; i < 2; i++) {
        handedToDoomed.add(doomedSaw.expectMessageClass(RewardScorer.ScoreGroup.class, Duration.ofSeconds(60))
            .group().promptId());
      }
      assertEquals(Set.of(11L, 12L), handedToDoomed);

      // a working scorer appears and the silent one goes away: both groups reach the replay buffer through it
      ActorRef<RewardScorer.Command> good = kit.spawn(RewardScorer.create("scorer-g",
          request -> RewardResult.ok(request.completion().startsWith(request.groundTruth()) ? 1 : 0), "test", pool,
          2, metrics), "good");
      kit.stop(doomed);
      Set<String> scored = new TreeSet<>();
      for (int i = 0; i < 2; i++) {
        ReplayActor.Scored s = replay.expectMessageClass(ReplayActor.Scored.class, Duration.ofSeconds(30));
        assertEquals(2, s.trajectories().size());
        scored.add(s.group().promptId() + "/" + s.group().attempt());
      }
      assertEquals(Set.of("11/0", "12/3"), scored, "each group once, with its attempt");

      // once delivered, a group is not the worker's any more: losing the scorer that delivered it sends nothing
      TestProbe<RewardScorer.Command> laterSaw = kit.createTestProbe();
      kit.spawn(silent(laterSaw.getRef()), "later");
      Thread.sleep(500); // the listing with both scorers reaches the worker
      kit.stop(good);
      laterSaw.expectNoMessage(Duration.ofSeconds(2));
      replay.expectNoMessage(Duration.ZERO);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aPromptTheModelCannotTakeIsRefusedAloneWithItsReason() throws Exception {
    Engines.start();
    ModelFiles.Checkpoint ckpt = ModelFiles.read(BASE);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ckpt.instantiate(m);
        HfTokenizer tok = HfTokenizer.load(BASE)) {
      RolloutEngine engine = new RolloutEngine(new Generator(model, 0), tok, SamplingParams.greedy(4));
      NucleonMetrics metrics = new NucleonMetrics("test", List.of("rollout"));
      TestProbe<RewardScorer.Command> scorerSaw = kit.createTestProbe();
      kit.spawn(silent(scorerSaw.getRef()), "scorer-r");
      TestProbe<Coordinator.Command> coordinator = kit.createTestProbe();
      TestProbe<ReplayActor.Command> replay = kit.createTestProbe();
      kit.spawn(RolloutWorker.create("rollout-r", engine, coordinator.getRef(), 2, metrics));
      Coordinator.RequestWork ask = coordinator.expectMessageClass(Coordinator.RequestWork.class,
          Duration.ofSeconds(30));
      // the model's context is 16 tokens and 4 are for the answer: this prompt does not fit
      ask.replyTo().tell(new Coordinator.Work(List.of(
          new PromptGroup(21, 2, "1+1+1+1+1+1+1+1+1+1+1+1=", "12", Map.of(), 2, 1),
          new PromptGroup(22, 0, "3+4=", "7", Map.of(), 2, 2)), replay.getRef()));
      Coordinator.GroupsRejected rejected = coordinator.expectMessageClass(Coordinator.GroupsRejected.class,
          Duration.ofSeconds(30));
      assertEquals(List.of(21L), rejected.promptIds());
      assertEquals(List.of(2), rejected.attempts());
      assertEquals(List.of("too-long"), rejected.reasons());
      RewardScorer.ScoreGroup sampled = scorerSaw.expectMessageClass(RewardScorer.ScoreGroup.class,
          Duration.ofSeconds(60));
      assertEquals(22L, sampled.group().promptId(), "the rest of the batch is sampled");
      scorerSaw.expectNoMessage(Duration.ofMillis(500));
    }
  }
}
