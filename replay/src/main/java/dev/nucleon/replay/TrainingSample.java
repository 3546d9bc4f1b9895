package dev.nucleon.replay;

import dev.nucleon.core.rollout.Trajectory;
import java.util.Objects;

/**
 * One trajectory the learner trains on, with its advantage.
 *
 * @param trajectory tokens, behaviour log-probs and versions as the rollout worker recorded them
 * @param reward the reward used for the advantage (0 for a failed reward under policy {@code zero})
 * @param advantage the sample's advantage, the same for every completion token (outcome reward)
 */
public record TrainingSample(Trajectory trajectory, double reward, float advantage) {
  public TrainingSample {
    Objects.requireNonNull(trajectory, "trajectory");
    if (!Float.isFinite(advantage)) {
      throw new IllegalArgumentException("prompt " + trajectory.promptId() + " sample " + trajectory.sampleIndex()
          + ": non-finite advantage " + advantage);
    }
  }

  /** Prompt plus completion tokens: what one row of a micro-batch holds. */
  public int tokens() {
    return trajectory.totalTokens();
  }
}
