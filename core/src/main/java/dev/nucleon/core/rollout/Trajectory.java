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
    RoutedExperts routedExperts) {

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
    if (routedExperts != null && routedExperts.positions() != promptTokens.length + completionTokens.length - 1) {
      throw new IllegalArgumentException("prompt " + promptId + " sample " + sampleIndex + ": experts recorded for "
          + routedExperts.positions() + " positions, but the model read "
          + (promptTokens.length + completionTokens.length - 1));
    }
  }

  /** The oldest policy version among the completion's tokens (the one staleness is measured from). */
  public int oldestVersion() {
    int min = Integer.MAX_VALUE;
    for (int v : tokenVersions) {
      min = Math.min(min, v);
    }
    return tokenVersions.length == 0 ? 0 : min;
  }

  /** Prompt plus completion length in tokens. */
  public int totalTokens() {
    return promptTokens.length + completionTokens.length;
  }
}
