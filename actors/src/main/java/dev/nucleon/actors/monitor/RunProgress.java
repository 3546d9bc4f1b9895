package dev.nucleon.actors.monitor;

import dev.nucleon.actors.RunReporter;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarStyle;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The run's progress on the console: a progress bar (me.tongfei progressbar: steps, reward, tokens/s, ETA) when the
 * console is a terminal, plain log lines otherwise (no console, {@code CI=true}, output to a file), at most one per
 * {@code nucleon.monitor.progress.log-interval} plus the first and the last step. It is a
 * {@link RunReporter.ProgressListener} (give it to the run reporter), or call {@link #update(long, Map)} after every
 * step and {@link #close()} at the end.
 */
public final class RunProgress implements RunReporter.ProgressListener, AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger("dev.nucleon.run");

  private final String name;
  private final long totalSteps;
  private final long startStep;
  private final ProgressBar bar;
  private final Consumer<String> lines;
  private final long intervalNanos;
  private final LongSupplier clock;
  private final long startNanos;
  private long lastLineNanos = Long.MIN_VALUE;
  private long lastStep;
  private String lastFigures = "";
  private String lastEval = "";
  private boolean closed;

  private RunProgress(String name, long totalSteps, long startStep, ProgressBar bar, Consumer<String> lines,
      Duration interval, LongSupplier clock) {
    this.name = name;
    this.totalSteps = totalSteps;
    this.startStep = startStep;
    this.lastStep = startStep;
    this.bar = bar;
    this.lines = lines;
    this.intervalNanos = interval.toNanos();
    this.clock = clock;
    this.startNanos = clock.getAsLong();
  }

  /**
   * Progress of a run of {@code totalSteps} learner steps, resumed at {@code startStep} (0 for a fresh run), shown as
   * {@code settings.progress()} says ({@code auto}: a bar on a terminal, log lines otherwise; {@code off}: nothing).
   */
  public static RunProgress create(String name, long totalSteps, long startStep, MonitorSettings settings) {
    MonitorSettings.ProgressMode mode = settings.progress();
    if (mode == MonitorSettings.ProgressMode.AUTO) {
      mode = interactive() ? MonitorSettings.ProgressMode.BAR : MonitorSettings.ProgressMode.LOG;
    }
    return switch (mode) {
      case BAR -> withBar(name, totalSteps, startStep, null);
      case LOG -> withLines(name, totalSteps, startStep, settings.progressLogInterval(), LOG::info, System::nanoTime);
      default -> new RunProgress(name, totalSteps, startStep, null, null, Duration.ofDays(1), System::nanoTime);
    };
  }

  /** True when a human watches a terminal: a console is attached and {@code CI} is not set to true. */
  public static boolean interactive() {
    return System.console() != null && !"true".equalsIgnoreCase(System.getenv("CI"));
  }

  /** A progress bar drawn by {@code consumer} (null: the library's console consumer on stderr). */
  static RunProgress withBar(String name, long totalSteps, long startStep, ProgressBarConsumer consumer) {
    ProgressBarBuilder b = new ProgressBarBuilder()
        .setTaskName(name)
        .setInitialMax(Math.max(totalSteps, 0))
        .setStyle(ProgressBarStyle.UNICODE_BLOCK)
        .setUpdateIntervalMillis(250)
        .setUnit(" steps", 1)
        .startsFrom(startStep, Duration.ZERO);
    if (consumer != null) {
      b.setConsumer(consumer);
    }
    return new RunProgress(name, totalSteps, startStep, b.build(), null, Duration.ofDays(1), System::nanoTime);
  }

  /** Plain lines into {@code sink}, at most one per {@code interval} (plus the first and the last step). */
  static RunProgress withLines(String name, long totalSteps, long startStep, Duration interval,
      Consumer<String> sink, LongSupplier clock) {
    return new RunProgress(name, totalSteps, startStep, null, sink, interval, clock);
  }

  @Override
  public void step(int version, int totalSteps, Map<String, Double> stats) {
    update(version, stats);
  }

  /** An evaluation: shown with the bar's figures, and as a line of its own in log mode. */
  @Override
  public synchronized void eval(int version, double accuracy, int n) {
    if (closed) {
      return;
    }
    lastEval = String.format(Locale.ROOT, "eval %.1f%% @%d", 100 * accuracy, version);
    if (bar != null) {
      bar.setExtraMessage(message());
    } else if (lines != null) {
      lines.accept(String.format(Locale.ROOT, "%s eval at step %d: accuracy %.1f%% on %d held-out prompts (greedy)",
          name, version, 100 * accuracy, n));
    }
  }

  private String message() {
    return lastEval.isEmpty() ? lastFigures : lastFigures.isEmpty() ? lastEval : lastFigures + " | " + lastEval;
  }

  /** After step {@code step}: the bar moves / a line is logged, with reward and tokens/s. */
  public void update(long step, double rewardMean, double tokensPerSecond) {
    update(step, Map.of("reward_mean", rewardMean, "tokens_per_s", tokensPerSecond));
  }

  /**
   * After step {@code step}, with the step's figures (any of reward_mean, accuracy, eval_accuracy, tokens_per_s (or
   * rollout_tokens_per_s, else learner_tokens_per_s), staleness_max are shown when present; others are ignored).
   */
  public synchronized void update(long step, Map<String, ? extends Number> figures) {
    if (closed) {
      return;
    }
    lastStep = step;
    lastFigures = figures(figures);
    if (bar != null) {
      bar.stepTo(Math.min(step, Math.max(totalSteps, step)));
      bar.setExtraMessage(message());
    } else if (lines != null) {
      long now = clock.getAsLong();
      boolean first = lastLineNanos == Long.MIN_VALUE;
      boolean last = totalSteps > 0 && step >= totalSteps;
      if (first || last || now - lastLineNanos >= intervalNanos) {
        lastLineNanos = now;
        lines.accept(line(step, now));
      }
    }
  }

  /** The log line for {@code step} now (also used for the final line). */
  String line(long step, long now) {
    StringBuilder sb = new StringBuilder(name).append(" step ").append(step);
    if (totalSteps > 0) {
      sb.append('/').append(totalSteps)
          .append(String.format(Locale.ROOT, " (%d%%)", Math.round(100.0 * step / totalSteps)));
    }
    if (!message().isEmpty()) {
      sb.append(" | ").append(message());
    }
    double elapsed = (now - startNanos) / 1e9;
    sb.append(" | elapsed ").append(duration(elapsed));
    long done = step - startStep;
    if (totalSteps > step && done > 0) {
      sb.append(" | ETA ").append(duration(elapsed / done * (totalSteps - step)));
    }
    return sb.toString();
  }

  static String figures(Map<String, ? extends Number> f) {
    StringBuilder sb = new StringBuilder();
    append(sb, f, "reward_mean", "reward %.3f");
    append(sb, f, "accuracy", "acc %.3f");
    append(sb, f, "eval_accuracy", "eval %.3f");
    String tokens = f.containsKey("tokens_per_s") ? "tokens_per_s"
        : f.containsKey("rollout_tokens_per_s") ? "rollout_tokens_per_s" : "learner_tokens_per_s";
    append(sb, f, tokens, "%,.0f tok/s");
    append(sb, f, "staleness_max", "stale %.0f");
    return sb.toString();
  }

  private static void append(StringBuilder sb, Map<String, ? extends Number> f, String key, String format) {
    Number v = f.get(key);
    if (v != null && Double.isFinite(v.doubleValue())) {
      if (sb.length() > 0) {
        sb.append(" | ");
      }
      sb.append(String.format(Locale.ROOT, format, v.doubleValue()));
    }
  }

  static String duration(double seconds) {
    long s = Math.round(seconds);
    long h = s / 3600;
    long m = (s % 3600) / 60;
    long sec = s % 60;
    return h > 0 ? String.format(Locale.ROOT, "%dh%02dm%02ds", h, m, sec)
        : m > 0 ? String.format(Locale.ROOT, "%dm%02ds", m, sec) : sec + "s";
  }

  /** Ends the bar (or logs the last line when it was not logged yet). */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (bar != null) {
      bar.close();
    } else if (lines != null && lastLineNanos != Long.MIN_VALUE) {
      long now = clock.getAsLong();
      if (now != lastLineNanos) {
        lines.accept(line(lastStep, now));
      }
    }
  }
}
