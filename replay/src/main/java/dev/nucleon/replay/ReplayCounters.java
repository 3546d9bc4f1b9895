package dev.nucleon.replay;

import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Cumulative counters of a replay buffer since it was created (restored counters included), for metrics.
 *
 * @param trajectoriesAdded every trajectory handed to {@link ReplayBuffer#add}, kept or not
 * @param failedRewards trajectories whose reward had failed, whatever the policy did with them
 * @param failedRewardsZeroed failed rewards kept with reward 0 (policy {@code zero})
 * @param groupsCompleted groups whose G samples all arrived
 * @param groupsQueued groups that passed every filter and were queued for training
 * @param groupsBatched groups that went into a training batch
 * @param samplesBatched samples that went into a training batch
 * @param batches training batches cut
 * @param droppedSamples trajectories dropped, by {@link DropReason#label()}; each counted once
 * @param droppedGroups groups dropped as a whole, by {@link DropReason#label()}
 */
public record ReplayCounters(
    long trajectoriesAdded,
    long failedRewards,
    long failedRewardsZeroed,
    long groupsCompleted,
    long groupsQueued,
    long groupsBatched,
    long samplesBatched,
    long batches,
    Map<String, Long> droppedSamples,
    Map<String, Long> droppedGroups) {

  public ReplayCounters {
    droppedSamples = complete(droppedSamples);
    droppedGroups = complete(droppedGroups);
  }

  /** All zero. */
  public static ReplayCounters zero() {
    return new ReplayCounters(0, 0, 0, 0, 0, 0, 0, 0, Map.of(), Map.of());
  }

  /** Trajectories dropped for one reason. */
  public long droppedSamples(DropReason reason) {
    return droppedSamples.get(reason.label());
  }

  /** Groups dropped as a whole for one reason. */
  public long droppedGroups(DropReason reason) {
    return droppedGroups.get(reason.label());
  }

  /** Differences of every counter ({@code this - earlier}). */
  public ReplayCounters minus(ReplayCounters earlier) {
    return new ReplayCounters(
        trajectoriesAdded - earlier.trajectoriesAdded,
        failedRewards - earlier.failedRewards,
        failedRewardsZeroed - earlier.failedRewardsZeroed,
        groupsCompleted - earlier.groupsCompleted,
        groupsQueued - earlier.groupsQueued,
        groupsBatched - earlier.groupsBatched,
        samplesBatched - earlier.samplesBatched,
        batches - earlier.batches,
        diff(droppedSamples, earlier.droppedSamples),
        diff(droppedGroups, earlier.droppedGroups));
  }

  private static Map<String, Long> diff(Map<String, Long> a, Map<String, Long> b) {
    Map<String, Long> d = new HashMap<>();
    for (DropReason r : DropReason.values()) {
      d.put(r.label(), a.get(r.label()) - b.get(r.label()));
    }
    return d;
  }

  /** Every reason present (0 where missing), unknown labels refused, sorted by label. */
  private static Map<String, Long> complete(Map<String, Long> m) {
    TreeMap<String, Long> out = new TreeMap<>();
    for (DropReason r : DropReason.values()) {
      out.put(r.label(), 0L);
    }
    if (m != null) {
      for (Map.Entry<String, Long> e : m.entrySet()) {
        DropReason.fromLabel(e.getKey());
        out.put(e.getKey(), e.getValue() == null ? 0L : e.getValue());
      }
    }
    return java.util.Collections.unmodifiableMap(out);
  }
}
