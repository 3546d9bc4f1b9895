package dev.nucleon.model.generate;

import dev.nucleon.core.rollout.FinishReason;

/**
 * Hears each token of one request as it is drawn (for streaming). It is called on the generator's thread between
 * decode steps, so it must return quickly: hand the token to another thread, do not block.
 */
@FunctionalInterface
public interface TokenListener {

  /**
   * @param token the id drawn
   * @param modelLogProb its log-prob under the model (temperature 1, no truncation)
   * @param finish why the request ends with this token, or null when it goes on
   * @return false to stop the request here (a client that went away): it ends as {@code LENGTH} with the tokens
   *     drawn so far; a listener that throws stops it the same way
   */
  boolean onToken(int token, float modelLogProb, FinishReason finish);
}
