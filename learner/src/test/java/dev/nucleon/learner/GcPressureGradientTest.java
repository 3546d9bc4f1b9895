package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.TinyModels;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Autograd keeps tensors of the forward pass until backward; none of them may be freed in between. The same step is
 * run twice from the same weights and data, once as it is and once with garbage collections, freed direct buffers
 * and allocation churn between every forward and its backward: the accumulated gradients (read before the update)
 * and the loss must be bit-identical, for every loss variant, at a sampling temperature other than 1, and for the
 * supervised loss.
 */
class GcPressureGradientTest {

  private static final float TEMPERATURE = 0.7f;
  private static final OptimizerSettings OPTIMIZER = OptimizerSettings.adamw(1e-3);

  @BeforeAll
  static void engine() {
    Engines.start();
  }

  static Stream<Arguments> variants() {
    LossSettings.Aggregation token = LossSettings.Aggregation.TOKEN_MEAN;
    return Stream.of(
        Arguments.of("token-mean", new LossSettings(0.2, 0.28, 0, token, 1, 0, LossSettings.KlEstimator.K3)),
        Arguments.of("sequence-mean", new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.SEQUENCE_MEAN, 1, 0,
            LossSettings.KlEstimator.K3)),
        Arguments.of("constant-normalizer", new LossSettings(0.2, 0.2, 0,
            LossSettings.Aggregation.CONSTANT_NORMALIZER, 16, 0, LossSettings.KlEstimator.K3)),
        Arguments.of("tis", new LossSettings(0.2, 0.2, 2.0, token, 1, 0, LossSettings.KlEstimator.K3)),
        Arguments.of("kl-k1", new LossSettings(0.2, 0.2, 0, token, 1, 0.05, LossSettings.KlEstimator.K1)),
        Arguments.of("kl-k3", new LossSettings(0.2, 0.2, 0, token, 1, 0.05, LossSettings.KlEstimator.K3)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("variants")
  void policyGradientIsTheSameUnderGcPressure(String name, LossSettings loss) {
    Step calm = policyStep(loss, false);
    Step stressed = policyStep(loss, true);
    assertSame(name, calm, stressed);
  }

  @ParameterizedTest(name = "supervised")
  @MethodSource("supervisedOnly")
  void supervisedGradientIsTheSameUnderGcPressure(String name) {
    Step calm = supervisedStep(false);
    Step stressed = supervisedStep(true);
    assertSame(name, calm, stressed);
  }

  /**
   * A mixture of experts: the router's index arrays (gather, the gathers that group tokens by expert) and the
   * load-balancing loss's token mask are kept by autograd past the layer that made them.
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"moe", "moe-aux-loss"})
  void mixtureOfExpertsGradientIsTheSameUnderGcPressure(String name) {
    double aux = name.equals("moe-aux-loss") ? 0.5 : 0;
    LossSettings loss = new LossSettings(0.2, 0.28, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0,
        LossSettings.KlEstimator.K3);
    assertSame(name, policyStep(TinyModels.qwen3MoeLike(), loss, aux, false),
        policyStep(TinyModels.qwen3MoeLike(), loss, aux, true));
  }

  static Stream<String> supervisedOnly() {
    return Stream.of("supervised");
  }

  /** Gradients and loss of the first two steps (the second one starts from updated weights and moments). */
  record Step(List<Map<String, float[]>> gradients, List<Double> losses) {}

  private static Step policyStep(LossSettings loss, boolean pressure) {
    return policyStep(ExactResumeTest.SHAPE, loss, 0, pressure);
  }

  private static Step policyStep(LlamaConfig shape, LossSettings loss, double auxLoss, boolean pressure) {
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(shape, m, 3);
        LlamaModel reference = LlamaModel.random(shape, m, 4);
        Learner learner = new Learner(model, reference, loss, OPTIMIZER, TEMPERATURE, 0)) {
      learner.setRouterAuxLoss(auxLoss);
      Recorder r = new Recorder(model, pressure);
      learner.setProbe(r);
      List<Double> losses = new ArrayList<>();
      for (int s = 0; s < 2; s++) {
        losses.add(learner.train(ExactResumeTest.batch(s, learner.version())).loss());
      }
      return new Step(r.gradients, losses);
    }
  }

  private static Step supervisedStep(boolean pressure) {
    SplittableRandom rng = new SplittableRandom(7);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
        Learner learner = new Learner(model, null, LossSettings.defaults(), OPTIMIZER, 1f, 0)) {
      Recorder r = new Recorder(model, pressure);
      learner.setProbe(r);
      List<Double> losses = new ArrayList<>();
      for (int s = 0; s < 2; s++) {
        losses.add(supervisedStep(learner, rng).loss());
      }
      return new Step(r.gradients, losses);
    }
  }

