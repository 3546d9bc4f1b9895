package dev.nucleon.core.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** A multi-turn trajectory's loss mask: what it says about tokens, versions and staleness, and what it refuses. */
class TrajectoryTest {

  private static Trajectory episode(byte[] mask, int[] versions) {
    return new Trajectory(3, 1, new int[] {1, 2}, new int[] {5, 6, 7, 8}, new float[4], versions,
        FinishReason.LENGTH, "", null, mask);
  }

  @Test
  void anEnvironmentsTokensAreNotTrainedAndHaveNoVersionThatCounts() {
    // the policy sampled tokens 0 and 3 at versions 7 and 8; tokens 1-2 are an observation, tagged 2 (ignored)
    Trajectory t = episode(new byte[] {1, 0, 0, 1}, new int[] {7, 2, 2, 8});
    assertTrue(t.trained(0));
    assertFalse(t.trained(1));
    assertEquals(2, t.trainedTokens());
    assertEquals(7, t.oldestVersion(), "staleness is measured on the policy's tokens");
    assertEquals(9, episode(new byte[] {0, 0, 0, 0}, new int[] {9, 9, 9, 9}).oldestVersion(),
        "an episode without sampled tokens is not stale");
    Trajectory single = episode(null, new int[] {7, 2, 2, 8});
    assertEquals(4, single.trainedTokens());
    assertEquals(2, single.oldestVersion());
  }

  @Test
  void aMaskOfAnotherLengthOrOtherValuesIsRefusedNamingTheTrajectory() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> episode(new byte[] {1, 0, 1}, new int[4]));
    assertTrue(e.getMessage().contains("prompt 3 sample 1") && e.getMessage().contains("loss mask of 3"),
        e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> episode(new byte[] {1, 2, 1, 1}, new int[4]));
    assertTrue(e.getMessage().contains("value 2 at completion token 1"), e.getMessage());
  }
}
