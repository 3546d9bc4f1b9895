package dev.nucleon.core.rollout;

import dev.nucleon.core.reward.RewardResult;
import java.util.Objects;

/** A trajectory together with the reward a scorer gave it (which may be a failed result). */
public record ScoredTrajectory(Trajectory trajectory, RewardResult reward) {
  public ScoredTrajectory {
    Objects.requireNonNull(trajectory, "trajectory");
    Objects.requireNonNull(reward, "reward");
  }
}
