package dev.nucleon.core.reward;

import com.typesafe.config.Config;

/**
 * Creates a {@link RewardFunction} by name: the plug-in point for rewards.
 *
 * <p>Implementations are found with {@link java.util.ServiceLoader}: list the class in
 * {@code META-INF/services/dev.nucleon.core.reward.RewardFactory} of a jar on the classpath, and select it with
 * {@code nucleon.reward.name = "<identifier>"}. The factory receives the reward's own config block
 * ({@code nucleon.reward.<identifier>}, merged over the defaults of every {@code reference.conf}) and must validate
 * it, throwing {@link com.typesafe.config.ConfigException} that names the bad key.
 */
public interface RewardFactory {

  /** The name users put in config; lower case letters, digits, '-' and '_'; unique on the classpath. */
  String identifier();

  /** A new reward configured by {@code config} (the reward's own block, possibly empty). */
  RewardFunction create(Config config);
}
