package dev.nucleon.model.generate;

import dev.nucleon.core.rollout.RoutedExperts;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.Routing;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The experts a mixture-of-experts model sent each position of each request of a batch to, recorded as the batch's
 * forward passes run, for routing replay: the learner routes every token the rollout read as the rollout did
 * ({@link RoutedExperts}). Records nothing for a dense model, or one with more experts than a byte holds.
 */
final class ExpertChoices {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ExpertChoices.class);
  /** Whether the missing record of a model with too many experts was already logged. */
  private static final AtomicBoolean WARNED = new AtomicBoolean();

  /** The model's mixture of experts whose choices are recorded, or null. */
  private final LlamaConfig.Moe moe;
  /** Per request, {@link RoutedExperts}'s layout: [position][sparse layer][k], grown as positions come. */
  private final byte[][] routes;
  /** Per request, the positions recorded so far (a recording gap would replay expert 0 without this check). */
  private final java.util.BitSet[] recorded;

  /**
   * @param moe the model's mixture of experts, or null (dense)
   * @param requests requests in the batch
   * @param positions per request, the positions expected (more are made room for as they come)
   */
  ExpertChoices(LlamaConfig.Moe moe, int requests, java.util.function.IntUnaryOperator positions) {
    this.moe = moe != null && moe.numExperts() <= RoutedExperts.MAX_EXPERTS ? moe : null;
    if (moe != null && this.moe == null && !WARNED.getAndSet(true)) {
      LOG.warn("the model has {} experts per layer, more than the {} whose choices fit one byte: expert choices "
          + "are not recorded, and the learner routes with its own routers (no routing replay)", moe.numExperts(),
          RoutedExperts.MAX_EXPERTS);
    }
    routes = this.moe == null ? null : new byte[requests][];
    recorded = this.moe == null ? null : new java.util.BitSet[requests];
    for (int i = 0; routes != null && i < requests; i++) {
      routes[i] = new byte[positions.applyAsInt(i) * width()];
      recorded[i] = new java.util.BitSet();
    }
  }

  /** A routing to record the next forward's expert choices in, or null when none are recorded. */
  Routing routing() {
    return moe == null ? null : Routing.record();
  }

  /**
   * Records the choices of forward row {@code row} (a row of the flattened {@code [B * T]} tokens) as request
   * {@code i}'s at sequence position {@code position}; nothing when {@code routing} is null.
   */
  void record(Routing routing, int row, int i, int position) {
    if (routing == null) {
      return;
    }
    int k = moe.topK();
    List<Integer> layers = moe.sparseLayers();
    int at = position * width();
    if (at + width() > routes[i].length) {
      routes[i] = Arrays.copyOf(routes[i], Math.max(at + width(), routes[i].length * 2));
    }
    for (int l = 0; l < layers.size(); l++) {
      int[] ids = routing.chosen().get(layers.get(l));
      for (int j = 0; j < k; j++) {
        routes[i][at + l * k + j] = (byte) ids[row * k + j];
      }
    }
    recorded[i].set(position);
  }

  /**
   * Request {@code i}'s choices for its first {@code positions} positions, or null when none are recorded; throws
   * when one of them was never recorded (a bug in the caller, which would otherwise replay expert 0 there).
   */
  RoutedExperts of(int i, int positions) {
    if (moe == null) {
      return null;
    }
    int gap = recorded[i].nextClearBit(0);
    if (gap < positions) {
      throw new IllegalStateException("request " + i + ": the experts of position " + gap + " of " + positions
          + " were never recorded");
    }
    return new RoutedExperts(moe.sparseLayers().size(), moe.topK(), Arrays.copyOf(routes[i], positions * width()));
  }

  /** Bytes per position. */
  private int width() {
    return moe.sparseLayers().size() * moe.topK();
  }
}
