package dev.nucleon.replay;

import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Assembles scored trajectories into groups, filters them, computes advantages and cuts training batches.
 *
 * <p>Flow (see the module README for the numbered algorithm):
 * <ol>
 *   <li>{@link #add} takes scored trajectories one by one, in any order, interleaved across prompts. A trajectory
 *       older than the staleness bound, or with a failed reward under {@code drop-sample}, is dropped on arrival;
 *       its index still counts towards completing the group.
 *   <li>When all G sample indices of a prompt have arrived the group is complete: it is dropped if a failed reward
 *       dooms it ({@code drop-group}), if nothing is left, or if its rewards are all equal and zero-variance
 *       dropping is on; otherwise it is queued.
 *   <li>{@link #setPolicyVersion} re-checks staleness of everything held; a queued group that loses samples is
 *       re-filtered.
 *   <li>{@link #pollBatch} cuts a batch once enough groups (or tokens) are queued, computes advantages (group stage,
 *       then batch stage for {@code reinforce-pp}) and packs micro-batches.
 * </ol>
 *
 * <p>Group identity is the prompt id while the group is pending: once a group completes, a later trajectory with the
 * same prompt id starts a new group (a later epoch over the same prompt). At most one group per prompt id may be in
 * flight at a time.
 *
 * <p><b>Thread-safety:</b> none, by design. An instance is confined to one actor (the replay actor owns it and calls
 * it only from its message handler), so no locks are taken. Do not share it between threads.
 */
public final class ReplayBuffer {
  /** The reward component whose mean is reported as accuracy. */
  public static final String CORRECT_COMPONENT = "correct";

  private final ReplaySettings settings;
  private final AdvantageEstimator estimator;
  private final LinkedHashMap<Long, Group> pending = new LinkedHashMap<>();
  private final ArrayDeque<Group> ready = new ArrayDeque<>();
  private int policyVersion;

  private long trajectoriesAdded;
  private long failedRewards;
  private long failedRewardsZeroed;
  private long groupsCompleted;
  private long groupsQueued;
  private long groupsBatched;
  private long samplesBatched;
  private long batches;
  private final EnumMap<DropReason, Long> droppedSamples = new EnumMap<>(DropReason.class);
  private final EnumMap<DropReason, Long> droppedGroups = new EnumMap<>(DropReason.class);
  private ReplayCounters countersAtLastBatch = ReplayCounters.zero();
  private double scoredRewardSum;
  private long scoredRewardCount;

  /** An empty buffer at policy version 0. */
  public ReplayBuffer(ReplaySettings settings) {
    this.settings = Objects.requireNonNull(settings, "settings");
    this.estimator = settings.estimator();
    for (DropReason r : DropReason.values()) {
      droppedSamples.put(r, 0L);
      droppedGroups.put(r, 0L);
    }
  }

  /** The settings this buffer runs with. */
  public ReplaySettings settings() {
    return settings;
  }

  // ------------------------------------------------------------------------------------------------ arrival

  /**
   * Takes one scored trajectory.
   *
   * @return what happened to the trajectory and its group
   * @throws IllegalArgumentException if the sample index is outside {@code 0..G-1} (message names prompt and index)
   * @throws DuplicateSampleException if the index already arrived for this prompt's pending group; the buffer is
   *     left unchanged in both cases
   */
  public AddResult add(ScoredTrajectory scored) {
    Trajectory t = scored.trajectory();
    RewardResult reward = scored.reward();
    long promptId = t.promptId();
    int index = t.sampleIndex();
    int g = settings.groupSize();
    if (index < 0 || index >= g) {
      throw new IllegalArgumentException("prompt " + promptId + ": sample index " + index
          + " outside 0.." + (g - 1) + " (" + ReplaySettings.GROUP_SIZE + " = " + g + ")");
    }
    Group group = pending.get(promptId);
    if (group != null && group.seen.get(index)) {
      throw new DuplicateSampleException(promptId, index);
    }
    // From here on the buffer changes.
    if (group == null) {
      group = new Group(promptId);
      pending.put(promptId, group);
    }
    group.seen.set(index);
    trajectoriesAdded++;
    boolean failed = !reward.isOk();
    if (failed) {
      failedRewards++;
      if (settings.failedReward() == FailedRewardPolicy.DROP_GROUP) {
        group.failed = true;
      }
    } else {
      scoredRewardSum += reward.reward();
      scoredRewardCount++;
    }

    DropReason sampleDropped = null;
    if (isStale(t)) {
      sampleDropped = DropReason.STALE;
    } else if (failed && settings.failedReward() == FailedRewardPolicy.DROP_SAMPLE) {
      sampleDropped = DropReason.FAILED_REWARD;
    }
    if (sampleDropped != null) {
      countSample(sampleDropped);
    } else {
      if (failed && settings.failedReward() == FailedRewardPolicy.ZERO) {
        failedRewardsZeroed++;
      }
      group.members.add(new Member(t, failed ? 0.0 : reward.reward(), failed,
          failed ? Map.of() : reward.components(), false));
    }

    if (group.seen.cardinality() < g) {
      return new AddResult(promptId, index, sampleDropped, AddResult.GroupStatus.PENDING, null);
    }
    pending.remove(promptId);
    groupsCompleted++;
    group.members.sort(Comparator.comparingInt(m -> m.trajectory.sampleIndex()));
    DropReason groupDropped = group.failed ? DropReason.FAILED_REWARD : screen(group, true);
    if (groupDropped != null) {
      dropGroup(group, groupDropped);
      return new AddResult(promptId, index, sampleDropped, AddResult.GroupStatus.DROPPED, groupDropped);
    }
    ready.addLast(group);
    groupsQueued++;
    return new AddResult(promptId, index, sampleDropped, AddResult.GroupStatus.READY, null);
  }

  /**
   * Sets the current policy version (the learner's latest) and drops every held trajectory that became stale:
   * its oldest token version is below {@code version - max-staleness}. A queued group that loses samples is
   * re-filtered (empty, zero-variance) and may be dropped as a whole.
   *
   * @return the queued groups dropped as a whole by this call
   * @throws IllegalArgumentException if {@code version} is lower than the current one (versions never go back)
   */
  public List<DroppedGroup> setPolicyVersion(int version) {
    if (version < policyVersion) {
      throw new IllegalArgumentException(
          "policy version may not go back: current " + policyVersion + ", given " + version);
    }
    if (version == policyVersion) {
      return List.of();
    }
    policyVersion = version;
    for (Group group : pending.values()) {
      removeStale(group);
    }
    List<DroppedGroup> dropped = new ArrayList<>();
    for (Iterator<Group> it = ready.iterator(); it.hasNext(); ) {
      Group group = it.next();
      if (removeStale(group)) {
        DropReason reason = screen(group, false);
        if (reason != null) {
          it.remove();
          dropGroup(group, reason);
          dropped.add(new DroppedGroup(group.promptId, reason));
        }
      }
    }
    return dropped;
  }

  /** The current policy version. */
  public int policyVersion() {
    return policyVersion;
  }

  /**
   * Whether a trajectory is too old for the current version: its oldest token version is below
   * {@code current - max-staleness}. Exactly {@code max-staleness} versions old is still fresh.
   */
  public boolean isStale(Trajectory t) {
    return t.oldestVersion() < (long) policyVersion - settings.maxStaleness();
  }

  // ------------------------------------------------------------------------------------------------ batches

  /**
   * Cuts a training batch if enough is queued: {@code batch-groups} groups, or in token mode as many whole groups
   * (queue order) as fit the token budget once the queue holds at least the budget (a group larger than the
   * budget on its own is a batch of its own).
   */
  public Optional<TrainingBatch> pollBatch() {
    // by tokens, the coordinator lets at most (max-staleness + 1) x batch-groups groups wait: once that many are
    // queued and still short of the budget, no more will come, and they are trained as they are
    boolean full = settings.batchByTokens()
        && ready.size() >= (long) (settings.maxStaleness() + 1) * settings.batchGroups();
    int take = groupsToTake(full);
    return take == 0 ? Optional.empty() : Optional.of(cut(take));
  }

  /**
   * Cuts a batch from whatever is queued even if it is not full (end of a run, evaluation), still no larger than
   * a full batch. Empty only when nothing is queued.
   */
  public Optional<TrainingBatch> flush() {
    int take = groupsToTake(true);
    return take == 0 ? Optional.empty() : Optional.of(cut(take));
  }

  private int groupsToTake(boolean partial) {
    if (ready.isEmpty()) {
      return 0;
    }
    if (!settings.batchByTokens()) {
      if (ready.size() >= settings.batchGroups()) {
        return settings.batchGroups();
      }
      return partial ? ready.size() : 0;
    }
    long budget = settings.batchTokens();
    long acc = 0;
    int take = 0;
    for (Group group : ready) {
      long tokens = group.trainTokens();
      if (take > 0 && acc + tokens > budget) {
        return take; // the next group would overflow: the batch is full
      }
      acc += tokens;
      take++;
      if (acc >= budget) {
        return take;
      }
    }
    return partial ? take : 0;
  }

  private TrainingBatch cut(int take) {
    List<Group> groups = new ArrayList<>(take);
    for (int i = 0; i < take; i++) {
      groups.add(ready.pollFirst());
    }
    // canonical order (prompt id; members are already in sample-index order), whatever order scorers finished
    // in: the batch's sums, advantages and micro-batches, and so the update, are the same bits on every run with
    // the same groups
    groups.sort(Comparator.comparingLong(g -> g.promptId));
    List<Member> trained = new ArrayList<>();
    List<Double> adv = new ArrayList<>();
    for (Group group : groups) {
      double[] rewards = new double[group.members.size()];
      for (int i = 0; i < rewards.length; i++) {
        rewards[i] = group.members.get(i).reward;
      }
      double[] a = estimator.groupAdvantages(rewards);
      for (int i = 0; i < a.length; i++) {
        Member m = group.members.get(i);
        if (!m.overlong) {
          trained.add(m);
          adv.add(a[i]);
        }
      }
    }
    double[] advantages = new double[adv.size()];
    for (int i = 0; i < advantages.length; i++) {
      advantages[i] = adv.get(i);
    }
    estimator.normalizeBatch(advantages);

    List<TrainingSample> samples = new ArrayList<>(trained.size());
    for (int i = 0; i < trained.size(); i++) {
      Member m = trained.get(i);
      samples.add(new TrainingSample(m.trajectory, m.reward, (float) advantages[i]));
    }
    List<List<TrainingSample>> micro =
        MicroBatcher.pack(samples, settings.microBatchTokens(), settings.microBatchCost());

    groupsBatched += groups.size();
    samplesBatched += samples.size();
    batches++;
    ReplayCounters now = counters();
    ReplayCounters delta = now.minus(countersAtLastBatch);
    BatchStats stats = stats(groups.size(), trained, advantages, delta);
    countersAtLastBatch = now;
    scoredRewardSum = 0;
    scoredRewardCount = 0;
    return new TrainingBatch(samples, micro, policyVersion, stats);
  }

  private BatchStats stats(int groups, List<Member> trained, double[] advantages, ReplayCounters delta) {
    int n = trained.size();
    double[] rewards = new double[n];
    long tokens = 0;
    long completion = 0;
    int truncated = 0;
    int oldest = Integer.MAX_VALUE;
    double correctSum = 0;
    int correctCount = 0;
    long turns = 0;
    Map<String, Long> ends = new java.util.TreeMap<>();
    Map<String, Long> counters = new java.util.TreeMap<>();
    for (int i = 0; i < n; i++) {
      Member m = trained.get(i);
      dev.nucleon.core.rollout.EpisodeOutcome episode = m.trajectory.episode();
      if (episode != null) {
        turns += episode.turns();
        String end = episode.endReason();
        ends.merge(end.equals("max_turns") || end.equals("max_tokens") ? end : "environment", 1L, Long::sum);
        episode.counters().forEach((k, v) -> counters.merge(k, v, Long::sum));
      }
      rewards[i] = m.reward;
      tokens += m.trajectory.totalTokens();
      completion += m.trajectory.trainedTokens(); // the tokens that carry loss (an environment's do not)
      if (m.trajectory.finishReason() == FinishReason.LENGTH) {
        truncated++;
      }
      oldest = Math.min(oldest, m.trajectory.oldestVersion());
      Double c = m.components.get(CORRECT_COMPONENT);
      if (c != null) {
        correctSum += c;
        correctCount++;
      }
    }
    double rewardMean = GroupMath.mean(rewards);
    double advMean = GroupMath.mean(advantages);
    return new BatchStats(
        groups,
        n,
        tokens,
        completion,
        rewardMean,
        GroupMath.populationStd(rewards, rewardMean),
        correctCount == 0 ? null : correctSum / correctCount,
        advMean,
        GroupMath.populationStd(advantages, advMean),
        n == 0 ? 0.0 : (double) truncated / n,
        n == 0 ? 0 : (int) Math.max(0L, (long) policyVersion - oldest),
        scoredRewardCount == 0 ? null : scoredRewardSum / scoredRewardCount,
        delta.failedRewards(),
        delta.droppedSamples(),
        delta.droppedGroups(),
        ends.isEmpty() ? null : (double) turns / ends.values().stream().mapToLong(Long::longValue).sum(),
        ends,
        counters);
  }

  // ------------------------------------------------------------------------------------------------ gauges

  /** Complete groups queued for training. */
  public int readyGroups() {
    return ready.size();
  }

  /** Tokens (prompt + completion) of the queued groups' trainable samples. */
  public long readyTokens() {
    long n = 0;
    for (Group group : ready) {
      n += group.trainTokens();
    }
    return n;
  }

  /** Prompts with some but not all samples in. */
  public int pendingGroups() {
    return pending.size();
  }

  /** Cumulative counters. */
  public ReplayCounters counters() {
    Map<String, Long> ds = new LinkedHashMap<>();
    Map<String, Long> dg = new LinkedHashMap<>();
    for (DropReason r : DropReason.values()) {
      ds.put(r.label(), droppedSamples.get(r));
      dg.put(r.label(), droppedGroups.get(r));
    }
    return new ReplayCounters(trajectoriesAdded, failedRewards, failedRewardsZeroed, groupsCompleted, groupsQueued,
        groupsBatched, samplesBatched, batches, ds, dg);
  }

  // ------------------------------------------------------------------------------------------------ snapshot

  /** The whole state as plain data (for a checkpoint). The buffer is unchanged. */
  public ReplaySnapshot snapshot() {
    List<ReplaySnapshot.GroupState> p = new ArrayList<>();
    for (Group group : pending.values()) {
      p.add(group.state());
    }
    List<ReplaySnapshot.GroupState> r = new ArrayList<>();
    for (Group group : ready) {
      r.add(group.state());
    }
    return new ReplaySnapshot(settings.groupSize(), policyVersion, p, r, counters(), countersAtLastBatch,
        scoredRewardSum, scoredRewardCount);
  }

  /**
   * A buffer in the state of a snapshot.
   *
   * @throws IllegalArgumentException if the snapshot was taken with another group size or is inconsistent
   */
  public static ReplayBuffer restore(ReplaySettings settings, ReplaySnapshot snapshot) {
    if (snapshot.groupSize() != settings.groupSize()) {
      throw new IllegalArgumentException("replay snapshot has group size " + snapshot.groupSize() + " but "
          + ReplaySettings.GROUP_SIZE + " = " + settings.groupSize());
    }
    ReplayBuffer b = new ReplayBuffer(settings);
    b.policyVersion = snapshot.policyVersion();
    for (ReplaySnapshot.GroupState s : snapshot.pending()) {
      Group group = Group.of(s, settings.groupSize());
      if (b.pending.put(group.promptId, group) != null) {
        throw new IllegalArgumentException("replay snapshot has prompt " + group.promptId + " pending twice");
      }
      if (group.seen.cardinality() >= settings.groupSize()) {
        throw new IllegalArgumentException("replay snapshot has a complete group pending: prompt " + group.promptId);
      }
    }
    for (ReplaySnapshot.GroupState s : snapshot.ready()) {
      b.ready.addLast(Group.of(s, settings.groupSize()));
    }
    ReplayCounters c = snapshot.counters();
    b.trajectoriesAdded = c.trajectoriesAdded();
    b.failedRewards = c.failedRewards();
    b.failedRewardsZeroed = c.failedRewardsZeroed();
    b.groupsCompleted = c.groupsCompleted();
    b.groupsQueued = c.groupsQueued();
    b.groupsBatched = c.groupsBatched();
    b.samplesBatched = c.samplesBatched();
    b.batches = c.batches();
    for (DropReason r : DropReason.values()) {
      b.droppedSamples.put(r, c.droppedSamples(r));
      b.droppedGroups.put(r, c.droppedGroups(r));
    }
    b.countersAtLastBatch = snapshot.countersAtLastBatch();
    b.scoredRewardSum = snapshot.scoredRewardSum();
    b.scoredRewardCount = snapshot.scoredRewardCount();
    return b;
  }

  // ------------------------------------------------------------------------------------------------ internals

  /**
   * Filters a complete group; returns why it must be dropped, or null to keep it. On the first screening
   * ({@code fresh}) overlong members are marked and counted here.
   */
  private DropReason screen(Group group, boolean fresh) {
    if (group.members.isEmpty()) {
      return DropReason.EMPTY;
    }
    if (settings.dropZeroVariance()) {
      double[] rewards = new double[group.members.size()];
      for (int i = 0; i < rewards.length; i++) {
        rewards[i] = group.members.get(i).reward;
      }
      if (GroupMath.allEqual(rewards)) {
        return DropReason.ZERO_VARIANCE;
      }
    }
    if (fresh && settings.dropOverlong()) {
      for (Member m : group.members) {
        if (m.trajectory.finishReason() == FinishReason.LENGTH) {
          m.overlong = true;
          countSample(DropReason.OVERLONG);
        }
      }
    }
    for (Member m : group.members) {
      if (!m.overlong) {
        return null;
      }
    }
    return DropReason.EMPTY;
  }

  /** Removes stale members, counting those not already counted; true if any was removed. */
  private boolean removeStale(Group group) {
    boolean removed = false;
    for (Iterator<Member> it = group.members.iterator(); it.hasNext(); ) {
      Member m = it.next();
      if (isStale(m.trajectory)) {
        it.remove();
        removed = true;
        if (!m.overlong) {
          countSample(DropReason.STALE);
        }
      }
    }
    return removed;
  }

  /** Counts a group drop and every member not already counted. */
  private void dropGroup(Group group, DropReason reason) {
    for (Member m : group.members) {
      if (!m.overlong) {
        countSample(reason);
      }
    }
    droppedGroups.merge(reason, 1L, Long::sum);
  }

  private void countSample(DropReason reason) {
    droppedSamples.merge(reason, 1L, Long::sum);
  }

  private static final class Member {
    final Trajectory trajectory;
    final double reward;
    final boolean failedReward;
    final Map<String, Double> components;
    boolean overlong;

    Member(Trajectory trajectory, double reward, boolean failedReward, Map<String, Double> components,
        boolean overlong) {
      this.trajectory = trajectory;
      this.reward = reward;
      this.failedReward = failedReward;
      this.components = components;
      this.overlong = overlong;
    }
  }

  private static final class Group {
    final long promptId;
    final BitSet seen = new BitSet();
    final List<Member> members = new ArrayList<>();
    boolean failed;

    Group(long promptId) {
      this.promptId = promptId;
    }

    long trainTokens() {
      long n = 0;
      for (Member m : members) {
        if (!m.overlong) {
          n += m.trajectory.totalTokens();
        }
      }
      return n;
    }

    ReplaySnapshot.GroupState state() {
      List<Integer> s = new ArrayList<>();
      for (int i = seen.nextSetBit(0); i >= 0; i = seen.nextSetBit(i + 1)) {
        s.add(i);
      }
      List<ReplaySnapshot.MemberState> ms = new ArrayList<>();
      for (Member m : members) {
        ms.add(new ReplaySnapshot.MemberState(m.trajectory, m.reward, m.failedReward, m.components, m.overlong));
      }
      return new ReplaySnapshot.GroupState(promptId, s, failed, ms);
    }

    static Group of(ReplaySnapshot.GroupState s, int groupSize) {
      Group g = new Group(s.promptId());
      for (int i : s.seen()) {
        if (i < 0 || i >= groupSize) {
          throw new IllegalArgumentException(
              "replay snapshot: prompt " + s.promptId() + " has sample index " + i + " outside 0.." + (groupSize - 1));
        }
        g.seen.set(i);
      }
      g.failed = s.failed();
      for (ReplaySnapshot.MemberState m : s.members()) {
        Trajectory t = m.trajectory();
        if (t.promptId() != s.promptId() || !g.seen.get(t.sampleIndex())) {
          throw new IllegalArgumentException("replay snapshot: group of prompt " + s.promptId()
              + " holds prompt " + t.promptId() + " sample " + t.sampleIndex() + " it has not seen");
        }
        g.members.add(new Member(t, m.reward(), m.failedReward(), m.components(), m.overlong()));
      }
      return g;
    }
  }
}
