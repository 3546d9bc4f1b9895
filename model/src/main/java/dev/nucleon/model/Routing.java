package dev.nucleon.model;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * The experts one forward pass sends its tokens to, per sparse layer: what routing replay records where the
 * rollout samples and forces where the learner scores the same tokens (the R3 fix for the router decisions of
 * rollout and training engines that differ for the same token).
 *
 * <p>A forward's tokens are its input rows in {@code [B, T]} order, {@code N = B * T} (a {@link SharedPromptRows}
 * forward: its packed sequence, in order); a layer's choices are
 * {@code N * k} expert ids, token by token (each token's k ids in the router's order, best first). In a given
 * (reference) choice, a token whose first id is negative has none: the router chooses for it.
 *
 * <p>One instance serves one forward pass on one thread; {@link MoeMlp} calls {@link #route} once per sparse layer.
 */
public final class Routing {

  private final Map<Integer, int[]> reference;
  private final boolean force;
  private final Map<Integer, int[]> chosen = new TreeMap<>();
  private final Map<Integer, long[]> expertTokens = new TreeMap<>();
  private long compared;
  private long differing;
  /** Which of the forward's tokens count for the load-balancing loss (null: none is collected). */
  private boolean[] auxTokens;
  private ai.djl.ndarray.NDManager auxOwner;
  private ai.djl.ndarray.NDArray auxProbabilities;
  private long[] auxCounts;
  private int auxLayers;
  private long auxRealTokens;

  private Routing(Map<Integer, int[]> reference, boolean force) {
    this.reference = reference;
    this.force = force;
  }

  /** The router chooses; the choices are recorded ({@link #chosen()}). */
  public static Routing record() {
    return new Routing(Map.of(), false);
  }

  /**
   * The given choices are used where given (the router's own where a token has none); where they differ from
   * what the router would have chosen is counted ({@link #disagreement()}).
   *
   * @param ids per sparse layer, {@code N * k} expert ids
   */
  public static Routing replay(Map<Integer, int[]> ids) {
    return new Routing(new LinkedHashMap<>(ids), true);
  }

  /** The router chooses, and where its choices differ from the given ones is counted. */
  public static Routing compare(Map<Integer, int[]> ids) {
    return new Routing(new LinkedHashMap<>(ids), false);
  }

  /**
   * The ids layer {@code layer} uses, given the router's own choice {@code free} ({@code N * k}, best first); the
   * result is recorded.
   */
  int[] route(int layer, int[] free, int k, int experts) {
    int[] given = reference.get(layer);
    int[] out = free;
    if (given != null) {
      if (given.length != free.length) {
        throw new IllegalArgumentException("routing for layer " + layer + " gives " + given.length / k
            + " tokens' experts, but the forward pass has " + free.length / k + " tokens");
      }
      out = force ? free.clone() : free;
      for (int token = 0; token < free.length / k; token++) {
        int at = token * k;
        if (given[at] < 0) {
          continue;
        }
        compared++;
        if (!sameSet(free, given, at, k)) {
          differing++;
        }
        if (force) {
          for (int j = 0; j < k; j++) {
            int e = given[at + j];
            if (e >= experts) {
              throw new IllegalArgumentException("routing for layer " + layer + " names expert " + e + ", but the "
                  + "layer has " + experts);
            }
            out[at + j] = e;
          }
        }
      }
    }
    if (auxTokens != null && auxTokens.length * k != free.length) {
      throw new IllegalArgumentException("the load-balancing loss counts " + auxTokens.length + " tokens, but the "
          + "forward pass has " + free.length / k);
    }
    // tokens per expert over the real tokens: the counted ones when the loss is collected, else those with a given
    // choice when one was given (padding has none), else all
    long[] counts = expertTokens.computeIfAbsent(layer, l -> new long[experts]);
    for (int token = 0; token < out.length / k; token++) {
      boolean real = auxTokens != null ? auxTokens[token] : given == null || given[token * k] >= 0;
      for (int j = 0; real && j < k; j++) {
        counts[out[token * k + j]]++;
      }
    }
    chosen.put(layer, out);
    return out;
  }

  /**
   * Makes the forward collect what the load-balancing loss needs ({@link #auxLoss()}) over the given tokens (the
   * forward's tokens in order; padding left out).
   *
   * @param owner the manager the loss's arrays live in (the training forward frees each layer's own when the layer
   *     ends)
   */
  public Routing collectingAux(boolean[] tokens, ai.djl.ndarray.NDManager owner) {
    this.auxTokens = tokens.clone();
    this.auxOwner = owner;
    return this;
  }

  /** The tokens the load-balancing loss counts, or null when it is not collected. */
  boolean[] auxTokens() {
    return auxTokens;
  }

  /**
   * One sparse layer's share of the load-balancing loss: the router probabilities summed over the counted tokens
   * ({@code [E]}, differentiable) and how many of those tokens' k choices went to each expert.
   */
  void addAux(ai.djl.ndarray.NDArray probabilitySum, long[] counts, long tokens) {
    probabilitySum.attach(auxOwner);
    auxProbabilities = auxProbabilities == null ? probabilitySum : auxProbabilities.add(probabilitySum);
    if (auxCounts == null) {
      auxCounts = new long[counts.length];
    }
    for (int e = 0; e < counts.length; e++) {
      auxCounts[e] += counts[e];
    }
    auxLayers++;
    auxRealTokens += tokens;
  }

  /**
   * The Switch Transformer's load-balancing loss as transformers' {@code load_balancing_loss_func} computes it over
   * every sparse layer's counted tokens together: {@code E * sum_e f_e * P_e}, where {@code f_e} is the number of
   * choices of expert e per token and {@code P_e} the mean router probability of e (a softmax over every expert's
   * logit); 1 per choice when perfectly balanced ({@code k} in all). One departure: {@code f} counts the experts
   * the forward used (replayed ones, or chosen with a choice bias), where transformers takes the plain softmax's
   * top k again. Differentiable through {@code P}; null when nothing was collected.
   */
  public ai.djl.ndarray.NDArray auxLoss() {
    if (auxProbabilities == null || auxRealTokens == 0) {
      return null;
    }
    int experts = auxCounts.length;
    float[] f = new float[experts];
    for (int e = 0; e < experts; e++) {
      f[e] = (float) auxCounts[e] / auxRealTokens;
    }
    ai.djl.ndarray.NDManager m = auxProbabilities.getManager();
    ai.djl.ndarray.NDArray meanP = Ops.div(auxProbabilities, auxRealTokens);
    return Ops.mul(meanP.mul(Ops.owned(m.create(f))).sum(), experts);
  }

  private static boolean sameSet(int[] a, int[] b, int at, int k) {
    for (int i = at; i < at + k; i++) {
      boolean found = false;
      for (int j = at; j < at + k && !found; j++) {
        found = a[i] == b[j];
      }
      if (!found) {
        return false;
      }
    }
    return true;
  }

  /** The ids every sparse layer used, {@code N * k} per layer, by layer index. */
  public Map<Integer, int[]> chosen() {
    return Collections.unmodifiableMap(chosen);
  }

  /**
   * Tokens sent to each expert, per sparse layer (a token counts once for each of its k experts): the tokens the
   * load-balancing loss counts when it is collected, else those with a given choice when one was given (padding
   * and each row's last token have none), else every token.
   */
  public Map<Integer, long[]> expertTokens() {
    return Collections.unmodifiableMap(expertTokens);
  }

  /** (token, layer) pairs that had a given choice. */
  public long compared() {
    return compared;
  }

  /** Of {@link #compared()}, those where the router's own set of experts differs from the given one. */
  public long differing() {
    return differing;
  }

  /** {@link #differing()} over {@link #compared()}, or 0 when nothing was compared. */
  public double disagreement() {
    return compared == 0 ? 0 : (double) differing / compared;
  }
}
