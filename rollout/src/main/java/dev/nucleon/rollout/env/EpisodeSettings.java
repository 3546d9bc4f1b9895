package dev.nucleon.rollout.env;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.nucleon.core.env.EnvironmentRegistry;
import java.time.Duration;

/**
 * {@code nucleon.environment}: which environment a run's episodes use, and their limits.
 *
 * @param name the environment's identifier; empty for single-turn prompts
 * @param timeout wall-clock limit per start and per step
 * @param maxTurns model turns an episode may take (0: no limit of the runner's own)
 * @param maxTokens tokens after the prompt an episode may hold (0: the model's context)
 * @param messageFormat how messages are written without a chat template ({@link TurnFormat#plain})
 * @param config the environment's own block ({@code nucleon.environment.<name>}), possibly empty
 */
public record EpisodeSettings(String name, Duration timeout, int maxTurns, int maxTokens, String messageFormat,
    Config config) {

  private static final String PATH = "nucleon.environment";

  /** Reads and checks {@code nucleon.environment}. */
  public static EpisodeSettings from(Config c) {
    String name = c.getString(PATH + ".name");
    Duration timeout = c.getDuration(PATH + ".timeout");
    if (timeout.isNegative() || timeout.isZero()) {
      throw new ConfigException.BadValue(c.origin(), PATH + ".timeout", "must be positive, got " + timeout);
    }
    int turns = c.getInt(PATH + ".max-turns");
    if (turns < 0) {
      throw new ConfigException.BadValue(c.origin(), PATH + ".max-turns", "must be >= 0 (0: the environment's "
          + "own limit), got " + turns);
    }
    int tokens = c.getInt(PATH + ".max-tokens");
    if (tokens < 0) {
      throw new ConfigException.BadValue(c.origin(), PATH + ".max-tokens", "must be >= 0 (0: the model's "
          + "context), got " + tokens);
    }
    String format = c.getString(PATH + ".message-format");
    try {
      TurnFormat.plain(format);
    } catch (IllegalArgumentException e) {
      throw new ConfigException.BadValue(c.origin(), PATH + ".message-format", e.getMessage());
    }
    Config own = !name.isEmpty() && c.hasPath(PATH + "." + name) ? c.getConfig(PATH + "." + name)
        : com.typesafe.config.ConfigFactory.empty();
    return new EpisodeSettings(name, timeout, turns, tokens, format, own);
  }

  /** Whether the run's rollouts are episodes of an environment. */
  public boolean enabled() {
    return !name.isEmpty();
  }

  /** The tools a tool-using environment declares to the chat template (none for other environments). */
  public java.util.List<java.util.Map<String, Object>> toolDeclarations(EnvironmentRegistry registry) {
    if (!enabled()) {
      return java.util.List.of();
    }
    try (dev.nucleon.core.env.Environment env = registry.create(name, config)) {
      return env instanceof ToolEnvironment tools ? tools.declarations() : java.util.List.of();
    }
  }

  /** The environment behind its guard, from the factories on the classpath. */
  public GuardedEnvironment environment(EnvironmentRegistry registry) {
    return new GuardedEnvironment(registry.create(name, config), name, timeout);
  }
}
