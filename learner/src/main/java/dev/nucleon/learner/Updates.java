package dev.nucleon.learner;

/**
 * How many optimizer steps the learner takes on one training batch ({@code nucleon.learner.epochs} and
 * {@code nucleon.learner.minibatches}): the batch is split into {@code minibatches} parts of consecutive samples,
 * each part is one optimizer step, and the pass over the parts is repeated {@code epochs} times. The policy
 * version still goes up by one per batch.
 *
 * <p>One update per batch (the default) trains every batch at the weights that are about to change, so in a
 * synchronous run the PPO ratio is exactly 1 and its clip never acts; from the second update on, the ratio against
 * the behaviour log-probs measures how far the step has moved and the clip bounds it (a trust region, as in PPO).
 *
 * @param epochs passes over the batch, at least 1
 * @param minibatches optimizer steps per pass, at least 1 (a batch with fewer samples takes one per sample)
 */
public record Updates(int epochs, int minibatches) {

  /** One optimizer step per batch. */
  public static final Updates ONE = new Updates(1, 1);

  public Updates {
    if (epochs < 1 || minibatches < 1) {
      throw new IllegalArgumentException("epochs and minibatches must be at least 1, got " + epochs + " and "
          + minibatches);
    }
  }

  /** Optimizer steps per training batch. */
  public int perBatch() {
    return epochs * minibatches;
  }
}
