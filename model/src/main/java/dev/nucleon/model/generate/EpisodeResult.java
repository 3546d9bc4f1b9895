package dev.nucleon.model.generate;

import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.RoutedExperts;

/**
 * A generated multi-turn episode: every token after the prompt, the model's and the handler's in order.
 *
 * @param tokens the ids after the prompt
 * @param trained per token, 1 where the model sampled it and 0 where the handler fed it
 * @param samplingLogProbs per token, as {@link GenerationResult#samplingLogProbs()}; 0 for fed tokens
 * @param modelLogProbs per token, as {@link GenerationResult#modelLogProbs()}; 0 for fed tokens
 * @param versions per token, the policy version that sampled it or that was in use when it was fed
 * @param lastTurn how the last model turn ended (STOP, or LENGTH at the turn's or the episode's limit)
 * @param end why the episode ended
 * @param turns model turns taken
 * @param routedExperts for a mixture-of-experts model, the experts every position the model read was sent to (the
 *     prompt, the turns and the answers; every token but the last), for routing replay; null for a dense model
 */
public record EpisodeResult(int[] tokens, byte[] trained, float[] samplingLogProbs, float[] modelLogProbs,
    int[] versions, FinishReason lastTurn, End end, int turns, RoutedExperts routedExperts) {

  /** Why an episode ended. */
  public enum End {
    /** The handler answered null after a turn. */
    HANDLER,
    /** The episode's token budget (or the model's context) had no room for another turn. */
    TOKEN_LIMIT
  }
}
