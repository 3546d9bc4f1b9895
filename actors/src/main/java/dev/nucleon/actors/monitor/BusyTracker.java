package dev.nucleon.actors.monitor;

import java.util.function.LongSupplier;

/**
 * Busy time of one actor: the fraction of wall time it spent working, over a sliding window and since start. The
 * actor calls {@link #begin()} / {@link #end()} around its work (a learner step, a decode batch, a scoring call) or
 * {@link #record(long)} with nanoseconds it measured itself. An interval still open counts up to now, so a long
 * learner step shows as busy while it runs. Safe to read from another thread (the metrics scrape).
 */
public final class BusyTracker {

  private final String role;
  private final String actor;
  private final LongSupplier clock;
  private final long startNanos;
  private final WindowedSum window;
  private long openSince = -1;
  private long totalBusyNanos;

  BusyTracker(String role, String actor, LongSupplier clock, long windowNanos) {
    this.role = role;
    this.actor = actor;
    this.clock = clock;
    this.startNanos = clock.getAsLong();
    this.window = new WindowedSum(clock, startNanos, windowNanos, 30);
  }

  public String role() {
    return role;
  }

  public String actor() {
    return actor;
  }

  /** Marks the start of busy time; a second begin() without end() keeps the first start. */
  public synchronized void begin() {
    if (openSince < 0) {
      openSince = clock.getAsLong();
    }
  }

  /** Marks the end of busy time started by {@link #begin()}; without an open interval it does nothing. */
  public synchronized void end() {
    if (openSince >= 0) {
      long busy = clock.getAsLong() - openSince;
      openSince = -1;
      add(busy);
    }
  }

  /** Adds busy time the caller measured itself. */
  public synchronized void record(long nanosBusy) {
    if (nanosBusy > 0) {
      add(nanosBusy);
    }
  }

  /** Runs {@code work} as busy time. */
  public void time(Runnable work) {
    begin();
    try {
      work.run();
    } finally {
      end();
    }
  }

  private void add(long nanos) {
    totalBusyNanos += nanos;
    window.add(nanos);
  }

  /** Busy time over wall time in the sliding window (0..1), counting an open interval up to now. */
  public synchronized double ratio() {
    long now = clock.getAsLong();
    long covered = window.coveredNanos(now);
    if (covered <= 0) {
      return openSince >= 0 ? 1.0 : 0.0;
    }
    double busy = window.sum();
    if (openSince >= 0) {
      busy += Math.min(now - openSince, covered);
    }
    return clamp(busy / covered);
  }

  /** Busy time over wall time since this tracker was made (0..1), counting an open interval up to now. */
  public synchronized double ratioSinceStart() {
    long now = clock.getAsLong();
    long wall = now - startNanos;
    if (wall <= 0) {
      return 0.0;
    }
    double busy = totalBusyNanos + (openSince >= 0 ? now - openSince : 0);
    return clamp(busy / wall);
  }

  /** Total busy seconds recorded (closed intervals only). */
  public synchronized double busySeconds() {
    return totalBusyNanos / 1e9;
  }

  private static double clamp(double r) {
    return Math.max(0.0, Math.min(1.0, r));
  }
}
