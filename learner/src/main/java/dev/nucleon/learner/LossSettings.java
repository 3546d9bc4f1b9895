package dev.nucleon.learner;

import java.util.Locale;

/**
 * How the policy-gradient loss is formed (config {@code nucleon.algorithm.loss}).
 *
 * @param clipLow PPO ratio floor is {@code 1 - clipLow}
 * @param clipHigh PPO ratio ceiling is {@code 1 + clipHigh} (DAPO's clip-higher sets it above clipLow)
 * @param tisCap truncated importance sampling: when above 0, the clipped ratio is taken against the policy at the
 *     start of the step (proximal) and every token is weighted by {@code min(pi_prox / pi_behaviour, tisCap)};
 *     0 turns it off and the ratio is taken against the behaviour policy directly
 * @param aggregation how token losses become one number
 * @param normalizerConstant the constant of {@link Aggregation#CONSTANT_NORMALIZER} (e.g. the max completion length)
 * @param klCoef weight of the KL penalty against the reference model; 0 turns it off
 * @param klEstimator k1 or k3
 */
public record LossSettings(double clipLow, double clipHigh, double tisCap, Aggregation aggregation,
    double normalizerConstant, double klCoef, KlEstimator klEstimator) {

  /** Token-loss aggregation. */
  public enum Aggregation {
    /** Sum over every completion token of the batch, divided by their number (DAPO). */
    TOKEN_MEAN,
    /** Mean over tokens within each sequence, then mean over sequences (the GRPO paper). */
    SEQUENCE_MEAN,
    /** Sum over every completion token, divided by sequences x a constant (Dr. GRPO). */
    CONSTANT_NORMALIZER;

    static Aggregation parse(String s) {
      return valueOf(s.trim().toUpperCase(Locale.ROOT).replace('-', '_'));
    }
  }

  /** KL estimators of Schulman's "Approximating KL divergence" note, with r = pi_ref / pi. */
  public enum KlEstimator {
    /** {@code log pi - log pi_ref}: unbiased, can be negative per token. */
    K1,
    /** {@code r - 1 - log r}: unbiased, always >= 0, lower variance. */
    K3;

    static KlEstimator parse(String s) {
      return valueOf(s.trim().toUpperCase(Locale.ROOT));
    }
  }

  public LossSettings {
    if (!(clipLow >= 0 && clipLow < 1)) {
      throw new IllegalArgumentException("clip-low must be in [0, 1), got " + clipLow);
    }
    if (!(clipHigh >= 0)) {
      throw new IllegalArgumentException("clip-high must be >= 0, got " + clipHigh);
    }
    if (!(tisCap >= 0)) {
      throw new IllegalArgumentException("tis-cap must be >= 0 (0 = off), got " + tisCap);
    }
    if (aggregation == Aggregation.CONSTANT_NORMALIZER && !(normalizerConstant > 0)) {
      throw new IllegalArgumentException("normalizer-constant must be > 0 for constant-normalizer, got "
          + normalizerConstant);
    }
    if (!(klCoef >= 0)) {
      throw new IllegalArgumentException("kl-coef must be >= 0, got " + klCoef);
    }
  }

  /** PPO clip 0.2 both sides, token mean, no TIS, no KL. */
  public static LossSettings defaults() {
    return new LossSettings(0.2, 0.2, 0, Aggregation.TOKEN_MEAN, 1, 0, KlEstimator.K3);
  }
}
