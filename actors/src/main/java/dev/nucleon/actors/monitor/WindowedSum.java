package dev.nucleon.actors.monitor;

import java.util.function.LongSupplier;

/**
 * A sum over a sliding time window, kept in fixed time buckets (a ring): {@link #add} puts a value into the bucket of
 * "now"; {@link #sum} adds the buckets still inside the window; {@link #perSecond} divides by the part of the window
 * that has elapsed since start (so a rate is right during the first seconds too). Thread-safe; one lock, no
 * allocation per call.
 */
final class WindowedSum {

  private final LongSupplier clock;
  private final long startNanos;
  private final long bucketNanos;
  private final double[] sums;
  private final long[] ids;

  WindowedSum(LongSupplier clock, long startNanos, long windowNanos, int buckets) {
    if (buckets < 2 || windowNanos < buckets) {
      throw new IllegalArgumentException("window " + windowNanos + " ns in " + buckets + " buckets");
    }
    this.clock = clock;
    this.startNanos = startNanos;
    this.bucketNanos = windowNanos / buckets;
    this.sums = new double[buckets];
    this.ids = new long[buckets];
    java.util.Arrays.fill(ids, -1);
  }

  synchronized void add(double value) {
    long id = bucketId(clock.getAsLong());
    int i = (int) (id % sums.length);
    if (ids[i] != id) {
      ids[i] = id;
      sums[i] = 0;
    }
    sums[i] += value;
  }

  /** The sum of the values added within the window ending now. */
  synchronized double sum() {
    return sumAt(clock.getAsLong());
  }

  private double sumAt(long now) {
    long current = bucketId(now);
    double s = 0;
    for (int i = 0; i < sums.length; i++) {
      if (ids[i] >= 0 && ids[i] > current - sums.length && ids[i] <= current) {
        s += sums[i];
      }
    }
    return s;
  }

  /** The nanoseconds the window currently covers: all of it, or the time since start while that is shorter. */
  long coveredNanos(long now) {
    long sinceStart = Math.max(0, now - startNanos);
    long offsetInBucket = sinceStart % bucketNanos;
    long window = (sums.length - 1) * bucketNanos + offsetInBucket;
    return Math.min(sinceStart, window);
  }

  /** The windowed sum per second of covered time (0 before any time has passed). */
  synchronized double perSecond() {
    long now = clock.getAsLong();
    long covered = coveredNanos(now);
    return covered <= 0 ? 0.0 : sumAt(now) / (covered / 1e9);
  }

  private long bucketId(long now) {
    return Math.max(0, now - startNanos) / bucketNanos;
  }
}
