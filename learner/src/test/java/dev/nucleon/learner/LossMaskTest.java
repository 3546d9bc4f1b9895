package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.replay.TrainingSample;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Multi-turn trajectories interleave the policy's tokens with an environment's (loss mask 0): those carry no loss,
 * so they contribute exactly zero gradient, token by token, under every loss variant, whatever log-probs or versions
 * they were given.
 */
class LossMaskTest {

  private static final int[][] PROMPTS = {{1, 4, 7}, {1, 9}, {1, 3, 5, 11}};
  private static final int[][] COMPLETIONS = {{6, 2, 8, 2, 9}, {12, 5}, {3, 3, 10, 4}};
  /** Environment tokens in the middle, at the start, none. */
  private static final byte[][] MASKS = {{1, 0, 0, 1, 1}, {1, 1}, {0, 0, 1, 1}};
  private static final float[] ADVANTAGES = {1.3f, -0.7f, 0.4f};

  NDManager manager;
  LlamaModel model;
  LlamaModel reference;

  @BeforeEach
  void setUp() {
    Engines.start();
    manager = NDManager.newBaseManager();
    model = LossGradientTest.scaled(LlamaModel.random(LossGradientTest.SHAPE, manager, 21), 6f);
    reference = LossGradientTest.scaled(LlamaModel.random(LossGradientTest.SHAPE, manager, 22), 6f);
    model.setTrainable(true);
  }

  @AfterEach
  void tearDown() {
    model.close();
    reference.close();
    manager.close();
  }

  /**
   * The samples, behaviour log-probs near the current ones on the policy's tokens and {@code environment} on the
   * others (an environment's tokens were never sampled: whatever they hold must not matter), versions likewise.
   */
  private List<TrainingSample> samples(float environment, int environmentVersion) {
    List<TrainingSample> out = new ArrayList<>();
    float[][] current = currentLogProbs();
    for (int i = 0; i < PROMPTS.length; i++) {
      int n = COMPLETIONS[i].length;
      float[] behaviour = new float[n];
      int[] versions = new int[n];
      for (int j = 0; j < n; j++) {
        boolean policy = MASKS[i][j] == 1;
        behaviour[j] = policy ? current[i][j] + 0.02f * (j % 3 - 1) : environment;
        versions[j] = policy ? 0 : environmentVersion;
      }
      Trajectory t = new Trajectory(i, 0, PROMPTS[i], COMPLETIONS[i], behaviour, versions, FinishReason.STOP, "",
          null, MASKS[i]);
      out.add(new TrainingSample(t, ADVANTAGES[i], ADVANTAGES[i]));
    }
    return out;
  }

  private float[][] currentLogProbs() {
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = manager.newSubManager()) {
      List<TrainingSample> plain = new ArrayList<>();
      for (int i = 0; i < PROMPTS.length; i++) {
        int n = COMPLETIONS[i].length;
        plain.add(new TrainingSample(new Trajectory(i, 0, PROMPTS[i], COMPLETIONS[i], new float[n], new int[n],
            FinishReason.STOP, ""), 0, 0));
      }
      float[] flat = Learner.MicroBatch.of(m, plain).logProbs(model, LossGradientTest.TEMPERATURE).toFloatArray();
      float[][] out = new float[PROMPTS.length][];
      int k = 0;
      for (int i = 0; i < PROMPTS.length; i++) {
        out[i] = java.util.Arrays.copyOfRange(flat, k, k + COMPLETIONS[i].length);
        k += COMPLETIONS[i].length;
      }
      return out;
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  private static long trained(List<TrainingSample> samples) {
    return samples.stream().mapToLong(s -> s.trajectory().trainedTokens()).sum();
  }

  /** The loss's gradient with respect to each completion token's log-prob, in the samples' order. */
  private float[] perTokenGradient(LossSettings s, List<TrainingSample> samples) {
    try (NDManager m = manager.newSubManager()) {
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
      NDArray logp = mb.logProbs(model, LossGradientTest.TEMPERATURE).stopGradient();
      NDArray ref = s.klCoef() > 0 ? mb.logProbs(reference, LossGradientTest.TEMPERATURE).stopGradient() : null;
      logp.setRequiresGradient(true);
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        gc.backward(PolicyLoss.compute(s, new PolicyLoss.Inputs(logp, mb.behaviour(), mb.advantages(), mb.mask(),
            mb.lengths(), ref), PolicyLoss.normalizer(s, trained(samples), samples.size())).loss());
      }
      return logp.getGradient().toFloatArray();
    }
  }

  /** The loss's gradient with respect to every weight of the model. */
  private Map<String, float[]> weightGradients(LossSettings s, List<TrainingSample> samples) {
    return LossGradientTest.autograd(model, manager, m -> {
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
      NDArray logp = mb.logProbs(model, LossGradientTest.TEMPERATURE);
      NDArray ref = s.klCoef() > 0 ? mb.logProbs(reference, LossGradientTest.TEMPERATURE).stopGradient() : null;
      return PolicyLoss.compute(s, new PolicyLoss.Inputs(logp, mb.behaviour(), mb.advantages(), mb.mask(),
          mb.lengths(), ref), PolicyLoss.normalizer(s, trained(samples), samples.size())).loss();
    });
  }

