package dev.nucleon.replay;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigOrigin;

/**
 * The replay buffer's settings, read once from config and validated. Keys (documented in this module's
 * {@code reference.conf}):
 *
 * <pre>
 * nucleon.algorithm.group-size          G, samples per prompt                         int >= 1
 * nucleon.algorithm.advantage           grpo | dr-grpo | rloo | reinforce-pp
 * nucleon.algorithm.advantage-epsilon   added to the std (grpo, reinforce-pp)         double >= 0
 * nucleon.algorithm.batch-groups        groups per training batch                     int >= 1
 * nucleon.algorithm.max-staleness       versions a trajectory may lag                 int >= 0
 * nucleon.algorithm.drop-zero-variance  DAPO dynamic sampling                         boolean
 * nucleon.algorithm.drop-overlong       DAPO overlong filtering                       boolean
 * nucleon.replay.batch-tokens           0: batch by groups; > 0: by token budget      int >= 0
 * nucleon.replay.micro-batch-tokens     token budget of one micro-batch               int >= 1
 * nucleon.replay.micro-batch-cost       padded | sum
 * nucleon.replay.failed-reward          drop-sample | drop-group | zero
 * </pre>
 *
 * <p>The canonical constructor validates too (for settings built in code) and throws {@link InvalidSetting}
 * naming the key; {@link #from(Config)} turns that into a {@link ConfigException.BadValue} that also names the file
 * and line the value came from.
 */
public record ReplaySettings(
    int groupSize,
    String advantage,
    double advantageEpsilon,
    int batchGroups,
    int maxStaleness,
    boolean dropZeroVariance,
    boolean dropOverlong,
    int batchTokens,
    int microBatchTokens,
    MicroBatchCost microBatchCost,
    FailedRewardPolicy failedReward) {

  public static final String GROUP_SIZE = "nucleon.algorithm.group-size";
  public static final String ADVANTAGE = "nucleon.algorithm.advantage";
  public static final String ADVANTAGE_EPSILON = "nucleon.algorithm.advantage-epsilon";
  public static final String BATCH_GROUPS = "nucleon.algorithm.batch-groups";
  public static final String MAX_STALENESS = "nucleon.algorithm.max-staleness";
  public static final String DROP_ZERO_VARIANCE = "nucleon.algorithm.drop-zero-variance";
  public static final String DROP_OVERLONG = "nucleon.algorithm.drop-overlong";
  public static final String BATCH_TOKENS = "nucleon.replay.batch-tokens";
  public static final String MICRO_BATCH_TOKENS = "nucleon.replay.micro-batch-tokens";
  public static final String MICRO_BATCH_COST = "nucleon.replay.micro-batch-cost";
  public static final String FAILED_REWARD = "nucleon.replay.failed-reward";

  /** A setting with a bad value; {@link #key()} is the full config path. */
  public static final class InvalidSetting extends IllegalArgumentException {
    private final String key;

    public InvalidSetting(String key, String message) {
      super(key + ": " + message);
      this.key = key;
    }

    /** The full config path of the bad setting. */
    public String key() {
      return key;
    }

    String detail() {
      return getMessage().substring(key.length() + 2);
    }
  }

  public ReplaySettings {
    if (groupSize < 1) {
      throw new InvalidSetting(GROUP_SIZE, "must be >= 1, got " + groupSize);
    }
    if (advantage == null || !AdvantageEstimator.ids().contains(advantage)) {
      throw new InvalidSetting(ADVANTAGE, "unknown estimator '" + advantage + "', expected one of "
          + String.join(", ", AdvantageEstimator.ids()));
    }
    if (!Double.isFinite(advantageEpsilon) || advantageEpsilon < 0) {
      throw new InvalidSetting(ADVANTAGE_EPSILON, "must be finite and >= 0, got " + advantageEpsilon);
    }
    if (batchGroups < 1) {
      throw new InvalidSetting(BATCH_GROUPS, "must be >= 1, got " + batchGroups);
    }
    if (maxStaleness < 0) {
      throw new InvalidSetting(MAX_STALENESS, "must be >= 0, got " + maxStaleness);
    }
    if (batchTokens < 0) {
      throw new InvalidSetting(BATCH_TOKENS, "must be >= 0 (0 = batch by groups), got " + batchTokens);
    }
    if (microBatchTokens < 1) {
      throw new InvalidSetting(MICRO_BATCH_TOKENS, "must be >= 1, got " + microBatchTokens);
    }
    if (microBatchCost == null) {
      throw new InvalidSetting(MICRO_BATCH_COST, "must be set");
    }
    if (failedReward == null) {
      throw new InvalidSetting(FAILED_REWARD, "must be set");
    }
  }

  /** Reads and validates every key; a bad value names the key and where it was set. */
  public static ReplaySettings from(Config config) {
    try {
      return new ReplaySettings(
          config.getInt(GROUP_SIZE),
          config.getString(ADVANTAGE).trim().toLowerCase(java.util.Locale.ROOT),
          config.getDouble(ADVANTAGE_EPSILON),
          config.getInt(BATCH_GROUPS),
          config.getInt(MAX_STALENESS),
          config.getBoolean(DROP_ZERO_VARIANCE),
          config.getBoolean(DROP_OVERLONG),
          config.getInt(BATCH_TOKENS),
          config.getInt(MICRO_BATCH_TOKENS),
          parse(config, MICRO_BATCH_COST, MicroBatchCost::fromId),
          parse(config, FAILED_REWARD, FailedRewardPolicy::fromId));
    } catch (InvalidSetting e) {
      throw new ConfigException.BadValue(origin(config, e.key()), e.key(), e.detail());
    }
  }

  /** Whether batches are cut by token budget ({@link #batchTokens()} > 0) rather than by group count. */
  public boolean batchByTokens() {
    return batchTokens > 0;
  }

  /** A fresh estimator for {@link #advantage()}. */
  public AdvantageEstimator estimator() {
    return AdvantageEstimator.create(advantage, advantageEpsilon);
  }

  /** A copy with another group size (tests and tools). */
  public ReplaySettings withGroupSize(int g) {
    return new ReplaySettings(g, advantage, advantageEpsilon, batchGroups, maxStaleness, dropZeroVariance,
        dropOverlong, batchTokens, microBatchTokens, microBatchCost, failedReward);
  }

  private static <T> T parse(Config config, String key, java.util.function.Function<String, T> parser) {
    String raw = config.getString(key);
    try {
      return parser.apply(raw);
    } catch (IllegalArgumentException e) {
      throw new InvalidSetting(key, e.getMessage());
    }
  }

  private static ConfigOrigin origin(Config config, String key) {
    return config.hasPath(key) ? config.getValue(key).origin() : config.origin();
  }
}
