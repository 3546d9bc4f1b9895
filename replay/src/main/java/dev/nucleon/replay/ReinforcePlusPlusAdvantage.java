package dev.nucleon.replay;

/**
 * REINFORCE++ with the group-mean baseline (Hu et al. 2025, "REINFORCE++"; OpenRLHF's {@code reinforce_baseline}):
 * subtract the group mean, then normalize over the whole training batch.
 *
 * <pre>
 *   stage 1 (per group):  a_i = r_i - mean_group(r)
 *   stage 2 (per batch):  A_i = (a_i - mean_batch(a)) / (std_batch(a) + eps)
 * </pre>
 *
 * std_batch is the population std over every sample the batch trains on (one value per sample, not per token), eps
 * is {@code nucleon.algorithm.advantage-epsilon}. A group whose rewards are all equal gives exact zeros in stage 1;
 * if every stage-1 value of the batch is equal, stage 2 gives exact zeros. Example: groups (1, 0) and (1, 1, 0, 0)
 * give stage 1 (0.5, -0.5, 0.5, 0.5, -0.5, -0.5), whose batch mean is 0 and std 0.5, so A = +-0.5/(0.5+eps).
 *
 * <p>Departures: OpenRLHF whitens per token (each sequence's advantage repeated over its tokens, so long sequences
 * weigh more in the batch statistics); here it is per sample. REINFORCE++ also folds a per-token KL penalty into the
 * reward before normalizing; here a KL term, if any, is the learner's (a loss term), not part of the advantage.
 */
public final class ReinforcePlusPlusAdvantage implements AdvantageEstimator {
  /** Config identifier. */
  public static final String ID = "reinforce-pp";

  private final double epsilon;

  /** @param epsilon added to the batch std; {@code >= 0} */
  public ReinforcePlusPlusAdvantage(double epsilon) {
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
    return new DrGrpoAdvantage().groupAdvantages(rewards);
  }

  @Override
  public void normalizeBatch(double[] advantages) {
    if (advantages.length == 0) {
      return;
    }
    if (GroupMath.allEqual(advantages)) {
      java.util.Arrays.fill(advantages, 0.0);
      return;
    }
    double mean = GroupMath.mean(advantages);
    double std = GroupMath.populationStd(advantages, mean);
    for (int i = 0; i < advantages.length; i++) {
      advantages[i] = (advantages[i] - mean) / (std + epsilon);
    }
  }
}
