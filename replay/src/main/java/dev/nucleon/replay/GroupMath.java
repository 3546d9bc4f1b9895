package dev.nucleon.replay;

/** Small numerical helpers shared by the estimators and the batch statistics. */
final class GroupMath {
  private GroupMath() {}

  static double mean(double[] x) {
    double s = 0;
    for (double v : x) {
      s += v;
    }
    return x.length == 0 ? Double.NaN : s / x.length;
  }

  /** Population standard deviation (divides by n, not n - 1), two-pass. 0 for n = 1. */
  static double populationStd(double[] x, double mean) {
    double s = 0;
    for (double v : x) {
      double d = v - mean;
      s += d * d;
    }
    return x.length == 0 ? Double.NaN : Math.sqrt(s / x.length);
  }

  /** Whether every value is equal (true for zero or one value). */
  static boolean allEqual(double[] x) {
    for (int i = 1; i < x.length; i++) {
      if (x[i] != x[0]) {
        return false;
      }
    }
    return true;
  }

  static void requireNonEmptyFinite(double[] rewards) {
    if (rewards.length == 0) {
      throw new IllegalArgumentException("a group needs at least one reward");
    }
    for (double r : rewards) {
      if (!Double.isFinite(r)) {
        throw new IllegalArgumentException("rewards must be finite, got " + r);
      }
    }
  }
}
