package dev.nucleon.replay;

/**
 * GRPO's group-normalized advantage (Shao et al. 2024, DeepSeekMath, outcome supervision):
 *
 * <pre>
 *   A_i = (r_i - mean(r)) / (std(r) + eps)
 *   mean(r) = (1/n) sum_j r_j
 *   std(r)  = sqrt((1/n) sum_j (r_j - mean(r))^2)      population std (divides by n, not n - 1)
 * </pre>
 *
 * where n is the number of remaining scored samples of the group. The paper writes {@code (r - mean)/std} without
 * saying which std and without eps; TRL uses the sample std (n - 1) with eps 1e-4. Here the std is the population
 * one, eps is {@code nucleon.algorithm.advantage-epsilon}, and a group whose rewards are all equal (std 0, including
 * n = 1) gets exact zeros. Example: rewards (1, 0, 0, 1) give mean 0.5, std 0.5 and advantages
 * {@code +-0.5/(0.5+eps)}.
 */
public final class GrpoAdvantage implements AdvantageEstimator {
  /** Config identifier. */
  public static final String ID = "grpo";

  private final double epsilon;

  /** @param epsilon added to the std; {@code >= 0} */
  public GrpoAdvantage(double epsilon) {
    if (!(epsilon >= 0) || !Double.isFinite(epsilon)) {
      throw new IllegalArgumentException("epsilon must be finite and >= 0, got " + epsilon);
    }
    this.epsilon = epsilon;
  }

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
    double std = GroupMath.populationStd(rewards, mean);
    for (int i = 0; i < a.length; i++) {
      a[i] = (rewards[i] - mean) / (std + epsilon);
    }
    return a;
  }
}
