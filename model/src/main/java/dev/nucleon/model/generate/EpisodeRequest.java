package dev.nucleon.model.generate;

import java.util.Objects;

/**
 * One multi-turn episode to generate: the model's turns alternate with tokens a {@link TurnHandler} answers with.
 *
 * @param prompt token ids before the model's first turn (BOS included when the model expects it); not empty
 * @param turn the sampling of each model turn; its {@code maxNewTokens} limits one turn
 * @param seed seeds the episode's own random stream (one stream across its turns)
 * @param maxTokens tokens after the prompt, model and handler tokens together, the episode may hold
 */
public record EpisodeRequest(int[] prompt, SamplingParams turn, long seed, int maxTokens) {

  public EpisodeRequest {
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(turn, "turn");
    if (prompt.length == 0) {
      throw new IllegalArgumentException("prompt must hold at least one token");
    }
    if (maxTokens < 1) {
      throw new IllegalArgumentException("maxTokens must be at least 1, got " + maxTokens);
    }
  }
}
