package dev.nucleon.actors.run;

import dev.nucleon.actors.RunReporter;
import java.io.PrintStream;
import java.util.Map;

/** Progress as plain lines: one per {@code every} steps and one per evaluation. */
public final class ConsoleProgress implements RunReporter.ProgressListener {

  private final PrintStream out;
  private final int every;
  private final long start = System.nanoTime();

  public ConsoleProgress(PrintStream out, int every) {
    this.out = out;
    this.every = every;
  }

  @Override
  public void step(int version, int totalSteps, Map<String, Double> stats) {
    if (version % every != 0 && version != totalSteps) {
      return;
    }
    double elapsed = (System.nanoTime() - start) / 1e9;
    double eta = version == 0 ? 0 : elapsed / version * (totalSteps - version);
    out.printf("step %d/%d  reward %.3f  loss %.4f  kl %.4f  clip %.3f  entropy %.3f  learner %.0f tok/s  "
            + "elapsed %.0fs  eta %.0fs%n", version, totalSteps, stats.getOrDefault("reward_mean", Double.NaN),
        stats.getOrDefault("loss", Double.NaN), stats.getOrDefault("kl", 0.0),
        stats.getOrDefault("clip_fraction", 0.0), stats.getOrDefault("entropy", Double.NaN),
        stats.getOrDefault("learner_tokens_per_s", 0.0), elapsed, eta);
  }

  @Override
  public void eval(int version, double accuracy, int n) {
    out.printf("eval at step %d: accuracy %.1f%% on %d held-out prompts (greedy)%n", version, 100 * accuracy, n);
  }

  @Override
  public void close() {
    out.flush();
  }
}
