package dev.nucleon.model.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SamplerTest {

  /** log of probabilities 0.5, 0.25, 0.125, 0.125. */
  static final float[] ROW = {(float) Math.log(0.5), (float) Math.log(0.25), (float) Math.log(0.125),
      (float) Math.log(0.125)};

  @Test
  void topPKeepsTheSmallestPrefixReachingP() {
    assertArrayEquals(new boolean[] {true, false, false, false},
        Sampler.truncate(ROW, 0, 4, new SamplingParams(1f, 0, 0.45f, 1, null)));
    assertArrayEquals(new boolean[] {true, true, false, false},
        Sampler.truncate(ROW, 0, 4, new SamplingParams(1f, 0, 0.6f, 1, null)));
    // a tie at the cut is broken by the lower id
    assertArrayEquals(new boolean[] {true, true, true, false},
        Sampler.truncate(ROW, 0, 4, new SamplingParams(1f, 0, 0.8f, 1, null)));
    assertArrayEquals(new boolean[] {true, true, false, false},
        Sampler.truncate(ROW, 0, 4, new SamplingParams(1f, 2, 1f, 1, null)));
  }

  @Test
  void truncatedDrawsReportRenormalizedLogProbsAndFollowTheDistribution() {
    SamplingParams p = new SamplingParams(1f, 2, 1f, 1, null);
    SplittableRandom rng = new SplittableRandom(3);
    int[] counts = new int[4];
    int n = 30_000;
    for (int i = 0; i < n; i++) {
      Sampler.Draw d = Sampler.sample(ROW, 0, 4, p, rng);
      counts[d.token()]++;
      double want = d.token() == 0 ? Math.log(2.0 / 3) : Math.log(1.0 / 3);
      assertEquals(want, d.logProb(), 1e-6);
    }
    assertEquals(0, counts[2] + counts[3], "tokens outside the top-k are never drawn");
    assertEquals(2.0 / 3, counts[0] / (double) n, 0.015);
  }

  @Test
  void untruncatedDrawsFollowTheDistribution() {
    SplittableRandom rng = new SplittableRandom(4);
    int[] counts = new int[4];
    int n = 40_000;
    for (int i = 0; i < n; i++) {
      Sampler.Draw d = Sampler.sample(ROW, 0, 4, SamplingParams.sample(1f, 1), rng);
      counts[d.token()]++;
      assertEquals(ROW[d.token()], d.logProb());
    }
    assertEquals(0.5, counts[0] / (double) n, 0.015);
    assertEquals(0.125, counts[3] / (double) n, 0.01);
    assertTrue(counts[2] > 0);
  }
}
