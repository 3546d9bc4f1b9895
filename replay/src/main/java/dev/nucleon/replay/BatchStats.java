package dev.nucleon.replay;

import java.util.Map;

/**
 * What one training batch holds and what was dropped since the previous batch (for metrics).
 *
 * @param groups groups in the batch
 * @param samples samples in the batch
 * @param tokens prompt + completion tokens of every sample
 * @param completionTokens completion tokens of every sample (the tokens that carry loss)
 * @param rewardMean mean reward of the batch's samples (after filtering: with zero-variance dropping on, this is not
 *     the policy's mean reward; see {@code scoredRewardMean})
 * @param rewardStd population std of the batch's rewards
 * @param accuracy mean of the {@code correct} reward component over the samples that have one; {@code null} if none
 * @param advantageMean mean advantage of the batch
 * @param advantageStd population std of the batch's advantages
 * @param truncatedFraction fraction of samples cut at the token limit (finish reason LENGTH)
 * @param maxStaleness policy version at the cut minus the oldest token version in the batch
 * @param scoredRewardMean mean of every successful reward that arrived since the previous batch, before any filter;
 *     {@code null} if none arrived
 * @param failedRewards failed rewards that arrived since the previous batch
 * @param droppedSamples trajectories dropped since the previous batch, by {@link DropReason#label()}
 * @param droppedGroups groups dropped as a whole since the previous batch, by {@link DropReason#label()}
 * @param turnsMean mean model turns of the batch's multi-turn episodes; {@code null} if it holds none
 * @param episodeEnds the batch's episodes by how they ended: {@code environment} (it said so), {@code max_turns},
 *     {@code max_tokens}
 * @param episodeCounters the batch's episodes' counters summed ({@code tool_calls}, {@code tool_errors}, ...)
 */
public record BatchStats(
    int groups,
    int samples,
    long tokens,
    long completionTokens,
    double rewardMean,
    double rewardStd,
    Double accuracy,
    double advantageMean,
    double advantageStd,
    double truncatedFraction,
    int maxStaleness,
    Double scoredRewardMean,
    long failedRewards,
    Map<String, Long> droppedSamples,
    Map<String, Long> droppedGroups,
    Double turnsMean,
    Map<String, Long> episodeEnds,
    Map<String, Long> episodeCounters) {

  public BatchStats {
    droppedSamples = Map.copyOf(droppedSamples);
    droppedGroups = Map.copyOf(droppedGroups);
    episodeEnds = Map.copyOf(episodeEnds);
    episodeCounters = Map.copyOf(episodeCounters);
  }
}
