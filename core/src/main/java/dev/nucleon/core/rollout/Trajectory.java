package dev.nucleon.core.rollout;

import java.util.Objects;

/**
 * One sampled completion of one prompt, as a rollout worker produced it.
 *
 * <p>Every completion token carries the log-prob it had under the distribution it was actually sampled from (the
 * behaviour policy: logits divided by the temperature, renormalised over top-k / top-p when those are on) and the
 * policy version that produced it. A weight update in the middle of a completion shows as a change of version
 * along {@link #tokenVersions()}; the trajectory's staleness is measured from its oldest token.
 *
 * @param promptId the dataset prompt this completion answers
 * @param sampleIndex which of the G samples of that prompt (0..G-1)
 * @param promptTokens the prompt's token ids, BOS included
 * @param completionTokens the generated ids; ends with the stop token when {@code finishReason == STOP}
 * @param behaviourLogProbs per completion token, log-prob under the sampling distribution
 * @param tokenVersions per completion token, the policy version that produced it
 * @param finishReason why the completion ended
 * @param completionText the decoded completion, stop token excluded
 * @param routedExperts for a mixture-of-experts model, the experts each position the model read was sent to (every
 *     token but the last); null for a dense model or when not recorded
 * @param lossMask per completion token, 1 where the policy sampled it (it is trained) and 0 where an environment or a
 *     tool wrote it (a multi-turn episode's observations: no loss, log-prob, advantage or staleness); null when the
 *     policy sampled every completion token
 * @param episode how the multi-turn episode this trajectory holds went (its completion text is the last model
 *     turn); null for a single-turn completion
 */
public record Trajectory(
    long promptId,
    int sampleIndex,
    int[] promptTokens,
    int[] completionTokens,
    float[] behaviourLogProbs,
    int[] tokenVersions,
    FinishReason finishReason,
    String completionText,
    RoutedExperts routedExperts,
    byte[] lossMask,
    EpisodeOutcome episode) {

  /** A single-turn trajectory, or one whose loss mask comes without an episode's record. */
  public Trajectory(long promptId, int sampleIndex, int[] promptTokens, int[] completionTokens,
      float[] behaviourLogProbs, int[] tokenVersions, FinishReason finishReason, String completionText,
      RoutedExperts routedExperts, byte[] lossMask) {
    this(promptId, sampleIndex, promptTokens, completionTokens, behaviourLogProbs, tokenVersions, finishReason,
        completionText, routedExperts, lossMask, null);
  }

  /** A trajectory whose completion the policy sampled whole. */
  public Trajectory(long promptId, int sampleIndex, int[] promptTokens, int[] completionTokens,
      float[] behaviourLogProbs, int[] tokenVersions, FinishReason finishReason, String completionText,
      RoutedExperts routedExperts) {
    this(promptId, sampleIndex, promptTokens, completionTokens, behaviourLogProbs, tokenVersions, finishReason,
        completionText, routedExperts, null);
  }

  /** A trajectory without recorded expert choices (a dense model's). */
  public Trajectory(long promptId, int sampleIndex, int[] promptTokens, int[] completionTokens,
      float[] behaviourLogProbs, int[] tokenVersions, FinishReason finishReason, String completionText) {
    this(promptId, sampleIndex, promptTokens, completionTokens, behaviourLogProbs, tokenVersions, finishReason,
        completionText, null);
  }

  public Trajectory {
    Objects.requireNonNull(promptTokens, "promptTokens");
    Objects.requireNonNull(completionTokens, "completionTokens");
    Objects.requireNonNull(behaviourLogProbs, "behaviourLogProbs");
    Objects.requireNonNull(tokenVersions, "tokenVersions");
    Objects.requireNonNull(finishReason, "finishReason");
    if (behaviourLogProbs.length != completionTokens.length || tokenVersions.length != completionTokens.length) {
      throw new IllegalArgumentException("prompt " + promptId + " sample " + sampleIndex + ": "
          + completionTokens.length + " completion tokens but " + behaviourLogProbs.length + " log-probs and "
          + tokenVersions.length + " versions");
    }
    completionText = completionText == null ? "" : completionText;
    if (lossMask != null) {
      if (lossMask.length != completionTokens.length) {
        throw new IllegalArgumentException("prompt " + promptId + " sample " + sampleIndex + ": a loss mask of "
            + lossMask.length + " for " + completionTokens.length + " completion tokens");
      }
      for (int j = 0; j < lossMask.length; j++) {
        if (lossMask[j] != 0 && lossMask[j] != 1) {
          throw new IllegalArgumentException("prompt " + promptId + " sample " + sampleIndex + ": loss mask value "
              + lossMask[j] + " at completion token " + j + " (0 or 1)");
        }
      }
    }
    if (routedExperts != null && routedExperts.positions() != promptTokens.length + completionTokens.length - 1) {
      throw new IllegalArgumentException("prompt " + promptId + " sample " + sampleIndex + ": experts recorded for "
          + routedExperts.positions() + " positions, but the model read "
          + (promptTokens.length + completionTokens.length - 1));
    }
  }

  /** Whether completion token {@code j} is the policy's (trained), not an environment's. */
  public boolean trained(int j) {
    return lossMask == null || lossMask[j] == 1;
  }

  /** How many completion tokens the policy sampled (the ones that carry loss). */
  public int trainedTokens() {
    if (lossMask == null) {
      return completionTokens.length;
    }
    int n = 0;
    for (byte b : lossMask) {
      n += b;
    }
    return n;
  }

  /**
   * The oldest policy version among the completion's sampled tokens (the one staleness is measured from; an
   * environment's tokens have none that matters).
   */
  public int oldestVersion() {
    int min = Integer.MAX_VALUE;
    int newest = 0;
    for (int j = 0; j < tokenVersions.length; j++) {
      newest = Math.max(newest, tokenVersions[j]);
      if (trained(j)) {
        min = Math.min(min, tokenVersions[j]);
      }
    }
    // no sampled token: nothing is stale; the newest version the episode saw
    return min == Integer.MAX_VALUE ? newest : min;
  }

  /** Prompt plus completion length in tokens. */
  public int totalTokens() {
    return promptTokens.length + completionTokens.length;
  }
}
