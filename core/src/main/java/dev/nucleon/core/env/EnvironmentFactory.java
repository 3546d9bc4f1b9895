package dev.nucleon.core.env;

import com.typesafe.config.Config;

/**
 * Creates an {@link Environment} by name: the plug-in point for environments, as {@code RewardFactory} is for
 * rewards. List the class in {@code META-INF/services/dev.nucleon.core.env.EnvironmentFactory} of a jar on the
 * classpath and select it with {@code nucleon.environment.name = "<identifier>"}; the factory receives its own
 * block ({@code nucleon.environment.<identifier>}) and must validate it, throwing
 * {@link com.typesafe.config.ConfigException} that names the bad key.
 */
public interface EnvironmentFactory {

  /** The name users put in config; lower case letters, digits, '-' and '_'; unique on the classpath. */
  String identifier();

  /** A new environment configured by {@code config} (its own block, possibly empty). */
  Environment create(Config config);
}