  @ParameterizedTest
  @ValueSource(strings = {"ppo-token-mean", "ppo-sequence-mean", "ppo-constant", "tis", "kl-k1", "kl-k3"})
  void onlyThePolicysTokensHaveGradient(String variant) {
    LossSettings s = LossGradientTest.variant(variant);
    float[] grad = perTokenGradient(s, samples(-3f, 5));
    int k = 0;
    for (int i = 0; i < COMPLETIONS.length; i++) {
      for (int j = 0; j < COMPLETIONS[i].length; j++, k++) {
        if (MASKS[i][j] == 0) {
          assertEquals(0f, grad[k], "sample " + i + " token " + j + " is the environment's: no gradient");
        } else {
          assertNotEquals(0f, grad[k], "sample " + i + " token " + j + " is the policy's: it has gradient");
          assertTrue(Float.isFinite(grad[k]));
        }
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"ppo-token-mean", "ppo-sequence-mean", "tis", "kl-k3"})
  void whatAnEnvironmentsTokensHoldChangesNoWeightGradient(String variant) {
    LossSettings s = LossGradientTest.variant(variant);
    Map<String, float[]> plausible = weightGradients(s, samples(-2f, 0));
    Map<String, float[]> garbage = weightGradients(s, samples(Float.NEGATIVE_INFINITY, 12345));
    for (var e : plausible.entrySet()) {
      assertArrayEquals(e.getValue(), garbage.get(e.getKey()), e.getKey());
    }
    // and they are not trivially zero
    assertTrue(plausible.values().stream().anyMatch(g -> {
      for (float x : g) {
        if (x != 0f) {
          return true;
        }
      }
      return false;
    }));
  }

  /**
   * Through replay and the learner's step: the step's token count and its loss normalizer count the policy's tokens
   * only (a loss computed over the batch at the same weights with that normalizer is the step's loss).
   */
  @org.junit.jupiter.api.Test
  void aTrainingStepCountsAndNormalizesByThePolicysTokens() {
    dev.nucleon.replay.ReplayBuffer replay = new dev.nucleon.replay.ReplayBuffer(new dev.nucleon.replay.ReplaySettings(
        4, "grpo", 1e-4, 2, 1, false, false, 0, 40, dev.nucleon.replay.MicroBatchCost.PADDED,
        dev.nucleon.replay.FailedRewardPolicy.DROP_SAMPLE));
    java.util.SplittableRandom rng = new java.util.SplittableRandom(7);
    for (int p = 0; p < 2; p++) {
      for (int g = 0; g < 4; g++) {
        int n = 5;
        int[] completion = new int[n];
        float[] behaviour = new float[n];
        byte[] mask = {1, 0, 0, 1, 1}; // an observation between two model turns
        for (int i = 0; i < n; i++) {
          completion[i] = 2 + rng.nextInt(10); // the test model's vocabulary is 13
          behaviour[i] = (float) (-3.3 + rng.nextDouble() * 0.6);
        }
        Trajectory t = new Trajectory(p, g, new int[] {1, 3 + p}, completion, behaviour, new int[n],
            FinishReason.LENGTH, "", null, mask);
        replay.add(new dev.nucleon.core.rollout.ScoredTrajectory(t,
            dev.nucleon.core.reward.RewardResult.ok(g % 2 == 0 ? 1 : 0.25 * g)));
      }
    }
    dev.nucleon.replay.TrainingBatch batch = replay.pollBatch().orElseThrow();
    LossSettings s = LossGradientTest.variant("ppo-token-mean");
    long trained = trained(batch.samples());
    assertEquals(8 * 3, trained);
    double expected;
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = manager.newSubManager()) {
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, batch.samples());
      expected = PolicyLoss.compute(s, new PolicyLoss.Inputs(mb.logProbs(model, 1f), mb.behaviour(),
          mb.advantages(), mb.mask(), mb.lengths(), null), PolicyLoss.normalizer(s, trained,
          batch.samples().size())).loss().getFloat();
    } finally {
      JniUtils.setGradMode(mode);
    }
    try (Learner learner = new Learner(model, null, s, OptimizerSettings.adamw(1e-3), GradSpikeGuard.Settings.DEFAULT,
        Updates.ONE, 1f, 0)) {
      StepStats stats = learner.train(batch);
      assertEquals(trained, stats.tokens(), "the step counts the policy's tokens");
      assertEquals(expected, stats.loss(), 1e-5 * Math.max(1, Math.abs(expected)),
          "the step's loss is normalized by the policy's tokens");
    }
  }
}
