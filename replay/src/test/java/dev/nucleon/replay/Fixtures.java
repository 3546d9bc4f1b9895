package dev.nucleon.replay;

import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import java.util.Arrays;
import java.util.Map;

/** Builders for trajectories and settings in tests. */
final class Fixtures {
  private Fixtures() {}

  /** Settings with eps 0 (so hand-computed numbers are exact), no filters, batch by groups. */
  static ReplaySettings settings(int groupSize, String advantage, int batchGroups) {
    return new ReplaySettings(groupSize, advantage, 0.0, batchGroups, 1, false, false, 0, 1_000_000,
        MicroBatchCost.PADDED, FailedRewardPolicy.DROP_SAMPLE);
  }

  static ReplaySettings with(ReplaySettings s, FailedRewardPolicy policy) {
    return new ReplaySettings(s.groupSize(), s.advantage(), s.advantageEpsilon(), s.batchGroups(), s.maxStaleness(),
        s.dropZeroVariance(), s.dropOverlong(), s.batchTokens(), s.microBatchTokens(), s.microBatchCost(), policy);
  }

  static ReplaySettings withFilters(ReplaySettings s, int maxStaleness, boolean dropZeroVariance,
      boolean dropOverlong) {
    return new ReplaySettings(s.groupSize(), s.advantage(), s.advantageEpsilon(), s.batchGroups(), maxStaleness,
        dropZeroVariance, dropOverlong, s.batchTokens(), s.microBatchTokens(), s.microBatchCost(), s.failedReward());
  }

  static ReplaySettings withTokens(ReplaySettings s, int batchTokens, int microBatchTokens, MicroBatchCost cost) {
    return new ReplaySettings(s.groupSize(), s.advantage(), s.advantageEpsilon(), s.batchGroups(), s.maxStaleness(),
        s.dropZeroVariance(), s.dropOverlong(), batchTokens, microBatchTokens, cost, s.failedReward());
  }

  /** A trajectory with a 2-token prompt, {@code completion} tokens all of {@code version}, finished by STOP. */
  static Trajectory traj(long prompt, int index, int completion, int version) {
    return traj(prompt, index, 2, completion, FinishReason.STOP, version);
  }

  static Trajectory traj(long prompt, int index, int promptLen, int completion, FinishReason finish, int version) {
    int[] versions = new int[completion];
    Arrays.fill(versions, version);
    return trajVersions(prompt, index, promptLen, finish, versions);
  }

  static Trajectory trajVersions(long prompt, int index, int promptLen, FinishReason finish, int... versions) {
    int n = versions.length;
    int[] tokens = new int[n];
    float[] logps = new float[n];
    Arrays.fill(tokens, 7);
    Arrays.fill(logps, -0.5f);
    return new Trajectory(prompt, index, new int[promptLen], tokens, logps, versions, finish, "c" + index);
  }

  static ScoredTrajectory ok(long prompt, int index, double reward) {
    return new ScoredTrajectory(traj(prompt, index, 3, 0), RewardResult.ok(reward));
  }

  static ScoredTrajectory okCorrect(long prompt, int index, double reward, double correct) {
    return new ScoredTrajectory(traj(prompt, index, 3, 0), RewardResult.ok(reward, Map.of("correct", correct)));
  }

  static ScoredTrajectory failed(long prompt, int index) {
    return new ScoredTrajectory(traj(prompt, index, 3, 0), RewardResult.failed("scorer timed out"));
  }

  static ScoredTrajectory scored(Trajectory t, double reward) {
    return new ScoredTrajectory(t, RewardResult.ok(reward));
  }

  /** Adds a whole group with the given rewards (sample i gets rewards[i]). */
  static AddResult addGroup(ReplayBuffer b, long prompt, double... rewards) {
    AddResult last = null;
    for (int i = 0; i < rewards.length; i++) {
      last = b.add(ok(prompt, i, rewards[i]));
    }
    return last;
  }

  static float[] advantages(TrainingBatch batch) {
    float[] a = new float[batch.samples().size()];
    for (int i = 0; i < a.length; i++) {
      a[i] = batch.samples().get(i).advantage();
    }
    return a;
  }
}
