package dev.nucleon.replay;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * What the replay buffer does with a trajectory whose reward could not be computed (config
 * {@code nucleon.replay.failed-reward}). Every failed reward is counted whatever the policy.
 */
public enum FailedRewardPolicy {
  /** Drop the failed sample; the group completes with its other samples (counted as dropped {@code failed-reward}). */
  DROP_SAMPLE("drop-sample"),
  /** Drop the whole group the failed sample belongs to, once all its samples are in (counted per sample and group). */
  DROP_GROUP("drop-group"),
  /** Keep the sample with reward 0 (counted as zeroed; its reward components are empty). */
  ZERO("zero");

  private final String id;

  FailedRewardPolicy(String id) {
    this.id = id;
  }

  /** The identifier used in config. */
  public String id() {
    return id;
  }

  /** Parses a config identifier; an unknown one lists the known ones. */
  public static FailedRewardPolicy fromId(String id) {
    for (FailedRewardPolicy p : values()) {
      if (p.id.equals(id.trim().toLowerCase(Locale.ROOT))) {
        return p;
      }
    }
    throw new IllegalArgumentException("unknown failed-reward policy '" + id + "', expected one of "
        + Arrays.stream(values()).map(FailedRewardPolicy::id).collect(Collectors.joining(", ")));
  }
}
