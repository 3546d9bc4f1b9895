package dev.nucleon.actors.run;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigValue;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Loads a run file: the file, then {@code -Dkey=value} overrides (HOCON values), over every module's
 * {@code reference.conf}. Keys under the namespaces Nucleon owns must exist in a reference.conf: a typo stops the
 * run at start with the key and the file and line where it was written.
 */
public final class RunConfig {

  /** Namespaces whose keys are all known in advance (reward plug-ins and datasets check their own blocks). */
  static final List<String> CHECKED = List.of("nucleon.run", "nucleon.model", "nucleon.rollout", "nucleon.learner",
      "nucleon.reward-scorer", "nucleon.cluster", "nucleon.algorithm", "nucleon.replay", "nucleon.monitor");

  private RunConfig() {}

  public static Config load(Path file, Map<String, String> overrides) {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(file + ": run file not found");
    }
    Config user = ConfigFactory.parseFile(file.toFile(), ConfigParseOptions.defaults().setAllowMissing(false));
    for (var e : overrides.entrySet()) {
      Config o = ConfigFactory.parseString(e.getKey() + " = " + quoteIfNeeded(e.getValue()),
          ConfigParseOptions.defaults().setOriginDescription("-D" + e.getKey()));
      user = o.withFallback(user);
    }
    Config reference = ConfigFactory.defaultReference();
    checkKnownKeys(user, reference);
    return user.withFallback(reference).resolve();
  }

  private static String quoteIfNeeded(String v) {
    String t = v.trim();
    if (t.isEmpty()) {
      return "\"\"";
    }
    try {
      ConfigFactory.parseString("x = " + t);
      return t;
    } catch (ConfigException e) {
      return "\"" + t.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
  }

  /** Every key the user set under a checked namespace must exist in the reference. */
  static void checkKnownKeys(Config user, Config reference) {
    for (Map.Entry<String, ConfigValue> e : user.entrySet()) {
      String key = e.getKey();
      boolean checked = CHECKED.stream().anyMatch(ns -> key.equals(ns) || key.startsWith(ns + "."));
      if (checked && !reference.hasPathOrNull(key)) {
        throw new ConfigException.BadPath(e.getValue().origin(), key,
            "unknown key (not in any reference.conf); check its spelling");
      }
    }
  }
}
