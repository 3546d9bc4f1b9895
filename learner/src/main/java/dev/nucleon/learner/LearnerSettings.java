package dev.nucleon.learner;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.nucleon.model.lora.PeftAdapter;
import java.util.Locale;
import java.util.function.DoublePredicate;

/**
 * The learner's settings, read once from config and validated at start: a wrong value stops the run with the key,
 * the file and line it came from, and what was expected.
 *
 * @param loss the policy-gradient loss ({@code nucleon.algorithm.loss})
 * @param optimizer AdamW and its schedule ({@code nucleon.learner})
 * @param temperature the rollouts' sampling temperature ({@code nucleon.algorithm.temperature})
 * @param spikes the gradient-spike guard ({@code nucleon.learner.grad-spike-*})
 * @param updates optimizer steps per training batch ({@code nucleon.learner.epochs} and {@code minibatches})
 * @param lora LoRA adapters to train on a frozen base ({@code nucleon.learner.lora}), or null to train every weight
 * @param routingReplay whether a mixture-of-experts policy is scored with the experts the rollout chose
 *     ({@code nucleon.learner.routing-replay})
 * @param routerAuxLossCoef the weight of a mixture-of-experts policy's load-balancing loss, 0 for none
 *     ({@code nucleon.learner.router-aux-loss-coef})
 * @param sharePrompts whether samples with one prompt share its forward pass ({@code nucleon.learner.share-prompts},
 *     {@link Learner#setSharedPrompts})
 */
