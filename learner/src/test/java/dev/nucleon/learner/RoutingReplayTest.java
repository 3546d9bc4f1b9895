package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.RoutedExperts;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.TinyModels;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.GenerationResult;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.replay.FailedRewardPolicy;
import dev.nucleon.replay.MicroBatchCost;
import dev.nucleon.replay.ReplayBuffer;
import dev.nucleon.replay.ReplaySettings;
import dev.nucleon.replay.TrainingBatch;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Routing replay end to end on the host: a mixture-of-experts rollout records the experts of every position it read,
 * the trajectories carry them, and the learner's forward pass either replays them or measures how often its own
 * routers disagree.
 */
class RoutingReplayTest {

  private static final LlamaConfig SHAPE = TinyModels.qwen3MoeLike();
  private static final int GROUP = 4;

  /**
   * Sampled and scored by the same weights, the learner with replay computes the sampler's log-probs (so every
   * recorded expert landed on the position it was recorded for) and its routers agree with every recorded choice.
   */
  @Test
  void replayedExpertsReproduceTheSamplersLogProbs() {
    Engines.start();
    Map<String, HostTensor> weights = weights(0);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel rollout = LlamaModel.create(SHAPE, m, weights);
        LlamaModel policy = LlamaModel.create(SHAPE, m, weights);
        Learner learner = learner(policy)) {
      TrainingBatch batch = batch(rollout, 0);
      for (var s : batch.samples()) {
        Trajectory t = s.trajectory();
        assertEquals(t.totalTokens() - 1, t.routedExperts().positions(), "every position the rollout read");
        assertEquals(1, t.routedExperts().layers());
      }
      StepStats st = learner.train(batch);
      assertTrue(st.logProbGap().tokens() > 0);
      assertTrue(st.logProbGap().max() < 1e-4, "sampler vs learner log-probs with replay: " + st.logProbGap());
      assertEquals(0.0, st.routing().disagreement(), "same weights: the routers agree with the rollout's");
      // a group's prompt is read once for its samples (shared prompts), each completion but its last token per sample
      long read = batch.samples().stream().map(s -> List.of(s.trajectory().promptId(), s.trajectory().promptTokens()
          .length)).distinct().mapToLong(p -> (int) p.get(1)).sum()
          + batch.samples().stream().mapToLong(s -> s.trajectory().completionTokens().length - 1).sum();
      assertEquals(read, st.routing().compared(), "one comparison per recorded position read and sparse layer");
      assertTrue(st.routing().loadImbalance() >= 1, "load imbalance: most tokens per expert over the mean");
    }
  }

  /**
   * A learner whose routers moved (here: router weights of another seed) disagrees with the rollout's choices, and
   * says how often; with replay its forward uses the rollout's experts, which brings its log-probs nearer the
   * sampler's than its own routers' choices do.
   */
  @Test
  void aLearnerWhoseRoutersMovedReportsDisagreementAndReplayNarrowsTheGap() {
    Engines.start();
    Map<String, HostTensor> sampled = weights(0);
    Map<String, HostTensor> moved = new java.util.LinkedHashMap<>(sampled);
    String router = "model.layers.1.mlp.gate.weight";
    HostTensor other = weights(1).get(router);
    float[] mix = sampled.get(router).data().clone();
    for (int i = 0; i < mix.length; i++) {
      mix[i] = 0.7f * mix[i] + 0.3f * other.data()[i];
    }
    moved.put(router, new HostTensor(router, other.shape(), mix));
    LogProbGap[] gaps = new LogProbGap[2];
    double[] disagreement = new double[2];
    for (LearnerSettings.RoutingReplay mode : LearnerSettings.RoutingReplay.values()) {
      try (NDManager m = NDManager.newBaseManager(); LlamaModel rollout = LlamaModel.create(SHAPE, m, sampled);
          LlamaModel policy = LlamaModel.create(SHAPE, m, moved); Learner learner = learner(policy)) {
        learner.setRoutingReplay(mode);
        StepStats st = learner.train(batch(rollout, 0));
        gaps[mode.ordinal()] = st.logProbGap();
        disagreement[mode.ordinal()] = st.routing().disagreement();
      }
    }
    System.out.printf("moved routers: disagreement %.3f; log-prob gap without replay %s, with replay %s%n",
        disagreement[0], gaps[0], gaps[1]);
    assertTrue(disagreement[0] > 0.05, "the moved routers disagree with the rollout: " + disagreement[0]);
    assertEquals(disagreement[0], disagreement[1], 1e-12, "measured alike with and without replay");
    assertTrue(gaps[1].mean() < gaps[0].mean(), "replay narrows the mean gap: " + gaps[1] + " vs " + gaps[0]);
  }

  /**
   * A model built so that routing sits on near ties (every expert's router row the same vector up to 1e-7): the
   * rollout's decode path and the learner's training path round differently, so their routers choose differently
   * for some tokens. With replay off the disagreement shows and the learner's log-probs leave the sampler's; with
   * replay on they equal the sampler's within the dense tolerance.
   */
  @Test
  void onNearTiesReplayKeepsTheLearnerOnTheSamplersLogProbs() {
    Engines.start();
    Map<String, HostTensor> tied = new java.util.LinkedHashMap<>(weights(0));
    String router = "model.layers.1.mlp.gate.weight";
    HostTensor r = tied.get(router);
    float[] rows = r.data().clone();
    int d = SHAPE.hiddenSize();
    java.util.SplittableRandom rng = new java.util.SplittableRandom(3);
    for (int e = 1; e < SHAPE.moe().numExperts(); e++) {
      for (int i = 0; i < d; i++) {
        rows[e * d + i] = rows[i] + (float) ((rng.nextDouble() - 0.5) * 2e-7);
      }
    }
    tied.put(router, new HostTensor(router, r.shape(), rows));
    // the experts themselves differ a lot, so a different choice moves the log-probs
    String experts = "model.layers.1.mlp.experts.gate_up_proj";
    HostTensor x = tied.get(experts);
    float[] big = x.data().clone();
    for (int i = 0; i < big.length; i++) {
      big[i] *= 20;
    }
    tied.put(experts, new HostTensor(experts, x.shape(), big));
    LogProbGap[] gaps = new LogProbGap[2];
    double[] disagreement = new double[2];
    for (LearnerSettings.RoutingReplay mode : LearnerSettings.RoutingReplay.values()) {
      try (NDManager m = NDManager.newBaseManager(); LlamaModel rollout = LlamaModel.create(SHAPE, m, tied);
          LlamaModel policy = LlamaModel.create(SHAPE, m, tied); Learner learner = learner(policy)) {
        learner.setRoutingReplay(mode);
        StepStats st = learner.train(batch(rollout, 0));
        gaps[mode.ordinal()] = st.logProbGap();
        disagreement[mode.ordinal()] = st.routing().disagreement();
      }
    }
    System.out.printf("near ties: disagreement %.3f; log-prob gap without replay %s, with replay %s%n",
        disagreement[0], gaps[0], gaps[1]);
    assertTrue(disagreement[0] > 0, "the routers sit on ties, yet never disagreed");
    assertTrue(gaps[0].max() > 1e-3, "without replay a flipped route moves the log-probs: " + gaps[0]);
    assertTrue(gaps[1].max() < 1e-4, "with replay the learner computes the sampler's log-probs: " + gaps[1]);
  }

  /**
   * With the load-balancing loss on and no policy gradient (every reward in a group equal), training moves the
   * routers toward balance: the reported loss falls step by step on the same batch.
   */
  @Test
  void theLoadBalancingLossBalancesTheRouters() {
    Engines.start();
    Map<String, HostTensor> skewed = new java.util.LinkedHashMap<>(weights(0));
    String router = "model.layers.1.mlp.gate.weight";
    HostTensor r = skewed.get(router);
    float[] rows = r.data().clone();
    for (int i = 0; i < SHAPE.hiddenSize(); i++) {
      rows[i] += 0.5f; // expert 0 wins for most tokens
    }
    skewed.put(router, new HostTensor(router, r.shape(), rows));
    try (NDManager m = NDManager.newBaseManager(); LlamaModel rollout = LlamaModel.create(SHAPE, m, skewed);
        LlamaModel policy = LlamaModel.create(SHAPE, m, skewed); Learner learner = learner(policy)) {
      learner.setRoutingReplay(LearnerSettings.RoutingReplay.OFF);
      learner.setRouterAuxLoss(1.0);
      TrainingBatch batch = batch(rollout, 0, true);
      double first = Double.NaN;
      double last = Double.NaN;
      for (int step = 0; step < 5; step++) {
        StepStats st = learner.train(batch);
        assertEquals(0.0, st.loss(), 1e-6, "equal rewards: no policy gradient");
        last = st.routing().auxLoss();
        first = step == 0 ? last : first;
      }
      System.out.printf("load-balancing loss: %.4f -> %.4f (2 when balanced)%n", first, last);
      assertTrue(first > 2.2, "expert 0 takes most tokens at first: " + first);
      assertTrue(last < first - 0.05, "the loss balances the routers: " + first + " -> " + last);
    }
  }

  /** Recorded experts of another model's shape are refused with the reason, not replayed onto the wrong layers. */
  @Test
  void expertsFromAnotherModelAreRefused() {
    Engines.start();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel policy = LlamaModel.create(SHAPE, m, weights(0));
        Learner learner = learner(policy)) {
      TrainingBatch batch = batch(policy, 0);
      List<ScoredTrajectory> rebuilt = new ArrayList<>();
      for (var s : batch.samples()) {
        Trajectory t = s.trajectory();
        RoutedExperts r = t.routedExperts();
        byte[] twoLayers = new byte[r.experts().length * 2];
        rebuilt.add(new ScoredTrajectory(new Trajectory(t.promptId(), t.sampleIndex(), t.promptTokens(),
            t.completionTokens(), t.behaviourLogProbs(), t.tokenVersions(), t.finishReason(), t.completionText(),
            new RoutedExperts(2, r.topK(), twoLayers)), RewardResult.ok(s.reward())));
      }
      var e = assertThrows(IllegalArgumentException.class, () -> learner.train(buffered(rebuilt)));
      assertTrue(e.getMessage().contains("experts of 2 sparse layers"), e.getMessage());
    }
  }

  /** Random weights with the routers scaled up, so that their choices are decided, not near ties. */
  private static Map<String, HostTensor> weights(long seed) {
    Map<String, HostTensor> w = new java.util.LinkedHashMap<>(LlamaModel.randomWeights(SHAPE, seed));
    w.replaceAll((name, t) -> {
      if (!name.endsWith("mlp.gate.weight")) {
        return t;
      }
      float[] v = t.data().clone();
      for (int i = 0; i < v.length; i++) {
        v[i] *= 50;
      }
      return new HostTensor(name, t.shape(), v);
    });
    return w;
  }

  private static Learner learner(LlamaModel policy) {
    return new Learner(policy, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0);
  }

  /** Groups of completions sampled by {@code rollout} at temperature 1, with rewards that differ within a group. */
  private static TrainingBatch batch(LlamaModel rollout, int version) {
    return batch(rollout, version, false);
  }

  /** @param equalRewards every sample the same reward (no advantage, no policy gradient) */
  private static TrainingBatch batch(LlamaModel rollout, int version, boolean equalRewards) {
    List<GenerationRequest> requests = new ArrayList<>();
    List<int[]> prompts = List.of(new int[] {1, 5, 9, 13}, new int[] {1, 22, 7});
    for (int[] p : prompts) {
      for (int g = 0; g < GROUP; g++) {
        requests.add(new GenerationRequest(p, SamplingParams.sample(1f, 6), 100L * requests.size() + 7));
      }
    }
    List<GenerationResult> results;
    try (Generator generator = new Generator(rollout, version)) {
      results = generator.generate(requests);
    }
    List<ScoredTrajectory> out = new ArrayList<>();
    for (int i = 0; i < results.size(); i++) {
      GenerationResult r = results.get(i);
      out.add(new ScoredTrajectory(new Trajectory(i / GROUP, i % GROUP, requests.get(i).prompt(), r.tokens(),
          r.samplingLogProbs(), r.versions(), r.finishReason(), "", r.routedExperts()),
          RewardResult.ok(equalRewards ? 1 : i % GROUP)));
    }
    return buffered(out);
  }

  private static TrainingBatch buffered(List<ScoredTrajectory> trajectories) {
    ReplayBuffer replay = new ReplayBuffer(new ReplaySettings(GROUP, "grpo", 1e-4, 2, 1, false, false, 0, 40,
        MicroBatchCost.PADDED, FailedRewardPolicy.DROP_SAMPLE));
    trajectories.forEach(replay::add);
    return replay.pollBatch().orElseThrow();
  }
}
