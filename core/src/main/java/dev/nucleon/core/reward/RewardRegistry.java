package dev.nucleon.core.reward;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.Plugins;
import java.util.List;

/**
 * The reward factories on the classpath, by identifier.
 *
 * <p>Built with {@link #load()} (ServiceLoader discovery) or {@link #of(List)}; two factories with one identifier,
 * or an identifier that is not a plain name, are refused when the registry is built, so a classpath conflict shows
 * at start rather than as the wrong reward mid-run.
 */
public final class RewardRegistry {

  private final Plugins<RewardFactory> factories;

  private RewardRegistry(Plugins<RewardFactory> factories) {
    this.factories = factories;
  }

  /** The factories listed in {@code META-INF/services} of the context (or this class's) class loader. */
  public static RewardRegistry load() {
    return load(Plugins.defaultLoader(RewardRegistry.class));
  }

  /** The factories listed in {@code META-INF/services} visible to {@code loader}. */
  public static RewardRegistry load(ClassLoader loader) {
    return new RewardRegistry(Plugins.load("reward", RewardFactory.class, RewardFactory::identifier, loader));
  }

  /** A registry of exactly these factories. */
  public static RewardRegistry of(List<? extends RewardFactory> list) {
    return new RewardRegistry(Plugins.of("reward", RewardFactory.class, RewardFactory::identifier, list));
  }

  /** The identifiers available, sorted. */
  public List<String> names() {
    return factories.names();
  }

  /** Whether a factory has this identifier. */
  public boolean contains(String name) {
    return factories.contains(name);
  }

  /** The factory for {@code name}; an unknown name lists the available ones. */
  public RewardFactory factory(String name) {
    return factories.factory(name);
  }

  /** A new reward {@code name} configured by {@code config} (its own block). */
  public RewardFunction create(String name, Config config) {
    RewardFactory factory = factories.factory(name);
    try {
      return factory.create(config == null ? ConfigFactory.empty() : config);
    } catch (ConfigException e) {
      throw new ConfigException.Generic("reward '" + name + "' (nucleon.reward." + name + "): " + e.getMessage(), e);
    }
  }
}
