package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.SharedPromptRows;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.replay.TrainingBatch;
import dev.nucleon.replay.TrainingSample;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A learner that shares each group's prompt across its samples (the default) takes the step a learner scoring every
 * sample as its own row takes: the same gradients, with the policy loss, the TIS proximal forward and the KL term
 * against a reference model all reading the shared rows, over micro-batches that split groups.
 */
class SharedPromptsLearnerTest {

  private static final LossSettings LOSS = new LossSettings(0.2, 0.28, 2.0, LossSettings.Aggregation.TOKEN_MEAN, 1,
      0.05, LossSettings.KlEstimator.K3);

  @Test
  void sharedPromptsTakeTheStepPaddedRowsTake() {
    Engines.start();
    Map<String, HostTensor> weights = LlamaModel.randomWeights(ExactResumeTest.SHAPE, 5);
    Map<String, HostTensor> base = LlamaModel.randomWeights(ExactResumeTest.SHAPE, 6);
    TrainingBatch batch = ExactResumeTest.batch(0, 0);
    assertTrue(batch.microBatches().size() > 1, "the batch accumulates micro-batches");
    Map<Boolean, Map<String, float[]>> gradients = new HashMap<>();
    Map<Boolean, StepStats> stats = new HashMap<>();
    for (boolean share : new boolean[] {false, true}) {
      try (NDManager m = NDManager.newBaseManager();
          LlamaModel policy = LlamaModel.create(ExactResumeTest.SHAPE, m, weights);
          LlamaModel reference = LlamaModel.create(ExactResumeTest.SHAPE, m, base);
          Learner learner = new Learner(policy, reference, LOSS, OptimizerSettings.adamw(1e-3),
              GradSpikeGuard.Settings.OFF, 0.8f, 0)) {
        learner.setSharedPrompts(share);
        Map<String, float[]> g = new HashMap<>();
        learner.setProbe(new Learner.StepProbe() {
          @Override
          public void beforeUpdate() {
            policy.namedParameters().forEach((k, p) -> g.put(k, p.getArray().getGradient().toFloatArray()));
          }
        });
        stats.put(share, learner.train(batch));
        gradients.put(share, g);
      }
    }
    StepStats padded = stats.get(false);
    StepStats shared = stats.get(true);
    assertEquals(padded.loss(), shared.loss(), 1e-5 * Math.max(1, Math.abs(padded.loss())), "loss");
    assertEquals(padded.kl(), shared.kl(), 1e-5, "KL against the reference");
    assertEquals(padded.entropy(), shared.entropy(), 1e-4, "entropy");
    assertEquals(padded.gradNorm(), shared.gradNorm(), 1e-4 * padded.gradNorm(), "gradient norm");
    for (var e : gradients.get(false).entrySet()) {
      float[] want = e.getValue();
      float[] got = gradients.get(true).get(e.getKey());
      double scale = 1e-6;
      double diff = 0;
      for (int i = 0; i < want.length; i++) {
        scale = Math.max(scale, Math.abs(want[i]));
        diff = Math.max(diff, Math.abs(want[i] - got[i]));
      }
      assertTrue(diff <= 1e-4 * scale, e.getKey() + ": gradients differ by " + diff + " (largest " + scale + ")");
    }
  }

  /** A micro-batch whose samples repeat prompts packs each prompt once; without sharing every sample is a row. */
  @Test
  void aMicroBatchReadsEachPromptOnce() {
    Engines.start();
    TrainingBatch batch = ExactResumeTest.batch(0, 0);
    List<TrainingSample> all = batch.samples();
    try (NDManager m = NDManager.newBaseManager()) {
      SharedPromptRows rows = Learner.MicroBatch.of(m, all, null, List.of(), true).shared();
      assertEquals(2, rows.prompts(), "two groups of four");
      long distinctPrompts = 2L * 3;
      long completionInputs = all.stream().mapToLong(s -> s.trajectory().completionTokens().length - 1).sum();
      assertEquals(distinctPrompts + completionInputs, Learner.MicroBatch.inputTokens(all, true));
      assertEquals(distinctPrompts + completionInputs,
          Learner.MicroBatch.of(m, all, null, List.of(), true).realTokenCount());
      Learner.MicroBatch rowsEach = Learner.MicroBatch.of(m, all, null, List.of(), false);
      assertEquals(null, rowsEach.shared());
      assertEquals(all.stream().mapToLong(s -> s.trajectory().totalTokens()).sum(), rowsEach.realTokenCount());
    }
  }
}
