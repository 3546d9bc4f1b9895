package dev.nucleon.actors.monitor;

import java.util.List;
import java.util.Map;

/**
 * One node's figures at one moment, for the cluster-wide view: the coordinator collects these from every node and
 * hands them to {@link StatusView}. Plain fields only (records of primitives, Strings, {@code ArrayList},
 * {@code LinkedHashMap}), so Kryo can carry it across nodes: register {@code NodeSnapshot}, {@link Actor},
 * {@link Reward}, {@link Learner}, {@code ArrayList} and {@code LinkedHashMap}. Rates are over the metrics'
 * sliding window (see {@link NucleonMetrics#rateWindowSeconds()}).
 *
 * @param node the node's name (its cluster address or the configured node name)
 * @param roles the node's roles
 * @param timeMillis wall-clock time of the snapshot (epoch milliseconds)
 * @param uptimeSeconds seconds since the node's metrics were created
 * @param rateWindowSeconds the window over which the {@code ...PerSecond} rates are computed
 * @param actors one entry per actor that reported anything (rollout workers, scorers, replay, learner, ...)
 * @param rewards one entry per reward function scored on this node
 * @param learner the learner's figures, or null on a node without a learner
 * @param replayGroups groups ready in the replay buffer (-1 when this node has no replay buffer)
 * @param replayDropped dropped groups/trajectories by reason (e.g. stale, zero_variance, failed)
 * @param staleness count of trained trajectories by versions behind ("0", "1", ...)
 * @param stalenessMax the largest versions-behind seen (-1 when none)
 * @param stalenessMean mean versions-behind over all trajectories seen (0 when none)
 * @param trainingSignals the last training signals (reward_mean, accuracy, loss, kl, clip_fraction, entropy,
 *     grad_norm, ...)
 */
public record NodeSnapshot(
    String node,
    List<String> roles,
    long timeMillis,
    double uptimeSeconds,
    double rateWindowSeconds,
    List<Actor> actors,
    List<Reward> rewards,
    Learner learner,
    int replayGroups,
    Map<String, Long> replayDropped,
    Map<String, Long> staleness,
    int stalenessMax,
    double stalenessMean,
    Map<String, Double> trainingSignals) {

  /**
   * One actor's figures.
   *
   * @param role the role the actor belongs to (rollout, reward, learner, coordinator)
   * @param actor the actor's name, unique on its node (e.g. rollout-0)
   * @param tokens generated tokens, total (rollout workers; 0 otherwise)
   * @param trajectories generated trajectories, total (rollout workers; 0 otherwise)
   * @param tokensPerSecond generated tokens per second over the window
   * @param trajectoriesPerSecond trajectories per second over the window
   * @param batches batches generated, total
   * @param batchSecondsMean mean seconds per batch (0 when none)
   * @param busyRatio busy time over wall time over the window (-1 when the actor has no busy tracker)
   * @param busyRatioSinceStart busy time over wall time since start (-1 when no tracker)
   * @param mailboxDepth last reported mailbox/queue depth (-1 when never reported)
   */
  public record Actor(
      String role,
      String actor,
      long tokens,
      long trajectories,
      double tokensPerSecond,
      double trajectoriesPerSecond,
      long batches,
      double batchSecondsMean,
      double busyRatio,
      double busyRatioSinceStart,
      int mailboxDepth) {}

  /**
   * One reward function's figures.
   *
   * @param reward the reward identifier
   * @param outcomes scored completions by outcome (ok, failed, timeout, ...)
   * @param scoredPerSecond scored completions per second over the window (all outcomes)
   * @param secondsMean mean seconds per scoring call (0 when none)
   */
  public record Reward(String reward, Map<String, Long> outcomes, double scoredPerSecond, double secondsMean) {}

  /**
   * The learner's figures.
   *
   * @param policyVersion the newest published policy version (-1 before the first)
   * @param steps learner steps, total
   * @param tokens tokens trained on, total
   * @param tokensPerSecond trained tokens per second over the window
   * @param stepSecondsLast seconds of the last step
   * @param stepSecondsMean mean seconds per step
   * @param weightsPublishes weight publications, total
   * @param weightsPublishSecondsLast seconds of the last publication
   * @param weightsBytes bytes of weights published, total
   */
  public record Learner(
      int policyVersion,
      long steps,
      long tokens,
      double tokensPerSecond,
      double stepSecondsLast,
      double stepSecondsMean,
      long weightsPublishes,
      double weightsPublishSecondsLast,
      long weightsBytes) {}
}
