package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.replay.TrainingBatch;
import dev.nucleon.replay.TrainingSample;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class GradSpikeGuardTest {

  @Test
  void flagsANormFarAboveTheRecentMedianOnlyAfterEnoughHistory() {
    GradSpikeGuard g = new GradSpikeGuard(new GradSpikeGuard.Settings(10, 50, false));
    for (int i = 0; i < 9; i++) {
      assertFalse(g.observe(i == 0 ? 500 : 1.0 + 0.01 * i).spike(), "no judgement before 10 norms");
    }
    g.observe(1.0);
    assertFalse(g.observe(9.5).spike(), "9.5x the median is within a factor of 10");
    GradSpikeGuard.Verdict v = g.observe(50);
    assertTrue(v.spike());
    assertEquals(1.045, v.median(), 0.05);
    assertFalse(g.observe(Double.NaN).spike(), "a non-finite norm is the optimizer's to skip, not a spike");
  }

  @Test
  void aLastingChangeOfScaleStopsBeingFlagged() {
    GradSpikeGuard g = new GradSpikeGuard(new GradSpikeGuard.Settings(10, 20, false));
    for (int i = 0; i < 20; i++) {
      g.observe(1.0);
    }
    int flagged = 0;
    for (int i = 0; i < 30; i++) {
      flagged += g.observe(100).spike() ? 1 : 0;
    }
    assertEquals(10, flagged, "flagged until the new scale fills half the window");
  }

  @Test
  void zeroNormsSayNothingAboutScale() {
    GradSpikeGuard g = new GradSpikeGuard(GradSpikeGuard.Settings.DEFAULT);
    for (int i = 0; i < 30; i++) {
      g.observe(0.0); // batches whose advantages were all 0
    }
    assertFalse(g.observe(0.3).spike(), "no positive history yet: nothing to compare with");
    for (int i = 0; i < 20; i++) {
      g.observe(i % 2 == 0 ? 0.0 : 0.3); // 10 more positive norms: enough history to judge
    }
    assertFalse(g.observe(0.5).spike(), "zeros do not pull the median to 0");
    assertTrue(g.observe(5.0).spike());
  }

  @Test
  void theHistoryRoundTripsThroughItsText() {
    GradSpikeGuard a = new GradSpikeGuard(new GradSpikeGuard.Settings(10, 20, false));
    GradSpikeGuard b = new GradSpikeGuard(new GradSpikeGuard.Settings(10, 20, false));
    for (int i = 0; i < 25; i++) {
      a.observe(0.1 + i * 0.0123456789);
    }
    b.restore(a.history());
    assertEquals(a.history(), b.history());
    for (double x : new double[] {0.2, 3.0, 40.0}) {
      assertEquals(a.observe(x), b.observe(x));
    }
    var e = assertThrows(IllegalArgumentException.class, () -> b.restore("0.5,NaN"));
    assertTrue(e.getMessage().contains("NaN"), e.getMessage());
  }

  @Test
  void factorZeroTurnsTheGuardOffAndBadSettingsAreRefused() {
    GradSpikeGuard g = new GradSpikeGuard(GradSpikeGuard.Settings.OFF);
    for (int i = 0; i < 20; i++) {
      g.observe(1);
    }
    assertFalse(g.observe(1e30).spike());
    var e = assertThrows(IllegalArgumentException.class, () -> new GradSpikeGuard.Settings(0.5, 50, false));
    assertTrue(e.getMessage().contains("grad-spike-factor"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> new GradSpikeGuard.Settings(10, 2, false));
    assertTrue(e.getMessage().contains("grad-spike-window"), e.getMessage());
  }

  @Test
  void theLearnerReportsASpikeAndSkipsItOnlyWhenAsked() {
    Engines.start();
    for (boolean skip : new boolean[] {false, true}) {
      try (NDManager m = NDManager.newBaseManager();
          LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
          Learner learner = new Learner(model, null, ExactResumeTest.LOSS, OptimizerSettings.adamw(1e-4),
              new GradSpikeGuard.Settings(10, 50, skip), 1f, 0)) {
        for (int s = 0; s < 12; s++) {
          StepStats st = learner.train(ExactResumeTest.batch(s, learner.version()));
          assertFalse(st.gradSpike(), "ordinary step " + s + " (norm " + st.gradNorm() + ")");
          assertFalse(st.skipped());
        }
        Map<String, HostTensor> before = model.toHostTensors();
        // the same kind of batch with advantages 1000x larger: the gradient norm grows by the same factor
        StepStats spike = learner.train(scaled(ExactResumeTest.batch(12, learner.version()), 1000f));
        assertTrue(spike.gradSpike(), "norm " + spike.gradNorm() + " vs median " + spike.gradNormMedian());
        assertTrue(spike.maxParamGradNorm() > 0 && spike.maxParamGradNorm() <= spike.gradNorm());
        assertTrue(model.namedParameters().containsKey(spike.maxParamGradName()), spike.maxParamGradName());
        assertEquals(13, spike.version(), "the version advances either way");
        assertEquals(skip, spike.skipped());
        Map<String, HostTensor> after = model.toHostTensors();
        boolean unchanged = before.keySet().stream()
            .allMatch(k -> java.util.Arrays.equals(before.get(k).data(), after.get(k).data()));
        assertEquals(skip, unchanged, skip ? "a skipped spike leaves the weights" : "an applied spike moves them");
        if (skip) {
          assertEquals(12, learner.optimizer().step(), "a skipped update is not an optimizer step");
          float[] g = model.namedParameters().values().iterator().next().getArray().getGradient().toFloatArray();
          assertArrayEquals(new float[g.length], g, "gradients are zeroed after a skipped update");
        }
      }
    }
  }

  private static TrainingBatch scaled(TrainingBatch b, float factor) {
    List<List<TrainingSample>> micro = b.microBatches().stream()
        .map(mb -> mb.stream().map(s -> new TrainingSample(s.trajectory(), s.reward(), s.advantage() * factor))
            .toList())
        .toList();
    return new TrainingBatch(micro.stream().flatMap(List::stream).toList(), micro, b.policyVersion(), b.stats());
  }
}
