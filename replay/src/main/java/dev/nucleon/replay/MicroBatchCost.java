package dev.nucleon.replay;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * How a micro-batch's size is measured against {@code nucleon.replay.micro-batch-tokens}
 * (config {@code nucleon.replay.micro-batch-cost}).
 */
public enum MicroBatchCost {
  /**
   * Samples x longest sample: what a learner that pads every row to the micro-batch's longest sequence actually
   * allocates. The safe choice for a padded learner.
   */
  PADDED("padded"),
  /** Sum of the samples' token counts: what a packed (padding-free) learner processes. */
  SUM("sum");

  private final String id;

  MicroBatchCost(String id) {
    this.id = id;
  }

  /** The identifier used in config. */
  public String id() {
    return id;
  }

  /** Cost of a micro-batch of {@code count} samples whose longest has {@code maxTokens} and which sum to {@code sumTokens}. */
  public long cost(int count, int maxTokens, long sumTokens) {
    return this == PADDED ? (long) count * maxTokens : sumTokens;
  }

  /** Parses a config identifier; an unknown one lists the known ones. */
  public static MicroBatchCost fromId(String id) {
    for (MicroBatchCost c : values()) {
      if (c.id.equals(id.trim().toLowerCase(Locale.ROOT))) {
        return c;
      }
    }
    throw new IllegalArgumentException("unknown micro-batch cost '" + id + "', expected one of "
        + Arrays.stream(values()).map(MicroBatchCost::id).collect(Collectors.joining(", ")));
  }
}
