package dev.nucleon.core.env;

import java.util.List;
import java.util.Objects;

/**
 * An environment's answer to one model turn.
 *
 * @param observation messages added after the model's turn (empty when the episode ends without one)
 * @param reward the episode's reward when it ends here, or null (the run's reward scores the episode instead)
 * @param done whether the episode ends
 * @param endReason why it ended (for the run's records), or null while it goes on
 * @param failure why the environment failed (it threw, hung, answered nonsense), or null: a failed episode is
 *     dropped as a failed reward is, never scored as a zero
 */
public record StepResult(List<EnvMessage> observation, Double reward, boolean done, String endReason,
    String failure) {

  public StepResult {
    observation = observation == null ? List.of() : List.copyOf(observation);
    if (reward != null && !Double.isFinite(reward)) {
      throw new IllegalArgumentException("an episode's reward must be finite, got " + reward);
    }
    if (failure != null && !done) {
      throw new IllegalArgumentException("a failed step ends its episode");
    }
  }

  /** The episode goes on with these messages. */
  public static StepResult observe(EnvMessage... messages) {
    return new StepResult(List.of(messages), null, false, null, null);
  }

  /** The episode ends with a reward (null: the run's reward decides). */
  public static StepResult end(Double reward, String reason) {
    return new StepResult(List.of(), reward, true, Objects.requireNonNull(reason, "reason"), null);
  }

  /** The environment failed; the episode ends without a reward. */
  public static StepResult failed(String why) {
    return new StepResult(List.of(), null, true, "failed", Objects.requireNonNull(why, "why"));
  }

  public boolean isFailed() {
    return failure != null;
  }
}
