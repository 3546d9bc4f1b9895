package dev.nucleon.replay;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class AdvantageEstimatorTest {
  private static final double TOL = 1e-9;

  @Test
  void grpoUsesPopulationStd() {
    // rewards (3, 1, 2): mean 2, population variance (1 + 1 + 0) / 3 = 2/3, std 0.816496580927726.
    // With the sample std (n - 1) it would be 1 and the advantages (1, -1, 0).
    double[] a = new GrpoAdvantage(0.0).groupAdvantages(new double[] {3, 1, 2});
    assertArrayEquals(new double[] {1.224744871391589, -1.224744871391589, 0.0}, a, TOL);
  }

  @Test
  void grpoAddsEpsilonToStd() {
    // rewards (1, 0, 0, 1): mean 0.5, std 0.5, A = +-0.5 / (0.5 + 1e-4)
    double[] a = new GrpoAdvantage(1e-4).groupAdvantages(new double[] {1, 0, 0, 1});
    double v = 0.5 / 0.5001;
    assertArrayEquals(new double[] {v, -v, -v, v}, a, TOL);
    assertEquals(0.999800039992, v, 1e-12);
  }

  @Test
  void drGrpoSubtractsMeanOnly() {
    assertArrayEquals(new double[] {0.75, -0.25, -0.25, -0.25},
        new DrGrpoAdvantage().groupAdvantages(new double[] {1, 0, 0, 0}), TOL);
    assertArrayEquals(new double[] {1, -1, 0}, new DrGrpoAdvantage().groupAdvantages(new double[] {3, 1, 2}), TOL);
  }

  @Test
  void rlooUsesMeanOfTheOthers() {
    assertArrayEquals(new double[] {1, -1.0 / 3, -1.0 / 3, -1.0 / 3},
        new RlooAdvantage().groupAdvantages(new double[] {1, 0, 0, 0}), TOL);
    // 3 - (1+2)/2 = 1.5, 1 - (3+2)/2 = -1.5, 2 - (3+1)/2 = 0
    assertArrayEquals(new double[] {1.5, -1.5, 0}, new RlooAdvantage().groupAdvantages(new double[] {3, 1, 2}), TOL);
  }

  @Test
  void rlooOfASingleSampleIsZero() {
    assertArrayEquals(new double[] {0}, new RlooAdvantage().groupAdvantages(new double[] {0.7}), 0.0);
  }

  @Test
  void reinforcePlusPlusCentersPerGroupThenNormalizesOverTheBatch() {
    ReinforcePlusPlusAdvantage e = new ReinforcePlusPlusAdvantage(0.0);
    double[] g1 = e.groupAdvantages(new double[] {1, 0, 0}); // mean 1/3
    double[] g2 = e.groupAdvantages(new double[] {2, 0}); // mean 1
    assertArrayEquals(new double[] {2.0 / 3, -1.0 / 3, -1.0 / 3}, g1, TOL);
    assertArrayEquals(new double[] {1, -1}, g2, TOL);
    double[] batch = {g1[0], g1[1], g1[2], g2[0], g2[1]};
    e.normalizeBatch(batch);
    // batch mean 0, population variance (4/9 + 1/9 + 1/9 + 1 + 1) / 5 = 8/15, std 0.7302967433402214
    double std = Math.sqrt(8.0 / 15);
    assertArrayEquals(new double[] {(2.0 / 3) / std, (-1.0 / 3) / std, (-1.0 / 3) / std, 1 / std, -1 / std}, batch,
        TOL);
    assertEquals(0.9128709291752769, batch[0], TOL);
  }

  @Test
  void reinforcePlusPlusBatchOfZerosStaysZero() {
    double[] batch = {0, 0, 0};
    new ReinforcePlusPlusAdvantage(0.0).normalizeBatch(batch);
    assertArrayEquals(new double[] {0, 0, 0}, batch, 0.0);
  }

  @ParameterizedTest
  @ValueSource(strings = {"grpo", "dr-grpo", "rloo", "reinforce-pp"})
  void constantGroupGivesExactZerosNeverNaN(String id) {
    AdvantageEstimator e = AdvantageEstimator.create(id, 0.0);
    // 0.1 * 3 / 3 != 0.1 in floating point: a naive r - mean would not be exactly 0
    for (double[] rewards : new double[][] {{0.1, 0.1, 0.1}, {1, 1, 1, 1}, {0.3}}) {
      double[] a = e.groupAdvantages(rewards);
      e.normalizeBatch(a);
      for (double v : a) {
        assertEquals(0.0, v, 0.0, id);
      }
    }
  }

  @Test
  void unknownIdListsTheKnownOnes() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> AdvantageEstimator.create("ppo", 0.0));
    assertTrue(e.getMessage().contains("grpo, dr-grpo, rloo, reinforce-pp"), e.getMessage());
  }

  @Test
  void nonFiniteRewardIsRefused() {
    assertThrows(IllegalArgumentException.class,
        () -> new GrpoAdvantage(0).groupAdvantages(new double[] {1, Double.NaN}));
    assertThrows(IllegalArgumentException.class, () -> new DrGrpoAdvantage().groupAdvantages(new double[0]));
  }
}
