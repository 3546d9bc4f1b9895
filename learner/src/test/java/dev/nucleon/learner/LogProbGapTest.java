package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The log-prob gap compares only what the learner's own weights sampled, whole trajectories at a time. */
class LogProbGapTest {

  @Test
  void onlyTokensOfTheLearnersVersionCount() {
    var gap = new LogProbGap.Accumulator();
    gap.add(new float[] {-1.0f, -2.0f, -3.0f}, new float[] {-1.1f, -2.0f, -5.0f}, new int[] {4, 4, 3}, 4);
    LogProbGap r = gap.result();
    assertEquals(2, r.tokens());
    assertEquals(0.05, r.mean(), 1e-6);
    assertEquals(0.1, r.max(), 1e-6);
    assertEquals((Math.exp(0.1) + 1) / 2, r.multProbError(), 1e-6);
    assertEquals(LogProbGap.NONE, new LogProbGap.Accumulator().result());
    assertTrue(Double.isNaN(LogProbGap.NONE.mean()));
  }

  @Test
  void aTrajectoryDecodedAcrossAWeightUpdateIsLeftOut() {
    assertEquals(7, Learner.MicroBatch.soleVersion(sampled(new int[] {7, 7, 7}, null)));
    // tokens after an in-flight update attend over keys the older weights computed
    assertEquals(-1, Learner.MicroBatch.soleVersion(sampled(new int[] {6, 6, 7}, null)));
    assertEquals(-1, Learner.MicroBatch.soleVersion(sampled(new int[0], null)));
    // an environment's tokens were read by some version's weights too: one prefilled under another version counts
    assertEquals(6, Learner.MicroBatch.soleVersion(sampled(new int[] {6, 6, 6}, new byte[] {1, 0, 1})));
    assertEquals(-1, Learner.MicroBatch.soleVersion(sampled(new int[] {6, 9, 9}, new byte[] {1, 0, 1})));
  }

  private static dev.nucleon.core.rollout.Trajectory sampled(int[] versions, byte[] mask) {
    return new dev.nucleon.core.rollout.Trajectory(0, 0, new int[] {1}, new int[versions.length],
        new float[versions.length], versions, dev.nucleon.core.rollout.FinishReason.LENGTH, "", null, mask);
  }
}
