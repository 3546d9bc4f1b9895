package dev.nucleon.learner;

import dev.nucleon.replay.MicroBatchCost;
import dev.nucleon.replay.MicroBatcher;
import dev.nucleon.replay.TrainingBatch;
import dev.nucleon.replay.TrainingSample;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

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
 * @param packTokens the micro-batch token budget each minibatch is packed to ({@code nucleon.replay.micro-batch-
 *     tokens}), or 0 to keep the batch's micro-batches, restricted to the minibatch's samples
 * @param packCost how that budget is measured
 */
public record Updates(int epochs, int minibatches, int packTokens, MicroBatchCost packCost) {

  /** One optimizer step per batch. */
  public static final Updates ONE = new Updates(1, 1);

  public Updates {
    if (epochs < 1 || minibatches < 1) {
      throw new IllegalArgumentException("epochs and minibatches must be at least 1, got " + epochs + " and "
          + minibatches);
    }
    if (packTokens < 0 || packCost == null) {
      throw new IllegalArgumentException("a packing budget >= 0 and its cost are needed, got " + packTokens + " and "
          + packCost);
    }
  }

  /** Minibatches that keep the batch's micro-batches, restricted to their samples. */
  public Updates(int epochs, int minibatches) {
    this(epochs, minibatches, 0, MicroBatchCost.PADDED);
  }

  /** These updates with each minibatch packed into micro-batches of {@code tokens} (the replay buffer's budget). */
  public Updates packedTo(int tokens, MicroBatchCost cost) {
    return new Updates(epochs, minibatches, tokens, cost);
  }

  /**
   * The batch cut into {@link #minibatches} minibatches of consecutive samples (as even as whole samples allow;
   * fewer when the batch has fewer samples), each as a list of micro-batches. A minibatch is packed anew to the
   * budget when there is one: restricting the batch's micro-batches would leave each about 1/M full, since they
   * are packed longest first across the whole batch.
   */
  List<List<List<TrainingSample>>> cut(TrainingBatch batch) {
    List<TrainingSample> samples = batch.samples();
    int k = Math.max(1, Math.min(minibatches, samples.size()));
    if (k == 1) {
      return List.of(batch.microBatches());
    }
    List<List<List<TrainingSample>>> out = new ArrayList<>(k);
    for (int j = 0; j < k; j++) {
      List<TrainingSample> mine = samples.subList(j * samples.size() / k, (j + 1) * samples.size() / k);
      out.add(packTokens > 0 ? MicroBatcher.pack(mine, packTokens, packCost) : restrict(batch.microBatches(), mine));
    }
    return out;
  }

  /** The micro-batches restricted to {@code samples} (by identity), empty ones left out. */
  private static List<List<TrainingSample>> restrict(List<List<TrainingSample>> micros, List<TrainingSample> samples) {
    Set<TrainingSample> mine = Collections.newSetFromMap(new IdentityHashMap<>());
    mine.addAll(samples);
    List<List<TrainingSample>> out = new ArrayList<>();
    for (List<TrainingSample> micro : micros) {
      List<TrainingSample> kept = micro.stream().filter(mine::contains).toList();
      if (!kept.isEmpty()) {
        out.add(kept);
      }
    }
    return out;
  }
}
