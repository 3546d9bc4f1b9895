package dev.nucleon.model.generate;

import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.RoutedExperts;

/**
 * A completion with, for every generated token, two log-probs and the policy version that produced it.
 *
 * @param tokens generated ids; ends with the stop token when {@code finishReason == STOP}
 * @param samplingLogProbs log-prob of each token under the distribution it was actually drawn from: softmax of
 *     logits / temperature, renormalized over the top-k / top-p set when those are on; 0 for greedy decoding.
 *     These are the behaviour log-probs the learner's importance ratio needs.
 * @param modelLogProbs log-prob of each token under the model itself: softmax of the raw logits (temperature 1,
 *     no truncation)
 * @param versions the policy version whose weights produced each token
 * @param finishReason STOP or LENGTH
 * @param routedExperts a mixture-of-experts model's expert choices at every position it read (prompt and
 *     completion but the last token), for routing replay; null for a dense model
 */
public record GenerationResult(int[] tokens, float[] samplingLogProbs, float[] modelLogProbs, int[] versions,
    FinishReason finishReason, RoutedExperts routedExperts) {

  /** A dense model's result (no expert choices). */
  public GenerationResult(int[] tokens, float[] samplingLogProbs, float[] modelLogProbs, int[] versions,
      FinishReason finishReason) {
    this(tokens, samplingLogProbs, modelLogProbs, versions, finishReason, null);
  }
}
