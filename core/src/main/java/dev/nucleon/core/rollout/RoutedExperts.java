package dev.nucleon.core.rollout;

import java.util.Objects;

/**
 * The experts a mixture-of-experts model sent each token of a trajectory to while it was sampled: for every position
 * the model read (prompt and completion, all but the last token, which was never fed back) and every sparse layer,
 * the {@code topK} expert ids in the router's order. The learner replays them (routing replay) so that it computes
 * the log-probs of the experts that produced the tokens.
 *
 * <p>Stored compactly: one unsigned byte per id (up to 256 experts per layer, as in every published MoE family),
 * {@code experts[(position * layers + layer) * topK + j]}, where {@code layer} counts sparse layers only.
 *
 * @param layers sparse layers recorded per position
 * @param topK experts per token and layer
 * @param experts the ids, position by position
 */
public record RoutedExperts(int layers, int topK, byte[] experts) {

  /** The most experts a layer may have for its ids to fit one byte. */
  public static final int MAX_EXPERTS = 256;

  public RoutedExperts {
    Objects.requireNonNull(experts, "experts");
    if (layers <= 0 || topK <= 0) {
      throw new IllegalArgumentException("routed experts need layers > 0 and topK > 0, got " + layers + " and "
          + topK);
    }
    if (experts.length % (layers * topK) != 0) {
      throw new IllegalArgumentException(experts.length + " expert ids are not whole positions of " + layers
          + " layers x " + topK + " experts");
    }
  }

  /** Positions recorded. */
  public int positions() {
    return experts.length / (layers * topK);
  }

  /** The {@code j}-th expert of sparse layer {@code layer} at {@code position}. */
  public int expert(int position, int layer, int j) {
    return Byte.toUnsignedInt(experts[(position * layers + layer) * topK + j]);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof RoutedExperts r && r.layers == layers && r.topK == topK
        && java.util.Arrays.equals(r.experts, experts);
  }

  @Override
  public int hashCode() {
    return 31 * (31 * layers + topK) + java.util.Arrays.hashCode(experts);
  }

  @Override
  public String toString() {
    return "RoutedExperts{" + positions() + " positions x " + layers + " layers x top-" + topK + "}";
  }
}
