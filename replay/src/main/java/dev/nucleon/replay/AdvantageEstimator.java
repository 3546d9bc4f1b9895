package dev.nucleon.replay;

import java.util.List;
import java.util.Locale;

/**
 * Turns the rewards of one group (all G samples of one prompt, minus any that were dropped) into per-sample
 * advantages, optionally followed by a normalization over the whole training batch.
 *
 * <p>Config {@code nucleon.algorithm.advantage}: {@code grpo} ({@link GrpoAdvantage}), {@code dr-grpo}
 * ({@link DrGrpoAdvantage}), {@code rloo} ({@link RlooAdvantage}), {@code reinforce-pp}
 * ({@link ReinforcePlusPlusAdvantage}).
 *
 * <p>Every estimator returns exact zeros for a group whose rewards are all equal (including a group of one), never
 * NaN. Statistics are computed in double; the learner gets a float per sample.
 */
public interface AdvantageEstimator {

  /** The config identifier of the estimator. */
  String id();

  /**
   * Per-sample advantages of one group, in the order of {@code rewards}.
   *
   * @param rewards the rewards of every remaining scored sample of the group; at least one
   */
  double[] groupAdvantages(double[] rewards);

  /**
   * Second stage, applied once per training batch to the concatenated group advantages of every sample the batch
   * trains on. The default leaves them as they are.
   *
   * @param advantages group advantages of the whole batch; normalized in place
   */
  default void normalizeBatch(double[] advantages) {}

  /** The identifiers {@link #create} accepts. */
  static List<String> ids() {
    return List.of(GrpoAdvantage.ID, DrGrpoAdvantage.ID, RlooAdvantage.ID, ReinforcePlusPlusAdvantage.ID);
  }

  /**
   * The estimator named by a config identifier.
   *
   * @param id one of {@link #ids()}
   * @param epsilon added to the standard deviation by the estimators that divide by one ({@code grpo},
   *     {@code reinforce-pp}); ignored by the others
   */
  static AdvantageEstimator create(String id, double epsilon) {
    switch (id.trim().toLowerCase(Locale.ROOT)) {
      case GrpoAdvantage.ID:
        return new GrpoAdvantage(epsilon);
      case DrGrpoAdvantage.ID:
        return new DrGrpoAdvantage();
      case RlooAdvantage.ID:
        return new RlooAdvantage();
      case ReinforcePlusPlusAdvantage.ID:
        return new ReinforcePlusPlusAdvantage(epsilon);
      default:
        throw new IllegalArgumentException(
            "unknown advantage estimator '" + id + "', expected one of " + String.join(", ", ids()));
    }
  }
}
