package dev.nucleon.core.reward;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The reward factories on the classpath, by identifier.
 *
 * <p>Built with {@link #load()} (ServiceLoader discovery) or {@link #of(List)}; two factories with one identifier,
 * or an identifier that is not a plain name, are refused when the registry is built, so a classpath conflict shows
 * at start rather than as the wrong reward mid-run.
 */
public final class RewardRegistry {

  private static final Pattern IDENTIFIER = Pattern.compile("[a-z0-9][a-z0-9_-]*");

  private final Map<String, RewardFactory> factories;

  private RewardRegistry(Map<String, RewardFactory> factories) {
    this.factories = Collections.unmodifiableMap(factories);
  }

  /** The factories listed in {@code META-INF/services} of the context (or this class's) class loader. */
  public static RewardRegistry load() {
    ClassLoader loader = Thread.currentThread().getContextClassLoader();
    return load(loader == null ? RewardRegistry.class.getClassLoader() : loader);
  }

  /** The factories listed in {@code META-INF/services} visible to {@code loader}. */
  public static RewardRegistry load(ClassLoader loader) {
    List<RewardFactory> found = new ArrayList<>();
    try {
      for (RewardFactory factory : ServiceLoader.load(RewardFactory.class, loader)) {
        found.add(factory);
      }
    } catch (ServiceConfigurationError e) {
      throw new IllegalStateException("a reward factory on the classpath could not be loaded: " + e.getMessage(), e);
    }
    return of(found);
  }

  /** A registry of exactly these factories. */
  public static RewardRegistry of(List<? extends RewardFactory> list) {
    Map<String, RewardFactory> byName = new TreeMap<>();
    for (RewardFactory factory : list) {
      String id = factory.identifier();
      if (id == null || !IDENTIFIER.matcher(id).matches()) {
        throw new IllegalStateException(
            "reward factory " + factory.getClass().getName() + " has an invalid identifier '" + id
                + "' (expected lower case letters, digits, '-' or '_')");
      }
      RewardFactory previous = byName.putIfAbsent(id, factory);
      if (previous != null) {
        throw new IllegalStateException(
            "two reward factories claim the identifier '" + id + "': " + previous.getClass().getName() + " ("
                + where(previous) + ") and " + factory.getClass().getName() + " (" + where(factory)
                + "); remove one of the jars from the classpath");
      }
    }
    return new RewardRegistry(byName);
  }

  private static String where(RewardFactory factory) {
    var source = factory.getClass().getProtectionDomain().getCodeSource();
    return source == null || source.getLocation() == null ? "unknown location" : source.getLocation().toString();
  }

  /** The identifiers available, sorted. */
  public List<String> names() {
    return List.copyOf(factories.keySet());
  }

  /** Whether a factory has this identifier. */
  public boolean contains(String name) {
    return factories.containsKey(name);
  }

  /** The factory for {@code name}; an unknown name lists the available ones. */
  public RewardFactory factory(String name) {
    Objects.requireNonNull(name, "name");
    RewardFactory factory = factories.get(name);
    if (factory == null) {
      throw new IllegalArgumentException(
          "unknown reward '" + name + "'; available rewards: " + String.join(", ", names())
              + " (a third-party reward must be a jar on the classpath with META-INF/services/"
              + RewardFactory.class.getName() + ")");
    }
    return factory;
  }

  /** A new reward {@code name} configured by {@code config} (its own block). */
  public RewardFunction create(String name, Config config) {
    RewardFactory factory = factory(name);
    try {
      return factory.create(config == null ? ConfigFactory.empty() : config);
    } catch (ConfigException e) {
      throw new ConfigException.Generic("reward '" + name + "' (nucleon.reward." + name + "): " + e.getMessage(), e);
    }
  }
}
