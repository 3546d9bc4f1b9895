package dev.nucleon.replay;

/**
 * REINFORCE leave-one-out (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for free!"; Ahmadian et al.
 * 2024, "Back to Basics"): each sample's baseline is the mean reward of the group's other samples.
 *
 * <pre>
 *   A_i = r_i - (1/(n-1)) sum_{j != i} r_j  =  n/(n-1) * (r_i - mean(r))
 * </pre>
 *
 * with n the number of remaining scored samples. A group of one has no other sample: its advantage is 0 (the
 * sample carries no learning signal), as is every advantage of a group whose rewards are all equal. Example: rewards
 * (1, 0, 0, 0) give (1 - 0, 0 - 1/3, 0 - 1/3, 0 - 1/3) = (1, -1/3, -1/3, -1/3).
 */
public final class RlooAdvantage implements AdvantageEstimator {
  /** Config identifier. */
  public static final String ID = "rloo";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public double[] groupAdvantages(double[] rewards) {
    GroupMath.requireNonEmptyFinite(rewards);
    int n = rewards.length;
    double[] a = new double[n];
    if (n == 1 || GroupMath.allEqual(rewards)) {
      return a;
    }
    double sum = 0;
    for (double r : rewards) {
      sum += r;
    }
    for (int i = 0; i < n; i++) {
      a[i] = rewards[i] - (sum - rewards[i]) / (n - 1);
    }
    return a;
  }
}
