package dev.nucleon.core.env;

import java.util.List;
import java.util.Map;

/**
 * One episode of an {@link Environment}: the model's turns go in, observations come out, until it is done. Each
 * episode is used by one thread at a time; episodes of one environment may run at once.
 */
public interface Episode extends AutoCloseable {

  /** Messages added after the prompt, before the model's first turn; none by default. */
  default List<EnvMessage> opening() {
    return List.of();
  }

  /**
   * The environment's answer to the model's turn (its decoded text, stop token excluded). May throw or hang: the
   * framework's guard turns either into a failed step with the reason.
   */
  StepResult step(String modelTurn);

  /**
   * Counts the episode keeps so far (tool calls, malformed calls, ...), summed per training step into the run's
   * metrics as {@code episode_<name>}; none by default.
   */
  default Map<String, Long> counters() {
    return Map.of();
  }

  /** Releases what the episode holds (a sandbox, a connection); nothing by default. */
  @Override
  default void close() {}
}
