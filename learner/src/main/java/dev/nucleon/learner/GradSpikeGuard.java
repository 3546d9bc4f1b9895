package dev.nucleon.learner;

import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * Flags optimizer steps whose gradient norm (before clipping) exceeds {@code factor} times the median of the
 * recent steps' norms. Clipping rescales any finite gradient to the clip norm, so a corrupt or pathological
 * gradient would otherwise be applied as an ordinary update and pass unseen; this makes every such step visible
 * (log, metrics, dashboard) and, when asked, keeps it out of the weights.
 *
 * <p>The median is over the last {@code window} finite, positive norms (flagged ones included, so a lasting change
 * of scale stops being flagged after half a window; a zero norm, a batch whose advantages were all 0, says nothing
 * about scale and is left out); no step is judged before {@code minHistory} norms were seen. The history is part
 * of a checkpoint ({@link #history()}, {@link #restore}), so a resumed run judges like an uninterrupted one.
 */
public final class GradSpikeGuard {

  /**
   * @param factor a norm above {@code factor x median} is a spike; 0 turns the guard off
   * @param window how many recent norms the median covers
   * @param skip true: a spike's update is skipped (moments and weights unchanged); false: applied and reported
   */
  public record Settings(double factor, int window, boolean skip) {
    public static final Settings DEFAULT = new Settings(10, 50, false);
    public static final Settings OFF = new Settings(0, 50, false);

    public Settings {
      if (factor != 0 && !(factor > 1)) {
        throw new IllegalArgumentException("grad-spike-factor must be 0 (off) or > 1, got " + factor);
      }
      if (window < 3) {
        throw new IllegalArgumentException("grad-spike-window must be at least 3, got " + window);
      }
    }

    /** Norms needed before the first judgement. */
    int minHistory() {
      return Math.min(window, 10);
    }
  }

  /**
   * The judgement of one step's norm.
   *
   * @param spike the norm exceeded factor x median
   * @param median the median it was compared with (NaN before enough history)
   */
  public record Verdict(boolean spike, double median) {}

  private final Settings settings;
  private final ArrayDeque<Double> recent = new ArrayDeque<>();

  public GradSpikeGuard(Settings settings) {
    this.settings = settings;
  }

  public Settings settings() {
    return settings;
  }

  /** Judges a step's gradient norm against the recent ones, then remembers it (when finite). */
  public Verdict observe(double norm) {
    double median = median();
    boolean spike = settings.factor() > 0 && recent.size() >= settings.minHistory() && Double.isFinite(norm)
        && median > 0 && norm > settings.factor() * median;
    if (Double.isFinite(norm) && norm > 0) {
      recent.addLast(norm);
      if (recent.size() > settings.window()) {
        recent.removeFirst();
      }
    }
    return new Verdict(spike, median);
  }

  /** The remembered norms, oldest first, as text for a checkpoint ({@link Double#toString}, exact). */
  public String history() {
    return String.join(",", recent.stream().map(d -> Double.toString(d)).toList());
  }

  /** Replaces the remembered norms with those {@link #history()} wrote. */
  public void restore(String history) {
    recent.clear();
    if (history.isBlank()) {
      return;
    }
    for (String s : history.split(",")) {
      double d = Double.parseDouble(s);
      if (!(Double.isFinite(d) && d > 0)) {
        throw new IllegalArgumentException("gradient-norm history holds " + s + "; expected positive numbers");
      }
      recent.addLast(d);
      if (recent.size() > settings.window()) {
        recent.removeFirst();
      }
    }
  }

  private double median() {
    if (recent.isEmpty()) {
      return Double.NaN;
    }
    double[] v = recent.stream().mapToDouble(Double::doubleValue).toArray();
    Arrays.sort(v);
    int n = v.length;
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
}
