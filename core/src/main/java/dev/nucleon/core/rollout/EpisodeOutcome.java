package dev.nucleon.core.rollout;

/**
 * How a multi-turn episode went, as its trajectory carries it to the reward scorer and the run's records.
 *
 * @param turns model turns taken
 * @param endReason why it ended: the environment's reason, {@code max_turns}, {@code max_tokens}, or
 *     {@code failed}
 * @param reward the environment's reward, or null (the run's reward scores the last model turn)
 * @param failure why the environment failed (the episode is dropped like a failed reward), or null
 * @param counters what the episode counted (tool calls, malformed calls, ...); empty when nothing
 */
public record EpisodeOutcome(int turns, String endReason, Double reward, String failure,
    java.util.Map<String, Long> counters) {

  public EpisodeOutcome {
    if (turns < 0) {
      throw new IllegalArgumentException("turns must be >= 0, got " + turns);
    }
    endReason = endReason == null ? "" : endReason;
    counters = counters == null ? java.util.Map.of() : java.util.Map.copyOf(counters);
    if (reward != null && !Double.isFinite(reward)) {
      throw new IllegalArgumentException("an episode's reward must be finite, got " + reward);
    }
  }
}
