package dev.nucleon.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * The factories of one kind of plug-in (rewards, environments) on the classpath, by identifier.
 *
 * <p>Two factories with one identifier, or an identifier that is not a plain name, are refused when the registry
 * is built, so a classpath conflict shows at start rather than as the wrong plug-in mid-run; an unknown name lists
 * the available ones.
 *
 * @param <F> the factory type (found by {@link ServiceLoader})
 */
public final class Plugins<F> {

  private static final Pattern IDENTIFIER = Pattern.compile("[a-z0-9][a-z0-9_-]*");

  private final String kind;
  private final Class<F> type;
  private final Map<String, F> factories;

  private Plugins(String kind, Class<F> type, Map<String, F> factories) {
    this.kind = kind;
    this.type = type;
    this.factories = Collections.unmodifiableMap(factories);
  }

  /** The factories listed in {@code META-INF/services/<type>} visible to {@code loader}. */
  public static <F> Plugins<F> load(String kind, Class<F> type, Function<F, String> identifier,
      ClassLoader loader) {
    List<F> found = new ArrayList<>();
    try {
      for (F factory : ServiceLoader.load(type, loader)) {
        found.add(factory);
      }
    } catch (ServiceConfigurationError e) {
      throw new IllegalStateException("a " + kind + " factory on the classpath could not be loaded: "
          + e.getMessage(), e);
    }
    return of(kind, type, identifier, found);
  }

  /** The context class loader, else the one that loaded {@code type}. */
  public static ClassLoader defaultLoader(Class<?> type) {
    ClassLoader loader = Thread.currentThread().getContextClassLoader();
    return loader == null ? type.getClassLoader() : loader;
  }

  /** A registry of exactly these factories. */
  public static <F> Plugins<F> of(String kind, Class<F> type, Function<F, String> identifier,
      List<? extends F> list) {
    Map<String, F> byName = new TreeMap<>();
    for (F factory : list) {
      String id = identifier.apply(factory);
      if (id == null || !IDENTIFIER.matcher(id).matches()) {
        throw new IllegalStateException(kind + " factory " + factory.getClass().getName() + " has an invalid "
            + "identifier '" + id + "' (expected lower case letters, digits, '-' or '_')");
      }
      F previous = byName.putIfAbsent(id, factory);
      if (previous != null) {
        throw new IllegalStateException("two " + kind + " factories claim the identifier '" + id + "': "
            + previous.getClass().getName() + " (" + where(previous) + ") and " + factory.getClass().getName()
            + " (" + where(factory) + "); remove one of the jars from the classpath");
      }
    }
    return new Plugins<>(kind, type, byName);
  }

  private static String where(Object factory) {
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
  public F factory(String name) {
    Objects.requireNonNull(name, "name");
    F factory = factories.get(name);
    if (factory == null) {
      throw new IllegalArgumentException("unknown " + kind + " '" + name + "'; available " + kind + "s: "
          + String.join(", ", names()) + " (a third-party " + kind + " must be a jar on the classpath with "
          + "META-INF/services/" + type.getName() + ")");
    }
    return factory;
  }
}
