package dev.nucleon.replay;

import dev.nucleon.core.rollout.Trajectory;
import java.util.List;
import java.util.Map;

/**
 * The whole state of a {@link ReplayBuffer} as plain data, for checkpoints: records of primitives, arrays, lists
 * and maps that Jackson (2.12+) writes and reads without annotations. No NaN appears in it.
 *
 * @param groupSize the G the state was built with (restoring with another G is refused)
 * @param policyVersion the buffer's current policy version
 * @param pending partial groups, in arrival order of their first sample
 * @param ready complete groups queued for training, in queue order
 * @param counters cumulative counters
 * @param countersAtLastBatch counters when the previous batch was cut (for the per-batch deltas)
 * @param scoredRewardSum sum of successful rewards that arrived since the previous batch
 * @param scoredRewardCount how many successful rewards arrived since the previous batch
 */
public record ReplaySnapshot(
    int groupSize,
    int policyVersion,
    List<GroupState> pending,
    List<GroupState> ready,
    ReplayCounters counters,
    ReplayCounters countersAtLastBatch,
    double scoredRewardSum,
    long scoredRewardCount) {

  public ReplaySnapshot {
    pending = List.copyOf(pending);
    ready = List.copyOf(ready);
  }

  /**
   * One group.
   *
   * @param promptId the prompt
   * @param seen sample indices that have arrived (kept or dropped), ascending
   * @param failed whether a failed reward dooms the group (policy {@code drop-group})
   * @param members the samples that still count in the group's statistics, by sample index
   */
  public record GroupState(long promptId, List<Integer> seen, boolean failed, List<MemberState> members) {
    public GroupState {
      seen = List.copyOf(seen);
      members = List.copyOf(members);
    }
  }

  /**
   * One sample of a group.
   *
   * @param trajectory the trajectory
   * @param reward its reward (0 for a failed one)
   * @param failedReward whether its reward had failed
   * @param components the reward's components
   * @param overlong whether it is excluded from training by overlong filtering (ready groups only)
   */
  public record MemberState(
      Trajectory trajectory, double reward, boolean failedReward, Map<String, Double> components, boolean overlong) {
    public MemberState {
      components = components == null ? Map.of() : Map.copyOf(components);
    }
  }
}
