package dev.nucleon.model.generate;

import dev.nucleon.core.rollout.FinishReason;
import java.util.concurrent.CompletableFuture;

/** What follows a model turn of a multi-turn episode ({@link Generator#generateEpisodes}). */
@FunctionalInterface
public interface TurnHandler {

  /**
   * Called on the generator's thread when episode {@code episode}'s turn {@code turn} (from 0) ended; the returned
   * future completes with the tokens to feed before the model's next turn (an environment's answer rendered, ending
   * where the model's next turn starts), or with null to end the episode. The generator waits for the answers of
   * every episode whose turn ended in the same round, so they may be computed concurrently; the future must complete
   * (a handler guards its own timeouts) and must not complete exceptionally.
   *
   * @param turnTokens the turn's tokens, the stop token included when {@code reason == STOP}
   */
  CompletableFuture<int[]> next(int episode, int turn, int[] turnTokens, FinishReason reason);
}