  /** A supervised step on 12 random prompts of 3 tokens and targets of 3 (the last one 2), in micro-batches of 4. */
  static StepStats supervisedStep(Learner learner, SplittableRandom rng) {
    List<int[]> prompts = new ArrayList<>();
    List<int[]> targets = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      prompts.add(new int[] {1, 3 + rng.nextInt(20), 3 + rng.nextInt(20)});
      targets.add(new int[] {3 + rng.nextInt(20), 3 + rng.nextInt(20), 2});
    }
    return learner.supervised(prompts, targets, 4);
  }

  private static void assertSame(String name, Step calm, Step stressed) {
    for (int s = 0; s < calm.gradients().size(); s++) {
      Map<String, float[]> a = calm.gradients().get(s);
      Map<String, float[]> b = stressed.gradients().get(s);
      boolean anyNonZero = false;
      for (var e : a.entrySet()) {
        float[] x = e.getValue();
        float[] y = b.get(e.getKey());
        for (float v : x) {
          anyNonZero |= v != 0f;
        }
        // bit patterns, so even a NaN or a -0 difference counts
        int[] xb = new int[x.length];
        int[] yb = new int[y.length];
        for (int i = 0; i < x.length; i++) {
          xb[i] = Float.floatToRawIntBits(x[i]);
          yb[i] = Float.floatToRawIntBits(y[i]);
        }
        assertArrayEquals(xb, yb, name + ": step " + s + " gradient of " + e.getKey()
            + " differs under GC pressure (max |g| calm " + maxAbs(x) + ", stressed " + maxAbs(y) + ")");
      }
      assertTrue(anyNonZero, name + ": the step must produce a gradient");
    }
    assertEquals(calm.losses(), stressed.losses(), name + ": loss");
  }

  private static double maxAbs(float[] x) {
    double m = 0;
    for (float v : x) {
      m = Math.max(m, Math.abs(v));
    }
    return m;
  }

  /** Copies the gradients before each update; optionally stresses the collector before each backward pass. */
  private static final class Recorder implements Learner.StepProbe {
    final LlamaModel model;
    final boolean pressure;
    final List<Map<String, float[]>> gradients = new ArrayList<>();

    Recorder(LlamaModel model, boolean pressure) {
      this.model = model;
      this.pressure = pressure;
    }

    @Override
    public void beforeBackward() {
      if (pressure) {
        gcPressure();
      }
    }

    @Override
    public void beforeUpdate() {
      Map<String, float[]> g = new LinkedHashMap<>();
      for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
        g.put(e.getKey(), e.getValue().getArray().getGradient().toFloatArray());
      }
      gradients.add(g);
    }
  }

  /**
   * Collections that free every unreachable direct buffer (their native memory goes back to malloc, which writes
   * its free-list pointers into it), then small direct allocations filled with a huge value to take that memory
   * over, then another collection.
   */
  static void gcPressure() {
    for (int round = 0; round < 3; round++) {
      System.gc();
      try {
        Thread.sleep(10); // the reference handler frees the buffers' native memory
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      List<ByteBuffer> churn = new ArrayList<>();
      for (int i = 0; i < 4000; i++) {
        ByteBuffer b = ByteBuffer.allocateDirect(4 + (i % 8) * 4);
        while (b.remaining() >= 4) {
          b.putFloat(3.0e34f);
        }
        churn.add(b);
      }
      churn.clear();
    }
  }
}
