package dev.nucleon.rollout.data;

import java.util.Random;

/**
 * Seeded permutations. {@link java.util.Random} is used because its algorithm is fixed by its specification, so an
 * order is the same on every JVM; the seed is first mixed (SplitMix64) so that neighbouring seeds and epochs give
 * unrelated orders.
 */
final class Shuffle {

  /** The stream of held-out samples, apart from the epoch streams 0, 1, 2, ... */
  static final long HOLD_OUT = -1;

  private Shuffle() {}

  /** A permutation of 0..n-1 drawn from {@code seed} and {@code stream} (e.g. the epoch). */
  static int[] permutation(int n, long seed, long stream) {
    int[] p = new int[n];
    for (int i = 0; i < n; i++) {
      p[i] = i;
    }
    Random random = new Random(mix(mix(seed) ^ (stream * 0x9E3779B97F4A7C15L)));
    for (int i = n - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** SplitMix64's finalizer. */
  static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
