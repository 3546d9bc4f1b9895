package dev.nucleon.reward;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;

/**
 * The framework part of {@code nucleon.reward}: which reward to run and how the guard runs it. Each reward's own
 * block ({@code nucleon.reward.<name>}) is validated by its factory.
 *
 * @param name the reward identifier ({@code nucleon.reward.name})
 * @param timeout the wall-clock limit per request, or per batch for rewards that score batches
 * @param parallelism how many requests of one batch are scored at once
 * @param rewardConfig the reward's own config block ({@code nucleon.reward.<name>}), possibly empty
 */
public record RewardSettings(String name, Duration timeout, int parallelism, Config rewardConfig) {

  public static final String PATH = "nucleon.reward";

  /** Reads {@code nucleon.reward} from a full config (application over reference). */
  public static RewardSettings from(Config root) {
    if (!root.hasPath(PATH)) {
      throw new ConfigException.Missing(root.origin(), PATH);
    }
    String name = ConfigValues.string(root, PATH + ".name").trim();
    if (name.isEmpty()) {
      throw ConfigValues.bad(root, PATH + ".name", "is empty: name the reward to run (e.g. \"gsm8k\")");
    }
    Duration timeout = ConfigValues.positiveDuration(root, PATH + ".timeout");
    int parallelism = ConfigValues.intAtLeast(root, PATH + ".parallelism", 1);
    String own = PATH + "." + quoted(name);
    Config rewardConfig = root.hasPath(own) ? root.getConfig(own) : ConfigFactory.empty();
    return new RewardSettings(name, timeout, parallelism, rewardConfig);
  }

  private static String quoted(String key) {
    return "\"" + key.replace("\"", "\\\"") + "\"";
  }
}
