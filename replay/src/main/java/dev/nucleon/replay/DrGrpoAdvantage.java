package dev.nucleon.replay;

/**
 * Dr. GRPO's advantage (Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective"): the group
 * mean as baseline, no division by the std (which up-weights near-constant groups, the "question-level difficulty
 * bias"):
 *
 * <pre>
 *   A_i = r_i - mean(r),   mean(r) = (1/n) sum_j r_j
 * </pre>
 *
 * A group whose rewards are all equal gets exact zeros. The paper's other change, a constant loss normalizer
 * instead of the per-sequence length, belongs to the learner's loss aggregation, not here. Example: rewards
 * (1, 0, 0, 0) give mean 0.25 and advantages (0.75, -0.25, -0.25, -0.25).
 */
public final class DrGrpoAdvantage implements AdvantageEstimator {
  /** Config identifier. */
  public static final String ID = "dr-grpo";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public double[] groupAdvantages(double[] rewards) {
    GroupMath.requireNonEmptyFinite(rewards);
    double[] a = new double[rewards.length];
    if (GroupMath.allEqual(rewards)) {
      return a;
    }
    double mean = GroupMath.mean(rewards);
    for (int i = 0; i < a.length; i++) {
      a[i] = rewards[i] - mean;
    }
    return a;
  }
}
