package dev.nucleon.model.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.nucleon.model.Engines;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Draws of many rows at once (one row per draw) follow the distribution each row's settings ask for. */
class DeviceSamplerTest {

  /** Probabilities 0.5, 0.25, 0.125, 0.125 as logits. */
  static final float[] ROW = {(float) Math.log(0.5), (float) Math.log(0.25), (float) Math.log(0.125),
      (float) Math.log(0.125)};

  @BeforeAll
  static void engine() {
    Engines.start();
  }

  /** {@code n} draws of the same row with settings {@code p}. */
  private static DeviceSampler.Drawn draws(int n, SamplingParams p, long seed) {
    SamplingParams[] params = new SamplingParams[n];
    Arrays.fill(params, p);
    return draws(params, seed);
  }

  private static DeviceSampler.Drawn draws(SamplingParams[] params, long seed) {
    int n = params.length;
    float[] logits = new float[n * ROW.length];
    float[] u = new float[n];
    SplittableRandom rng = new SplittableRandom(seed);
    for (int i = 0; i < n; i++) {
      System.arraycopy(ROW, 0, logits, i * ROW.length, ROW.length);
      u[i] = (float) rng.nextDouble();
    }
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray x = m.create(logits, new Shape(n, ROW.length));
      return DeviceSampler.draw(x, params, u);
    }
  }

  private static int[] counts(DeviceSampler.Drawn d) {
    int[] c = new int[ROW.length];
    for (long t : d.tokens()) {
      c[(int) t]++;
    }
    return c;
  }

  @Test
  void untruncatedDrawsFollowTheDistributionAndReportTheirLogProbs() {
    int n = 40_000;
    DeviceSampler.Drawn d = draws(n, SamplingParams.sample(1f, 1), 4);
    int[] c = counts(d);
    assertEquals(0.5, c[0] / (double) n, 0.015);
    assertEquals(0.25, c[1] / (double) n, 0.015);
    assertEquals(0.125, c[3] / (double) n, 0.01);
    for (int i = 0; i < n; i++) {
      int t = (int) d.tokens()[i];
      assertEquals(ROW[t], d.samplingLogProbs()[i], 1e-6);
      assertEquals(ROW[t], d.modelLogProbs()[i], 1e-6);
    }
  }

  @Test
  void temperatureSharpensTheDistributionAndTheModelLogProbStaysAtTemperatureOne() {
    int n = 40_000;
    DeviceSampler.Drawn d = draws(n, SamplingParams.sample(0.5f, 1), 5);
    // p^2 normalized: 0.25 / 0.34375 for token 0
    assertEquals(0.25 / 0.34375, counts(d)[0] / (double) n, 0.015);
    for (int i = 0; i < n; i++) {
      int t = (int) d.tokens()[i];
      double p = Math.exp(2 * ROW[t]) / 0.34375;
      assertEquals(Math.log(p), d.samplingLogProbs()[i], 1e-5);
      assertEquals(ROW[t], d.modelLogProbs()[i], 1e-6);
    }
  }

  @Test
  void topKAndTopPKeepTheLeadingTokensAndRenormalize() {
    int n = 30_000;
    DeviceSampler.Drawn k2 = draws(n, new SamplingParams(1f, 2, 1f, 1, null), 3);
    int[] c = counts(k2);
    assertEquals(0, c[2] + c[3], "tokens outside the top-k are never drawn");
    assertEquals(2.0 / 3, c[0] / (double) n, 0.015);
    for (int i = 0; i < n; i++) {
      double want = k2.tokens()[i] == 0 ? Math.log(2.0 / 3) : Math.log(1.0 / 3);
      assertEquals(want, k2.samplingLogProbs()[i], 1e-5);
    }
    assertEquals(n, counts(draws(n, new SamplingParams(1f, 0, 0.45f, 1, null), 6))[0], "top-p 0.45: token 0 alone");
    int[] p6 = counts(draws(n, new SamplingParams(1f, 0, 0.6f, 1, null), 7));
    assertEquals(0, p6[2] + p6[3], "top-p 0.6: tokens 0 and 1");
    assertTrue(p6[1] > 0);
    int[] p8 = counts(draws(n, new SamplingParams(1f, 0, 0.8f, 1, null), 8));
    assertTrue(p8[2] == 0 || p8[3] == 0, "top-p 0.8: one of the two tied tokens at the cut, not both");
    assertTrue(p8[2] + p8[3] > 0);
  }

  @Test
  void greedyAndSampledRowsShareABatch() {
    int n = 1000;
    SamplingParams[] params = new SamplingParams[n];
    for (int i = 0; i < n; i++) {
      params[i] = i % 2 == 0 ? SamplingParams.greedy(1) : new SamplingParams(1f, 2, 1f, 1, null);
    }
    DeviceSampler.Drawn d = draws(params, 9);
    int sampledOther = 0;
    for (int i = 0; i < n; i++) {
      if (i % 2 == 0) {
        assertEquals(0, d.tokens()[i], "greedy: the argmax");
        assertEquals(0f, d.samplingLogProbs()[i]);
        assertEquals(ROW[0], d.modelLogProbs()[i], 1e-6);
      } else {
        assertTrue(d.tokens()[i] < 2, "top-k 2");
        sampledOther += d.tokens()[i] != 0 ? 1 : 0;
      }
    }
    assertTrue(sampledOther > 100, "sampled rows are not greedy");
  }
}
