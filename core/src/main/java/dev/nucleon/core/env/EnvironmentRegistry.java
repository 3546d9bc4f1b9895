package dev.nucleon.core.env;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.Plugins;
import java.util.List;

/** The environment factories on the classpath, by identifier (the same rules as the reward registry's). */
public final class EnvironmentRegistry {

  private final Plugins<EnvironmentFactory> factories;

  private EnvironmentRegistry(Plugins<EnvironmentFactory> factories) {
    this.factories = factories;
  }

  /** The factories listed in {@code META-INF/services} of the context (or this class's) class loader. */
  public static EnvironmentRegistry load() {
    return new EnvironmentRegistry(Plugins.load("environment", EnvironmentFactory.class,
        EnvironmentFactory::identifier, Plugins.defaultLoader(EnvironmentRegistry.class)));
  }

  /** A registry of exactly these factories. */
  public static EnvironmentRegistry of(List<? extends EnvironmentFactory> list) {
    return new EnvironmentRegistry(Plugins.of("environment", EnvironmentFactory.class,
        EnvironmentFactory::identifier, list));
  }

  /** The identifiers available, sorted. */
  public List<String> names() {
    return factories.names();
  }

  /** A new environment {@code name} configured by {@code config} (its own block). */
  public Environment create(String name, Config config) {
    EnvironmentFactory factory = factories.factory(name);
    try {
      return factory.create(config == null ? ConfigFactory.empty() : config);
    } catch (ConfigException e) {
      throw new ConfigException.Generic("environment '" + name + "' (nucleon.environment." + name + "): "
          + e.getMessage(), e);
    }
  }
}