public record LearnerSettings(LossSettings loss, OptimizerSettings optimizer, float temperature,
    GradSpikeGuard.Settings spikes, Updates updates, PeftAdapter.Settings lora, RoutingReplay routingReplay,
    double routerAuxLossCoef, boolean sharePrompts) {

  /** Which experts the learner's forward pass of a mixture-of-experts policy uses. */
  public enum RoutingReplay {
    /** Its own routers' choices; where they differ from the rollout's is measured (router_disagreement). */
    OFF,
    /** The choices the rollout recorded for each token (R3); the router still gets gradients through the weights. */
    ROLLOUT;

    static RoutingReplay parse(String s) {
      return switch (s) {
        case "off" -> OFF;
        case "rollout" -> ROLLOUT;
        default -> throw new IllegalArgumentException(s);
      };
    }
  }

  public static LearnerSettings from(Config config) {
    String l = "nucleon.algorithm.loss.";
    String o = "nucleon.learner.optimizer.";
    String s = "nucleon.learner.schedule.";
    LossSettings.Aggregation aggregation = choice(config, l + "aggregation", LossSettings.Aggregation::parse,
        "token-mean, sequence-mean or constant-normalizer");
    LossSettings loss = new LossSettings(
        number(config, l + "clip-low", v -> v >= 0 && v < 1, "a number in [0, 1)"),
        number(config, l + "clip-high", v -> v >= 0, "a number >= 0"),
        number(config, l + "tis-cap", v -> v >= 0, "a number >= 0 (0 = off)"),
        aggregation,
        number(config, l + "normalizer-constant", v -> v > 0, "a number > 0"),
        number(config, l + "kl-coef", v -> v >= 0, "a number >= 0 (0 = off)"),
        choice(config, l + "kl-estimator", LossSettings.KlEstimator::parse, "k1 or k3"));
    LrSchedule.Type type = choice(config, s + "type", LrSchedule.Type::parse, "constant, linear or cosine");
    int warmup = (int) number(config, s + "warmup-steps", v -> v >= 0 && v == Math.rint(v), "an integer >= 0");
    int total = (int) number(config, s + "total-steps", v -> v >= 0 && v == Math.rint(v), "an integer >= 0");
    if (type != LrSchedule.Type.CONSTANT && total <= warmup) {
      throw new ConfigException.BadValue(config.origin(), s + "total-steps",
          "must be greater than warmup-steps (" + warmup + ") for a " + type.name().toLowerCase(Locale.ROOT)
              + " schedule");
    }
    LrSchedule schedule = new LrSchedule(type, warmup, total,
        number(config, s + "min-lr-ratio", v -> v >= 0 && v <= 1, "a number in [0, 1]"));
    OptimizerSettings optimizer = new OptimizerSettings(
        number(config, o + "lr", v -> v > 0, "a number > 0"),
        number(config, o + "beta1", v -> v >= 0 && v < 1, "a number in [0, 1)"),
        number(config, o + "beta2", v -> v >= 0 && v < 1, "a number in [0, 1)"),
        number(config, o + "eps", v -> v > 0, "a number > 0"),
        number(config, o + "weight-decay", v -> v >= 0, "a number >= 0"),
        number(config, o + "clip-norm", v -> v >= 0, "a number >= 0 (0 = off)"),
        schedule);
    float temperature = (float) number(config, "nucleon.algorithm.temperature", v -> v > 0,
        "a number > 0 (the learner scores at the sampling temperature)");
    GradSpikeGuard.Settings spikes = new GradSpikeGuard.Settings(
        number(config, "nucleon.learner.grad-spike-factor", v -> v == 0 || v > 1, "0 (off) or a number > 1"),
        (int) number(config, "nucleon.learner.grad-spike-window", v -> v >= 3 && v == Math.rint(v),
            "an integer >= 3"),
        config.getBoolean("nucleon.learner.grad-spike-skip"));
    Updates updates = new Updates(
        (int) number(config, "nucleon.learner.epochs", v -> v >= 1 && v == Math.rint(v), "an integer >= 1"),
        (int) number(config, "nucleon.learner.minibatches", v -> v >= 1 && v == Math.rint(v), "an integer >= 1"));
    return new LearnerSettings(loss, optimizer, temperature, spikes, updates, lora(config),
        choice(config, "nucleon.learner.routing-replay", RoutingReplay::parse, "off or rollout"),
        number(config, "nucleon.learner.router-aux-loss-coef", v -> v >= 0, "a number >= 0 (0 = off)"),
        config.getBoolean("nucleon.learner.share-prompts"));
  }

  /** {@code nucleon.learner.lora}: null when {@code rank = 0}. */
  private static PeftAdapter.Settings lora(Config config) {
    String k = "nucleon.learner.lora.";
    int rank = (int) number(config, k + "rank", v -> v >= 0 && v == Math.rint(v), "an integer >= 0 (0 = off)");
    if (rank == 0) {
      return null;
    }
    double alpha = number(config, k + "alpha", v -> v > 0, "a number > 0");
    // dropout would make the learner's log-probs a random sample: on-policy ratios against the sampler's log-probs
    // would stop being 1 (and the clip would act on noise), and a resumed run could not repeat them
    double dropout = number(config, k + "dropout", v -> v == 0, "0 (LoRA dropout is not supported in RL training: "
        + "it would randomize the learner's log-probs against the sampler's)");
    java.util.List<String> targets = config.getStringList(k + "targets");
    try {
      PeftAdapter.checkTargets(targets);
    } catch (IllegalArgumentException e) {
      throw new ConfigException.BadValue(config.getValue(k + "targets").origin(), k + "targets", e.getMessage());
    }
    return PeftAdapter.Settings.of(rank, alpha, dropout, targets);
  }

  private static double number(Config config, String key, DoublePredicate ok, String expected) {
    double v = config.getDouble(key); // ConfigException.WrongType names key, file and line for non-numbers
    if (!Double.isFinite(v) || !ok.test(v)) {
      throw new ConfigException.BadValue(config.getValue(key).origin(), key, "expected " + expected + ", got " + v);
    }
    return v;
  }

  private static <T> T choice(Config config, String key, java.util.function.Function<String, T> parse,
      String expected) {
    String raw = config.getString(key);
    try {
      return parse.apply(raw);
    } catch (IllegalArgumentException e) {
      throw new ConfigException.BadValue(config.getValue(key).origin(), key, "expected " + expected + ", got '"
          + raw + "'");
    }
  }
}
