package dev.nucleon.learner;

import java.util.Locale;

/**
 * The learning-rate multiplier at a step (0-based; the RL learner counts training batches, pretraining counts
 * optimizer steps): linear warmup from {@code 1/warmup} to 1 over
 * {@code warmupSteps}, then constant, or a linear or cosine decay to {@code minRatio} at {@code totalSteps}.
 *
 * @param type constant, linear or cosine
 * @param warmupSteps steps of linear warmup (0 = none)
 * @param totalSteps where linear and cosine reach {@code minRatio} (ignored by constant)
 * @param minRatio the final multiplier of linear and cosine
 */
public record LrSchedule(Type type, int warmupSteps, int totalSteps, double minRatio) {

  /** Shape of the decay after warmup. */
  public enum Type {
    CONSTANT,
    LINEAR,
    COSINE;

    static Type parse(String s) {
      return valueOf(s.trim().toUpperCase(Locale.ROOT));
    }
  }

  public LrSchedule {
    if (warmupSteps < 0) {
      throw new IllegalArgumentException("warmup-steps must be >= 0, got " + warmupSteps);
    }
    if (type != Type.CONSTANT && totalSteps <= warmupSteps) {
      throw new IllegalArgumentException(type.name().toLowerCase(Locale.ROOT)
          + " schedule needs total-steps > warmup-steps, got " + totalSteps + " <= " + warmupSteps);
    }
    if (!(minRatio >= 0 && minRatio <= 1)) {
      throw new IllegalArgumentException("min-lr-ratio must be in [0, 1], got " + minRatio);
    }
  }

  public static LrSchedule constant(int warmupSteps) {
    return new LrSchedule(Type.CONSTANT, warmupSteps, 0, 1);
  }

  /** The multiplier of the peak learning rate at 0-based step {@code step}. */
  public double multiplier(long step) {
    if (step < warmupSteps) {
      return (step + 1) / (double) warmupSteps;
    }
    if (type == Type.CONSTANT) {
      return 1;
    }
    double progress = Math.min(1.0, (step - warmupSteps) / (double) (totalSteps - warmupSteps));
    double shape = type == Type.LINEAR ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
    return minRatio + (1 - minRatio) * shape;
  }
}
