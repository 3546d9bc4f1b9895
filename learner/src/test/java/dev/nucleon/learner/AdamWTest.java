package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import dev.nucleon.model.Engines;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** AdamW against the update rule computed by hand in double precision. */
class AdamWTest {

  @Test
  void twoStepsMatchTheFormulaWithClippingAndDecay() {
    Engines.start();
    double[] w = {0.5, -1.0, 2.0};
    double[][] grads = {{3.0, -4.0, 0.0}, {0.1, 0.2, -0.3}}; // step 1 has norm 5 and is clipped to 1
    double lr = 0.1;
    double wd = 0.01;
    double b1 = 0.9;
    double b2 = 0.999;
    double eps = 1e-8;
    try (NDManager m = NDManager.newBaseManager()) {
      Parameter p = Parameter.builder().setName("w").setType(Parameter.Type.WEIGHT)
          .optArray(m.create(new float[] {0.5f, -1f, 2f})).build();
      p.getArray().setRequiresGradient(true);
      OptimizerSettings settings = new OptimizerSettings(lr, b1, b2, eps, wd, 1.0, LrSchedule.constant(0));
      try (AdamW opt = new AdamW(Map.of("w", p), m, settings)) {
        double[] mm = new double[3];
        double[] vv = new double[3];
        for (int t = 1; t <= 2; t++) {
          double[] g = grads[t - 1];
          try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
            NDArray c = m.create(new float[] {(float) g[0], (float) g[1], (float) g[2]});
            gc.backward(p.getArray().mul(c).sum()); // d/dw = c
          }
          AdamW.Update u = opt.apply();
          double norm = Math.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
          assertEquals(norm, u.gradNorm(), 1e-5);
          double scale = norm > 1.0 ? 1.0 / (norm + 1e-6) : 1.0;
          for (int i = 0; i < 3; i++) {
            double gi = g[i] * scale;
            mm[i] = b1 * mm[i] + (1 - b1) * gi;
            vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
            double mhat = mm[i] / (1 - Math.pow(b1, t));
            double vhat = vv[i] / (1 - Math.pow(b2, t));
            w[i] = w[i] * (1 - lr * wd) - lr * mhat / (Math.sqrt(vhat) + eps);
          }
          float[] got = p.getArray().toFloatArray();
          for (int i = 0; i < 3; i++) {
            assertEquals(w[i], got[i], 1e-5, "step " + t + " weight " + i);
          }
        }
        float[] zero = p.getArray().getGradient().toFloatArray();
        for (float z : zero) {
          assertEquals(0f, z, "gradients are zeroed after a step");
        }
      }
    }
  }

  @Test
  void manyStepsOfRandomGradientsFollowTheFormula() {
    Engines.start();
    int n = 4096;
    int steps = 40;
    double lr = 3e-3;
    double wd = 0.1;
    double b1 = 0.9;
    double b2 = 0.99;
    double eps = 1e-6; // large enough to matter for the small moments below
    java.util.SplittableRandom rng = new java.util.SplittableRandom(11);
    double[] w = new double[n];
    float[] init = new float[n];
    for (int i = 0; i < n; i++) {
      init[i] = (float) rng.nextGaussian();
      w[i] = init[i];
    }
    try (NDManager m = NDManager.newBaseManager()) {
      Parameter p = Parameter.builder().setName("w").setType(Parameter.Type.WEIGHT).optArray(m.create(init)).build();
      p.getArray().setRequiresGradient(true);
      OptimizerSettings settings = new OptimizerSettings(lr, b1, b2, eps, wd, 5.0, LrSchedule.constant(0));
      double[] mm = new double[n];
      double[] vv = new double[n];
      double worst = 0;
      try (AdamW opt = new AdamW(Map.of("w", p), m, settings)) {
        for (int t = 1; t <= steps; t++) {
          float[] g = new float[n];
          double sq = 0;
          for (int i = 0; i < n; i++) {
            // gradients of very different sizes, some tiny, so eps and clipping both matter
            g[i] = (float) (rng.nextGaussian() * (i % 3 == 0 ? 1e-5 : 0.2));
            sq += (double) g[i] * g[i];
          }
          try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
            gc.backward(p.getArray().mul(m.create(g)).sum());
          }
          AdamW.Update u = opt.apply();
          double norm = Math.sqrt(sq);
          assertEquals(norm, u.gradNorm(), 1e-4 * norm);
          double scale = norm > 5.0 ? 5.0 / (norm + 1e-6) : 1.0;
          for (int i = 0; i < n; i++) {
            double gi = g[i] * scale;
            mm[i] = b1 * mm[i] + (1 - b1) * gi;
            vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
            double mhat = mm[i] / (1 - Math.pow(b1, t));
            double vhat = vv[i] / (1 - Math.pow(b2, t));
            w[i] = w[i] * (1 - lr * wd) - lr * mhat / (Math.sqrt(vhat) + eps);
          }
        }
        float[] got = p.getArray().toFloatArray();
        double moved = 0;
        for (int i = 0; i < n; i++) {
          worst = Math.max(worst, Math.abs(w[i] - got[i]));
          moved = Math.max(moved, Math.abs(w[i] - init[i]));
        }
        assertTrue(moved > 0.05, "the steps must move the weights, moved " + moved);
        assertTrue(worst < 2e-6, "max difference from the formula " + worst);
      }
    }
  }

  @Test
  void aNonFiniteGradientSkipsTheStep() {
    Engines.start();
    try (NDManager m = NDManager.newBaseManager()) {
      Parameter p = Parameter.builder().setName("w").setType(Parameter.Type.WEIGHT)
          .optArray(m.create(new float[] {1f, 2f})).build();
      p.getArray().setRequiresGradient(true);
      try (AdamW opt = new AdamW(Map.of("w", p), m, OptimizerSettings.adamw(0.1))) {
        try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
          gc.backward(p.getArray().mul(m.create(new float[] {Float.NaN, 1f})).sum());
        }
        AdamW.Update u = opt.apply();
        assertTrue(u.skipped());
        assertEquals(0, opt.step());
        assertEquals(1f, p.getArray().toFloatArray()[0]);
        assertEquals(0f, p.getArray().getGradient().toFloatArray()[0], "NaN gradients are reset to 0");
      }
    }
  }
}
