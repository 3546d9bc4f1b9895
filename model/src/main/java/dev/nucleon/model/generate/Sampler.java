package dev.nucleon.model.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Draws one token from a row of log-probs with temperature already applied, with optional top-k and top-p
 * truncation, and reports the token's log-prob under the (renormalized) distribution it was drawn from.
 *
 * <p>Runs on the host: each request keeps its own random stream, so a request's samples do not depend on the
 * other requests in its batch.
 */
final class Sampler {

  private Sampler() {}

  /** A drawn token and its log-prob under the sampling distribution. */
  record Draw(int token, float logProb) {}

  /**
   * @param logProbs log-softmax of logits / temperature, one row ({@code offset .. offset + vocab})
   */
  static Draw sample(float[] logProbs, int offset, int vocab, SamplingParams p, SplittableRandom rng) {
    if (p.isUntruncated()) {
      double u = rng.nextDouble();
      double cum = 0;
      int last = -1;
      for (int i = 0; i < vocab; i++) {
        float lp = logProbs[offset + i];
        if (lp == Float.NEGATIVE_INFINITY) {
          continue;
        }
        cum += Math.exp(lp);
        last = i;
        if (u < cum) {
          return new Draw(i, lp);
        }
      }
      // u fell beyond the float-rounded total mass: the last token with mass takes it
      return new Draw(last, logProbs[offset + last]);
    }
    boolean[] keep = truncate(logProbs, offset, vocab, p);
    double mass = 0;
    for (int i = 0; i < vocab; i++) {
      if (keep[i]) {
        mass += Math.exp(logProbs[offset + i]);
      }
    }
    double logMass = Math.log(mass);
    double u = rng.nextDouble() * mass;
    double cum = 0;
    int last = -1;
    for (int i = 0; i < vocab; i++) {
      if (keep[i]) {
        cum += Math.exp(logProbs[offset + i]);
        last = i;
        if (u < cum) {
          return new Draw(i, (float) (logProbs[offset + i] - logMass));
        }
      }
    }
    return new Draw(last, (float) (logProbs[offset + last] - logMass));
  }

  /** The tokens that survive top-k, then top-p (ties at a cut are broken by lower id). */
  static boolean[] truncate(float[] logProbs, int offset, int vocab, SamplingParams p) {
    // order by log-prob descending, then id ascending: encode as sortable longs
    long[] order = new long[vocab];
    for (int i = 0; i < vocab; i++) {
      int bits = Float.floatToIntBits(logProbs[offset + i]);
      int key = bits >= 0 ? bits : bits ^ 0x7fffffff; // monotone int for floats
      order[i] = ((long) ~key << 32) | i; // ~key: descending value; low bits: ascending id
    }
    Arrays.sort(order);
    int k = p.topK() > 0 ? Math.min(p.topK(), vocab) : vocab;
    boolean[] keep = new boolean[vocab];
    double cum = 0;
    for (int r = 0; r < k; r++) {
      int id = (int) order[r];
      keep[id] = true;
      cum += Math.exp(logProbs[offset + id]);
      if (cum >= p.topP()) {
        break;
      }
    }
    return keep;
  }

  /** The most likely token of a row (lowest id on ties). */
  static int argmax(float[] row, int offset, int vocab) {
    int best = 0;
    for (int i = 1; i < vocab; i++) {
      if (row[offset + i] > row[offset + best]) {
        best = i;
      }
    }
    return best;
  }
}
