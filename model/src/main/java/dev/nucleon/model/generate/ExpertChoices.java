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
  private final List<byte[]> routes;
  /** Per request, the positions recorded so far (a recording gap would replay expert 0 without this check). */
  private final List<java.util.BitSet> recorded;

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
    routes = this.moe == null ? null : new java.util.ArrayList<>(requests);
    recorded = this.moe == null ? null : new java.util.ArrayList<>(requests);
    for (int i = 0; i < requests; i++) {
      add(positions.applyAsInt(i));
    }
  }

  /** Makes room for one more request (the next index), expecting {@code positions} positions. */
  void add(int positions) {
    if (moe != null) {
      routes.add(new byte[positions * width()]);
      recorded.add(new java.util.BitSet());
    }
  }

  /** Drops the first {@code n} requests' records (their results were taken): request n is request 0 from now on. */
  void dropFirst(int n) {
    if (moe != null) {
      routes.subList(0, n).clear();
      recorded.subList(0, n).clear();
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
    byte[] route = routes.get(i);
    if (at + width() > route.length) {
      route = Arrays.copyOf(route, Math.max(at + width(), route.length * 2));
      routes.set(i, route);
    }
    for (int l = 0; l < layers.size(); l++) {
      int[] ids = routing.chosen().get(layers.get(l));
      for (int j = 0; j < k; j++) {
        route[at + l * k + j] = (byte) ids[row * k + j];
      }
    }
    recorded.get(i).set(position);
  }

  /**
   * Request {@code i}'s choices for its first {@code positions} positions, or null when none are recorded; throws
   * when one of them was never recorded (a bug in the caller, which would otherwise replay expert 0 there).
   */
  RoutedExperts of(int i, int positions) {
    if (moe == null) {
      return null;
    }
    int gap = recorded.get(i).nextClearBit(0);
    if (gap < positions) {
      throw new IllegalStateException("record " + i + ": the experts of position " + gap + " of " + positions
          + " were never recorded");
    }
    return new RoutedExperts(moe.sparseLayers().size(), moe.topK(), Arrays.copyOf(routes.get(i), positions * width()));
  }

  /** Bytes per position. */
  private int width() {
    return moe.sparseLayers().size() * moe.topK();
  }
}
