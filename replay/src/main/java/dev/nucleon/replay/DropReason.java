package dev.nucleon.replay;

/**
 * Why the replay buffer discarded a trajectory or a whole group. Each discarded trajectory is counted once, under the
 * first reason that removed it; a group is counted when none of its samples reaches a training batch.
 */
public enum DropReason {
  /** The reward scorer failed (policy {@code drop-sample} or {@code drop-group}). */
  FAILED_REWARD("failed-reward"),
  /** The trajectory's oldest token is older than {@code current version - max-staleness}. */
  STALE("stale"),
  /** All rewards of the group are equal, so every advantage is 0 (DAPO dynamic sampling). */
  ZERO_VARIANCE("zero-variance"),
  /** The completion hit the token limit ({@code FinishReason.LENGTH}) and overlong filtering is on. */
  OVERLONG("overlong"),
  /** Group only: every sample was dropped individually, nothing of the group is left to train on. */
  EMPTY("empty");

  private final String label;

  DropReason(String label) {
    this.label = label;
  }

  /** The lower-case name used in metric labels and snapshots. */
  public String label() {
    return label;
  }

  /** The reason with the given label. */
  public static DropReason fromLabel(String label) {
    for (DropReason r : values()) {
      if (r.label.equals(label)) {
        return r;
      }
    }
    throw new IllegalArgumentException("unknown drop reason '" + label + "'");
  }
}
