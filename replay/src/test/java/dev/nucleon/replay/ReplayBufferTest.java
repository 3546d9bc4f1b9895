package dev.nucleon.replay;

import static dev.nucleon.replay.Fixtures.addGroup;
import static dev.nucleon.replay.Fixtures.advantages;
import static dev.nucleon.replay.Fixtures.failed;
import static dev.nucleon.replay.Fixtures.ok;
import static dev.nucleon.replay.Fixtures.okCorrect;
import static dev.nucleon.replay.Fixtures.scored;
import static dev.nucleon.replay.Fixtures.settings;
import static dev.nucleon.replay.Fixtures.traj;
import static dev.nucleon.replay.Fixtures.trajVersions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.ScoredTrajectory;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ReplayBufferTest {
  private static final float TOL = 1e-6f;

  private static List<Integer> indices(TrainingBatch b) {
    return b.samples().stream().map(s -> s.trajectory().sampleIndex()).toList();
  }

  // ------------------------------------------------------------------ assembly

  @Test
  void groupCompletesWhenAllSamplesArriveInAnyOrderInterleaved() {
    ReplayBuffer b = new ReplayBuffer(settings(3, "dr-grpo", 1));
    assertEquals(AddResult.GroupStatus.PENDING, b.add(ok(1, 2, 3.0)).group());
    assertEquals(AddResult.GroupStatus.PENDING, b.add(ok(2, 0, 1.0)).group());
    assertEquals(AddResult.GroupStatus.PENDING, b.add(ok(1, 0, 1.0)).group());
    assertEquals(AddResult.GroupStatus.PENDING, b.add(ok(2, 1, 1.0)).group());
    assertTrue(b.pollBatch().isEmpty());
    assertEquals(2, b.pendingGroups());
    AddResult r = b.add(ok(1, 1, 2.0));
    assertEquals(AddResult.GroupStatus.READY, r.group());
    assertTrue(r.groupCompleted());
    assertEquals(1, b.readyGroups());
    assertEquals(1, b.pendingGroups());

    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(1L), batch.promptIds());
    assertEquals(List.of(0, 1, 2), indices(batch)); // sorted by sample index
    assertArrayEquals(new float[] {-1f, 0f, 1f}, advantages(batch), TOL); // rewards (1, 2, 3), mean 2
    assertEquals(0, b.readyGroups());
  }

  @Test
  void aBatchIsInCanonicalOrderWhateverOrderGroupsCompletedIn() {
    ReplayBuffer inOrder = new ReplayBuffer(settings(2, "grpo", 3));
    ReplayBuffer shuffled = new ReplayBuffer(settings(2, "grpo", 3));
    for (long p : new long[] {2, 5, 9}) {
      inOrder.add(ok(p, 0, p));
      inOrder.add(ok(p, 1, 1.0));
    }
    for (long p : new long[] {9, 2, 5}) {
      shuffled.add(ok(p, 1, 1.0));
      shuffled.add(ok(p, 0, p));
    }
    TrainingBatch a = inOrder.pollBatch().orElseThrow();
    TrainingBatch b = shuffled.pollBatch().orElseThrow();
    assertEquals(List.of(2L, 5L, 9L), b.promptIds());
    assertEquals(List.of(0, 1, 0, 1, 0, 1), indices(b));
    assertArrayEquals(advantages(a), advantages(b), 0f);
    assertEquals(a.microBatches().stream().map(List::size).toList(),
        b.microBatches().stream().map(List::size).toList());
  }

  @Test
  void duplicateSampleIndexIsAnErrorNamingPromptAndIndexAndChangesNothing() {
    ReplayBuffer b = new ReplayBuffer(settings(2, "dr-grpo", 1));
    b.add(ok(42, 1, 1.0));
    ReplayCounters before = b.counters();
    DuplicateSampleException e = assertThrows(DuplicateSampleException.class, () -> b.add(ok(42, 1, 0.0)));
    assertTrue(e.getMessage().contains("prompt 42"), e.getMessage());
    assertTrue(e.getMessage().contains("sample index 1"), e.getMessage());
    assertEquals(42, e.promptId());
    assertEquals(1, e.sampleIndex());
    assertEquals(before, b.counters());
    // the group still completes normally, the duplicate counted nowhere
    assertEquals(AddResult.GroupStatus.READY, b.add(ok(42, 0, 0.0)).group());
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(2, batch.samples().size());
    assertArrayEquals(new float[] {-0.5f, 0.5f}, advantages(batch), TOL);
    assertEquals(2, b.counters().trajectoriesAdded());
  }

  @Test
  void samePromptAfterCompletionStartsANewGroup() {
    ReplayBuffer b = new ReplayBuffer(settings(2, "dr-grpo", 2));
    addGroup(b, 5, 1, 0);
    assertEquals(AddResult.GroupStatus.READY, addGroup(b, 5, 0, 0).group());
    assertEquals(2, b.pollBatch().orElseThrow().stats().groups());
  }

  @Test
  void sampleIndexOutsideTheGroupIsRefused() {
    ReplayBuffer b = new ReplayBuffer(settings(4, "grpo", 1));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.add(ok(9, 4, 1.0)));
    assertTrue(e.getMessage().contains("prompt 9") && e.getMessage().contains("sample index 4"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> b.add(ok(9, -1, 1.0)));
    assertEquals(0, b.counters().trajectoriesAdded());
  }

  // ------------------------------------------------------------------ failed rewards

  @Test
  void failedRewardDropSampleUsesTheRemainingSamples() {
    ReplayBuffer b = new ReplayBuffer(settings(4, "grpo", 1));
    b.add(ok(1, 0, 1.0));
    AddResult r = b.add(failed(1, 1));
    assertEquals(DropReason.FAILED_REWARD, r.sampleDropped());
    b.add(ok(1, 2, 0.0));
    assertEquals(AddResult.GroupStatus.READY, b.add(ok(1, 3, 0.0)).group());
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(0, 2, 3), indices(batch));
    // rewards (1, 0, 0): mean 1/3, population std sqrt(2)/3 = 0.4714045; A = (2/3, -1/3, -1/3) / 0.4714045
    assertArrayEquals(new float[] {1.4142135f, -0.70710677f, -0.70710677f}, advantages(batch), TOL);
    ReplayCounters c = b.counters();
    assertEquals(1, c.failedRewards());
    assertEquals(1, c.droppedSamples(DropReason.FAILED_REWARD));
    assertEquals(0, c.droppedGroups(DropReason.FAILED_REWARD));
    assertEquals(1, batch.stats().failedRewards());
    assertEquals(1L, batch.stats().droppedSamples().get("failed-reward"));
  }

  @Test
  void failedRewardDropGroupDropsTheWholeGroupOnceComplete() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.with(settings(4, "grpo", 1), FailedRewardPolicy.DROP_GROUP));
    b.add(ok(1, 0, 1.0));
    AddResult r = b.add(failed(1, 1));
    assertNull(r.sampleDropped());
    assertEquals(AddResult.GroupStatus.PENDING, r.group());
    b.add(ok(1, 2, 0.0));
    AddResult last = b.add(ok(1, 3, 0.0));
    assertEquals(AddResult.GroupStatus.DROPPED, last.group());
    assertEquals(DropReason.FAILED_REWARD, last.groupDropped());
    assertEquals(0, b.readyGroups());
    assertEquals(0, b.pendingGroups());
    ReplayCounters c = b.counters();
    assertEquals(1, c.failedRewards());
    assertEquals(1, c.droppedGroups(DropReason.FAILED_REWARD));
    assertEquals(4, c.droppedSamples(DropReason.FAILED_REWARD));
    assertTrue(b.flush().isEmpty());
  }

  @Test
  void failedRewardZeroKeepsTheSampleWithRewardZero() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.with(settings(4, "dr-grpo", 1), FailedRewardPolicy.ZERO));
    b.add(ok(1, 0, 1.0));
    assertTrue(b.add(failed(1, 1)).sampleKept());
    b.add(ok(1, 2, 0.0));
    b.add(ok(1, 3, 0.0));
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(0, 1, 2, 3), indices(batch));
    assertEquals(0.0, batch.samples().get(1).reward());
    // rewards (1, 0, 0, 0): mean 0.25
    assertArrayEquals(new float[] {0.75f, -0.25f, -0.25f, -0.25f}, advantages(batch), TOL);
    ReplayCounters c = b.counters();
    assertEquals(1, c.failedRewards());
    assertEquals(1, c.failedRewardsZeroed());
    assertEquals(0, c.droppedSamples(DropReason.FAILED_REWARD));
  }

  @Test
  void groupWhoseEverySampleFailedIsDroppedAsEmpty() {
    ReplayBuffer b = new ReplayBuffer(settings(2, "grpo", 1));
    b.add(failed(3, 0));
    AddResult r = b.add(failed(3, 1));
    assertEquals(DropReason.EMPTY, r.groupDropped());
    assertEquals(1, b.counters().droppedGroups(DropReason.EMPTY));
    assertEquals(2, b.counters().droppedSamples(DropReason.FAILED_REWARD));
  }

  // ------------------------------------------------------------------ filters

  @Test
  void constantGroupGetsZeroAdvantagesWhenKept() {
    ReplayBuffer b = new ReplayBuffer(settings(3, "grpo", 1));
    addGroup(b, 1, 0.1, 0.1, 0.1);
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertArrayEquals(new float[] {0f, 0f, 0f}, advantages(batch), 0f);
    assertEquals(0, b.counters().droppedGroups(DropReason.ZERO_VARIANCE));
  }

  @Test
  void zeroVarianceGroupsAreDroppedAndCountedWhenAsked() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.withFilters(settings(3, "grpo", 2), 1, true, false));
    AddResult r = addGroup(b, 1, 1, 1, 1);
    assertEquals(DropReason.ZERO_VARIANCE, r.groupDropped());
    addGroup(b, 2, 1, 0, 1);
    assertEquals(DropReason.ZERO_VARIANCE, addGroup(b, 3, 0, 0, 0).groupDropped());
    assertTrue(b.pollBatch().isEmpty(), "dropped groups do not fill the batch");
    addGroup(b, 4, 0, 0, 1);
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(2L, 4L), batch.promptIds());
    ReplayCounters c = b.counters();
    assertEquals(2, c.droppedGroups(DropReason.ZERO_VARIANCE));
    assertEquals(6, c.droppedSamples(DropReason.ZERO_VARIANCE));
    assertEquals(4, c.groupsCompleted());
    assertEquals(2, c.groupsQueued());
    assertEquals(2L, batch.stats().droppedGroups().get("zero-variance"));
    // scored mean covers every arrived reward (6 ones of 12), the batch mean only the kept ones (3 of 6)
    assertEquals(0.5, batch.stats().scoredRewardMean(), 1e-12);
    assertEquals(0.5, batch.stats().rewardMean(), 1e-12);
  }

  @Test
  void stalenessBoundaryExactlyMaxStalenessOldIsAccepted() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.withFilters(settings(4, "dr-grpo", 1), 2, false, false));
    b.setPolicyVersion(5);
    // current 5, max-staleness 2: oldest version 3 is accepted, 2 is rejected
    assertTrue(b.add(scored(traj(1, 0, 3, 3), 1.0)).sampleKept());
    AddResult old = b.add(scored(traj(1, 1, 3, 2), 1.0));
    assertEquals(DropReason.STALE, old.sampleDropped());
    // staleness is measured from the OLDEST token: (2, 5, 5) is stale, (3, 5) is not
    assertEquals(DropReason.STALE,
        b.add(scored(trajVersions(1, 2, 2, FinishReason.STOP, 5, 2, 5), 0.0)).sampleDropped());
    AddResult last = b.add(scored(trajVersions(1, 3, 2, FinishReason.STOP, 3, 5), 0.0));
    assertTrue(last.sampleKept());
    assertEquals(AddResult.GroupStatus.READY, last.group());
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(0, 3), indices(batch));
    assertArrayEquals(new float[] {0.5f, -0.5f}, advantages(batch), TOL);
    assertEquals(2, b.counters().droppedSamples(DropReason.STALE));
    assertEquals(2, batch.stats().maxStaleness());
  }

  @Test
  void zeroMaxStalenessIsStrictlyOnPolicy() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.withFilters(settings(1, "grpo", 1), 0, false, false));
    b.setPolicyVersion(1);
    assertEquals(DropReason.STALE, b.add(scored(traj(1, 0, 2, 0), 1.0)).sampleDropped());
    assertTrue(b.add(scored(traj(2, 0, 2, 1), 1.0)).sampleKept());
  }

  @Test
  void newPolicyVersionDropsQueuedAndPendingSamplesThatBecameStale() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.withFilters(settings(3, "dr-grpo", 5), 1, false, false));
    // group 1: all version 0 -> entirely stale at version 2
    for (int i = 0; i < 3; i++) {
      b.add(scored(traj(1, i, 2, 0), i));
    }
    // group 2: samples 0,1 at version 1, sample 2 at version 0 -> loses sample 2 at version 2
    b.add(scored(traj(2, 0, 2, 1), 1.0));
    b.add(scored(traj(2, 1, 2, 1), 0.0));
    b.add(scored(traj(2, 2, 2, 0), 1.0));
    // group 3 pending: sample 0 at version 0 is removed, the group still needs samples 1 and 2
    b.add(scored(traj(3, 0, 2, 0), 1.0));
    assertEquals(2, b.readyGroups());

    List<DroppedGroup> dropped = b.setPolicyVersion(2);
    assertEquals(List.of(new DroppedGroup(1, DropReason.EMPTY)), dropped);
    assertEquals(1, b.readyGroups());
    assertEquals(5, b.counters().droppedSamples(DropReason.STALE)); // 3 + 1 + 1
    assertEquals(1, b.counters().droppedGroups(DropReason.EMPTY));

    assertTrue(b.add(scored(traj(3, 1, 2, 2), 0.0)).sampleKept());
    assertEquals(AddResult.GroupStatus.READY, b.add(scored(traj(3, 2, 2, 2), 1.0)).group());
    TrainingBatch batch = b.flush().orElseThrow();
    assertEquals(List.of(2L, 3L), batch.promptIds());
    // group 2 now (1, 0) -> (0.5, -0.5); group 3 (0, 1) -> (-0.5, 0.5): the removed samples are out of the means
    assertArrayEquals(new float[] {0.5f, -0.5f, -0.5f, 0.5f}, advantages(batch), TOL);
  }

  @Test
  void queuedGroupThatLosesStaleSamplesIsFilteredAgain() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.withFilters(settings(3, "grpo", 5), 1, true, false));
    b.add(scored(traj(1, 0, 2, 0), 0.0));
    b.add(scored(traj(1, 1, 2, 1), 1.0));
    assertEquals(AddResult.GroupStatus.READY, b.add(scored(traj(1, 2, 2, 0), 0.0)).group());
    // at version 2 samples 0 and 2 are stale; the one left has zero variance
    assertEquals(List.of(new DroppedGroup(1, DropReason.ZERO_VARIANCE)), b.setPolicyVersion(2));
    assertEquals(0, b.readyGroups());
    ReplayCounters c = b.counters();
    assertEquals(2, c.droppedSamples(DropReason.STALE));
    assertEquals(1, c.droppedSamples(DropReason.ZERO_VARIANCE));
    assertEquals(1, c.droppedGroups(DropReason.ZERO_VARIANCE));
    assertEquals(1, c.groupsQueued());
  }

  @Test
  void policyVersionNeverGoesBack() {
    ReplayBuffer b = new ReplayBuffer(settings(2, "grpo", 1));
    b.setPolicyVersion(3);
    assertThrows(IllegalArgumentException.class, () -> b.setPolicyVersion(2));
    assertEquals(3, b.policyVersion());
  }

  @Test
  void overlongSamplesCountInTheGroupButAreNotTrained() {
    ReplayBuffer b = new ReplayBuffer(Fixtures.withFilters(settings(4, "dr-grpo", 1), 1, false, true));
    b.add(scored(traj(1, 0, 2, 3, FinishReason.LENGTH, 0), 0.0));
    b.add(scored(traj(1, 1, 2, 3, FinishReason.STOP, 0), 1.0));
    b.add(scored(traj(1, 2, 2, 3, FinishReason.STOP, 0), 1.0));
    b.add(scored(traj(1, 3, 2, 3, FinishReason.STOP, 0), 0.0));
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(1, 2, 3), indices(batch));
    // mean over all four (0, 1, 1, 0) = 0.5
    assertArrayEquals(new float[] {0.5f, 0.5f, -0.5f}, advantages(batch), TOL);
    assertEquals(1, b.counters().droppedSamples(DropReason.OVERLONG));
    assertEquals(0.0, batch.stats().truncatedFraction());
  }

  // ------------------------------------------------------------------ batching

  @Test
  void batchesByGroupCount() {
    ReplayBuffer b = new ReplayBuffer(settings(2, "dr-grpo", 2));
    addGroup(b, 1, 1, 0);
    assertTrue(b.pollBatch().isEmpty());
    addGroup(b, 2, 0, 1);
    addGroup(b, 3, 2, 0);
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(1L, 2L), batch.promptIds());
    assertEquals(2, batch.stats().groups());
    assertEquals(4, batch.stats().samples());
    assertEquals(1, b.readyGroups());
    assertTrue(b.pollBatch().isEmpty());
    TrainingBatch partial = b.flush().orElseThrow();
    assertEquals(List.of(3L), partial.promptIds());
    assertTrue(b.flush().isEmpty());
    ReplayCounters c = b.counters();
    assertEquals(2, c.batches());
    assertEquals(3, c.groupsBatched());
    assertEquals(6, c.samplesBatched());
  }

  @Test
  void batchesByTokenBudget() {
    // each sample: 2 prompt + 3 completion = 5 tokens; a group of 2 = 10 tokens
    ReplayBuffer b = new ReplayBuffer(
        Fixtures.withTokens(settings(2, "dr-grpo", 4), 25, 1000, MicroBatchCost.SUM));
    addGroup(b, 1, 1, 0);
    addGroup(b, 2, 1, 0);
    assertEquals(20, b.readyTokens());
    assertTrue(b.pollBatch().isEmpty(), "20 of 25 tokens: not full yet");
    addGroup(b, 3, 1, 0);
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(List.of(1L, 2L), batch.promptIds(), "a third group would overflow 25 tokens");
    assertEquals(20, batch.totalTokens());
    assertEquals(1, b.readyGroups());
  }

  @Test
  void byTokensTheMostGroupsTheCoordinatorLetsWaitAreTrainedEvenShortOfTheBudget() {
    // batch-groups 2, max-staleness 1: the coordinator lets at most 4 groups wait; 4 x 10 tokens < 100
    ReplayBuffer b = new ReplayBuffer(
        Fixtures.withTokens(settings(2, "dr-grpo", 2), 100, 1000, MicroBatchCost.SUM));
    for (long p = 1; p <= 3; p++) {
      addGroup(b, p, 1, 0);
      assertTrue(b.pollBatch().isEmpty(), p + " groups: more may come");
    }
    addGroup(b, 4, 1, 0);
    assertEquals(List.of(1L, 2L, 3L, 4L), b.pollBatch().orElseThrow().promptIds(), "no more can come: trained");
  }

  @Test
  void tokenBudgetExactlyFilledCutsAtOnceAndAnOversizedGroupIsABatchOfItsOwn() {
    ReplayBuffer b = new ReplayBuffer(
        Fixtures.withTokens(settings(2, "dr-grpo", 1), 20, 1000, MicroBatchCost.SUM));
    addGroup(b, 1, 1, 0);
    addGroup(b, 2, 1, 0);
    assertEquals(List.of(1L, 2L), b.pollBatch().orElseThrow().promptIds());
    b.add(scored(traj(3, 0, 2, 40, FinishReason.STOP, 0), 1.0));
    b.add(scored(traj(3, 1, 2, 40, FinishReason.STOP, 0), 0.0));
    addGroup(b, 4, 1, 0);
    TrainingBatch big = b.pollBatch().orElseThrow();
    assertEquals(List.of(3L), big.promptIds());
    assertEquals(84, big.totalTokens());
  }

  @Test
  void microBatchesOfABatchCoverEverySample() {
    // 4 samples of 5 tokens, micro budget 10 tokens (padded) -> 2 per micro-batch
    ReplayBuffer b = new ReplayBuffer(
        Fixtures.withTokens(settings(2, "dr-grpo", 2), 0, 10, MicroBatchCost.PADDED));
    addGroup(b, 1, 1, 0);
    addGroup(b, 2, 1, 0);
    TrainingBatch batch = b.pollBatch().orElseThrow();
    assertEquals(2, batch.microBatches().size());
    assertEquals(4, batch.microBatches().stream().mapToInt(List::size).sum());
    for (List<TrainingSample> mb : batch.microBatches()) {
      assertEquals(2, mb.size());
      for (TrainingSample s : mb) {
        assertTrue(batch.samples().contains(s));
      }
    }
  }

  @Test
  void reinforcePlusPlusNormalizesOverTheWholeBatch() {
    ReplayBuffer b = new ReplayBuffer(settings(2, "reinforce-pp", 2));
    addGroup(b, 1, 1, 0); // stage 1: (0.5, -0.5)
    addGroup(b, 2, 3, 1); // stage 1: (1, -1)
    TrainingBatch batch = b.pollBatch().orElseThrow();
    // batch mean 0, population std sqrt((0.25 + 0.25 + 1 + 1) / 4) = sqrt(0.625) = 0.7905694
    double std = Math.sqrt(0.625);
    assertArrayEquals(new float[] {(float) (0.5 / std), (float) (-0.5 / std), (float) (1 / std), (float) (-1 / std)},
        advantages(batch), TOL);
    assertEquals(0.0, batch.stats().advantageMean(), 1e-6);
    assertEquals(1.0, batch.stats().advantageStd(), 1e-6);
  }

  @Test
  void rlooThroughTheBuffer() {
    ReplayBuffer b = new ReplayBuffer(settings(4, "rloo", 1));
    addGroup(b, 1, 1, 0, 0, 0);
    assertArrayEquals(new float[] {1f, -1f / 3, -1f / 3, -1f / 3}, advantages(b.pollBatch().orElseThrow()), TOL);
  }

  @Test
  void statsReportRewardsAccuracyAndTokens() {
    ReplayBuffer b = new ReplayBuffer(settings(4, "grpo", 1));
    b.add(okCorrect(1, 0, 1.0, 1.0));
    b.add(okCorrect(1, 1, 0.0, 0.0));
    b.add(okCorrect(1, 2, 0.0, 0.0));
    b.add(new ScoredTrajectory(traj(1, 3, 3, 0), RewardResult.ok(1.0, Map.of("correct", 1.0, "format", 1.0))));
    BatchStats s = b.pollBatch().orElseThrow().stats();
    assertEquals(1, s.groups());
    assertEquals(4, s.samples());
    assertEquals(20, s.tokens());
    assertEquals(12, s.completionTokens());
    assertEquals(0.5, s.rewardMean(), 1e-12);
    assertEquals(0.5, s.rewardStd(), 1e-12);
    assertEquals(0.5, s.accuracy(), 1e-12);
    assertEquals(0, s.maxStaleness());
    // per-batch deltas reset after a batch
    addGroup(b, 2, 1, 0, 1, 0);
    BatchStats s2 = b.pollBatch().orElseThrow().stats();
    assertNull(s2.accuracy());
    assertEquals(0, s2.failedRewards());
  }
}
