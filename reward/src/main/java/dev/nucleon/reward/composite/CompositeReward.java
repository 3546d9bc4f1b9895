package dev.nucleon.reward.composite;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRegistry;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A weighted sum of named rewards: {@code reward = sum_i weight_i * r_i}.
 *
 * <p>Components of the result: each part's reward under its label, then each part's own components as
 * {@code label.component}. If any part fails, the whole request fails, naming the part; a partial sum would be a
 * silently different reward.
 */
public final class CompositeReward implements RewardFunction {

  /** One weighted part. */
  public record Part(String label, double weight, RewardFunction reward) {}

  private final List<Part> parts;

  public CompositeReward(List<Part> parts) {
    if (parts.isEmpty()) {
      throw new IllegalArgumentException("a composite reward needs at least one component");
    }
    this.parts = List.copyOf(parts);
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    List<RewardResult> each = new ArrayList<>(parts.size());
    for (Part part : parts) {
      each.add(part.reward().scoreOne(request));
    }
    return combine(each);
  }

  @Override
  public List<RewardResult> score(List<RewardRequest> batch) {
    List<List<RewardResult>> byPart = new ArrayList<>(parts.size());
    for (Part part : parts) {
      List<RewardResult> got = part.reward().score(batch);
      if (got == null || got.size() != batch.size()) {
        throw new IllegalStateException("component '" + part.label() + "' returned "
            + (got == null ? "no list" : got.size() + " results") + " for " + batch.size() + " requests");
      }
      byPart.add(got);
    }
    List<RewardResult> out = new ArrayList<>(batch.size());
    for (int i = 0; i < batch.size(); i++) {
      List<RewardResult> each = new ArrayList<>(parts.size());
      for (List<RewardResult> results : byPart) {
        each.add(results.get(i));
      }
      out.add(combine(each));
    }
    return out;
  }

  private RewardResult combine(List<RewardResult> each) {
    double total = 0;
    Map<String, Double> components = new LinkedHashMap<>();
    Map<String, Double> nested = new LinkedHashMap<>();
    for (int k = 0; k < parts.size(); k++) {
      Part part = parts.get(k);
      RewardResult r = each.get(k);
      if (r == null) {
        return RewardResult.failed("component '" + part.label() + "' returned no result");
      }
      if (!r.isOk()) {
        return RewardResult.failed("component '" + part.label() + "' failed: " + r.reason());
      }
      total += part.weight() * r.reward();
      components.put(part.label(), r.reward());
      r.components().forEach((name, value) -> nested.put(part.label() + "." + name, value));
    }
    components.putAll(nested);
    return RewardResult.ok(total, components);
  }

  @Override
  public boolean scoresBatches() {
    return parts.stream().anyMatch(p -> p.reward().scoresBatches());
  }

  @Override
  public void close() {
    RuntimeException first = null;
    for (Part part : parts) {
      try {
        part.reward().close();
      } catch (RuntimeException e) {
        if (first == null) {
          first = e;
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  /**
   * {@code nucleon.reward.composite { components = [ { name = gsm8k, weight = 1.0, label = "correct",
   * config { mode = flexible } }, ... ] }}. A component's {@code config} block overrides that reward's reference
   * defaults ({@code nucleon.reward.<name>} of {@code reference.conf}).
   */
  public static final class Factory implements RewardFactory {
    private final RewardRegistry registry;

    public Factory() {
      this(null);
    }

    /** A factory that looks components up in {@code registry} (null: the classpath's, at creation time). */
    public Factory(RewardRegistry registry) {
      this.registry = registry;
    }

    @Override
    public String identifier() {
      return "composite";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "composite");
      List<? extends Config> list;
      try {
        list = c.getConfigList("components");
      } catch (ConfigException.WrongType e) {
        throw ConfigValues.bad(c, "components", "expected a list of { name, weight, label, config } objects");
      }
      if (list.isEmpty()) {
        throw ConfigValues.bad(c, "components", "is empty: list the rewards to combine");
      }
      RewardRegistry reg = registry != null ? registry : RewardRegistry.load();
      List<Part> parts = new ArrayList<>();
      Set<String> labels = new HashSet<>();
      try {
        for (int i = 0; i < list.size(); i++) {
          Config item = list.get(i);
          String where = "components[" + i + "]";
          String name = sub(item, "name", where, () -> ConfigValues.string(item, "name"));
          if (name.equals("composite") && !item.hasPath("config")) {
            throw ConfigValues.bad(item, "name", where + ": a nested composite needs its own config");
          }
          double weight = item.hasPath("weight") ? sub(item, "weight", where, () -> ConfigValues.finite(item, "weight"))
              : 1.0;
          String label = item.hasPath("label") ? sub(item, "label", where, () -> ConfigValues.string(item, "label"))
              : name;
          if (!labels.add(label)) {
            throw ConfigValues.bad(item, "label", where + ": label '" + label
                + "' is used twice; give the components distinct labels");
          }
          Config own = item.hasPath("config") ? item.getConfig("config") : ConfigFactory.empty();
          parts.add(new Part(label, weight, reg.create(name, own)));
        }
      } catch (RuntimeException e) {
        parts.forEach(p -> p.reward().close());
        throw e;
      }
      return new CompositeReward(parts);
    }

    private static <T> T sub(Config item, String key, String where, java.util.function.Supplier<T> read) {
      try {
        return read.get();
      } catch (ConfigException e) {
        throw new ConfigException.BadValue(item.origin(), "components." + key, where + ": " + e.getMessage());
      }
    }
  }
}
