package dev.nucleon.model.generate;

import java.util.Objects;

/**
 * One prompt to complete.
 *
 * @param prompt token ids (BOS included when the model expects it); not empty
 * @param params sampling settings
 * @param seed seeds this request's own random stream, so its samples do not depend on what else is in the batch
 * @param listener hears each token as it is drawn (streaming), or null
 */
public record GenerationRequest(int[] prompt, SamplingParams params, long seed, TokenListener listener) {
  public GenerationRequest {
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(params, "params");
    if (prompt.length == 0) {
      throw new IllegalArgumentException("prompt must hold at least one token");
    }
  }

  /** A request nobody listens to token by token. */
  public GenerationRequest(int[] prompt, SamplingParams params, long seed) {
    this(prompt, params, seed, null);
  }
}
