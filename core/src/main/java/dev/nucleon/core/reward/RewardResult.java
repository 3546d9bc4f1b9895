package dev.nucleon.core.reward;

import java.util.Map;
import java.util.Objects;

/**
 * The reward of one completion: a scalar, its named components (for example {@code correct}, {@code format},
 * {@code length}) and whether scoring worked.
 *
 * <p>A failed result is never a silent zero: {@link #outcome()} is {@link Outcome#FAILED} and {@link #reason()}
 * says why. What a consumer does with a failed sample (drop it, drop its group, or score it 0) is its own policy.
 *
 * @param reward the scalar reward; {@code NaN} when the outcome is {@link Outcome#FAILED}
 * @param components named parts of the reward, in a stable order
 * @param outcome {@code OK} or {@code FAILED}
 * @param reason why scoring failed; {@code null} when it worked
 */
public record RewardResult(double reward, Map<String, Double> components, Outcome outcome, String reason) {

  /** Whether a reward could be computed. */
  public enum Outcome {
    OK,
    FAILED;

    /** The lower-case name used in JSON and metric labels. */
    public String label() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  public RewardResult {
    Objects.requireNonNull(outcome, "outcome");
    components = components == null ? Map.of() : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(components));
    if (outcome == Outcome.OK && !Double.isFinite(reward)) {
      throw new IllegalArgumentException("an ok reward must be finite, got " + reward);
    }
    if (outcome == Outcome.FAILED && (reason == null || reason.isBlank())) {
      throw new IllegalArgumentException("a failed reward needs a reason");
    }
  }

  /** A successful reward without components. */
  public static RewardResult ok(double reward) {
    return new RewardResult(reward, Map.of(), Outcome.OK, null);
  }

  /** A successful reward with named components. */
  public static RewardResult ok(double reward, Map<String, Double> components) {
    return new RewardResult(reward, components, Outcome.OK, null);
  }

  /** A failed reward: no value, a reason. */
  public static RewardResult failed(String reason) {
    return new RewardResult(Double.NaN, Map.of(), Outcome.FAILED, reason);
  }

  public boolean isOk() {
    return outcome == Outcome.OK;
  }
}
