package dev.nucleon.reward;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigOrigin;
import com.typesafe.config.ConfigValueType;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * Reads and validates reward config values; every error is a {@link ConfigException} naming the key and, through
 * the value's origin, the file and line it came from.
 */
public final class ConfigValues {

  private ConfigValues() {}

  /** {@code config} over the defaults of {@code nucleon.reward.<block>} from every {@code reference.conf}. */
  public static Config withDefaults(Config config, String block) {
    Config reference = ConfigFactory.defaultReference(ConfigValues.class.getClassLoader());
    String path = "nucleon.reward." + block;
    Config defaults = reference.hasPath(path) ? reference.getConfig(path) : ConfigFactory.empty();
    return config.withFallback(defaults).resolve();
  }

  /** An error about {@code key}, located at the value's origin (or the block's when the key is missing). */
  public static ConfigException bad(Config config, String key, String message) {
    ConfigOrigin origin = config.hasPathOrNull(key) ? config.getValue(key).origin() : config.origin();
    return new ConfigException.BadValue(origin, key, message);
  }

  public static String string(Config config, String key) {
    require(config, key);
    try {
      return config.getString(key);
    } catch (ConfigException.WrongType e) {
      throw bad(config, key, "expected a string");
    }
  }

  /** A string that must be one of {@code allowed} (compared in lower case). */
  public static String oneOf(Config config, String key, List<String> allowed) {
    String value = string(config, key).trim().toLowerCase(Locale.ROOT);
    if (!allowed.contains(value)) {
      throw bad(config, key, "expected one of " + allowed + ", got '" + config.getString(key) + "'");
    }
    return value;
  }

  public static List<String> stringList(Config config, String key) {
    require(config, key);
    if (config.getValue(key).valueType() == ConfigValueType.STRING) {
      return List.of(config.getString(key));
    }
    try {
      return config.getStringList(key);
    } catch (ConfigException.WrongType e) {
      throw bad(config, key, "expected a list of strings");
    }
  }

  public static int intAtLeast(Config config, String key, int min) {
    require(config, key);
    int value;
    try {
      value = config.getInt(key);
    } catch (ConfigException.WrongType e) {
      throw bad(config, key, "expected an integer");
    }
    if (value < min) {
      throw bad(config, key, "must be at least " + min + ", got " + value);
    }
    return value;
  }

  public static double finite(Config config, String key) {
    require(config, key);
    double value;
    try {
      value = config.getDouble(key);
    } catch (ConfigException.WrongType e) {
      throw bad(config, key, "expected a number");
    }
    if (!Double.isFinite(value)) {
      throw bad(config, key, "must be a finite number, got " + value);
    }
    return value;
  }

  public static double between(Config config, String key, double min, double max) {
    double value = finite(config, key);
    if (value < min || value > max) {
      throw bad(config, key, "must be between " + min + " and " + max + ", got " + value);
    }
    return value;
  }

  public static boolean bool(Config config, String key) {
    require(config, key);
    try {
      return config.getBoolean(key);
    } catch (ConfigException.WrongType e) {
      throw bad(config, key, "expected true or false");
    }
  }

  /** A strictly positive duration ({@code 10s}, {@code 500ms}). */
  public static Duration positiveDuration(Config config, String key) {
    require(config, key);
    Duration value;
    try {
      value = config.getDuration(key);
    } catch (ConfigException.BadValue | ConfigException.WrongType e) {
      throw bad(config, key, "expected a duration such as 10s or 500ms");
    }
    if (value.isZero() || value.isNegative()) {
      throw bad(config, key, "must be positive, got " + value);
    }
    return value;
  }

  /** A duration that may be zero. */
  public static Duration duration(Config config, String key) {
    require(config, key);
    Duration value;
    try {
      value = config.getDuration(key);
    } catch (ConfigException.BadValue | ConfigException.WrongType e) {
      throw bad(config, key, "expected a duration such as 10s or 500ms");
    }
    if (value.isNegative()) {
      throw bad(config, key, "must not be negative, got " + value);
    }
    return value;
  }

  private static void require(Config config, String key) {
    if (!config.hasPath(key)) {
      throw new ConfigException.Missing(config.origin(), key);
    }
  }
}
