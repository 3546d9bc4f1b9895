package dev.nucleon.learner;

/**
 * AdamW and its schedule (config {@code nucleon.learner.optimizer} and {@code nucleon.learner.schedule}).
 *
 * @param lr peak learning rate
 * @param beta1 first-moment decay
 * @param beta2 second-moment decay
 * @param eps added to the second-moment root
 * @param weightDecay decoupled weight decay (multiplies the parameter by {@code 1 - lr * wd} each step)
 * @param clipNorm clip gradients to this global L2 norm; 0 turns clipping off
 * @param schedule the learning-rate schedule
 */
public record OptimizerSettings(double lr, double beta1, double beta2, double eps, double weightDecay,
    double clipNorm, LrSchedule schedule) {

  public OptimizerSettings {
    if (!(lr > 0)) {
      throw new IllegalArgumentException("lr must be > 0, got " + lr);
    }
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
      throw new IllegalArgumentException("betas must be in [0, 1), got " + beta1 + ", " + beta2);
    }
    if (!(eps > 0)) {
      throw new IllegalArgumentException("eps must be > 0, got " + eps);
    }
    if (!(weightDecay >= 0)) {
      throw new IllegalArgumentException("weight-decay must be >= 0, got " + weightDecay);
    }
    if (!(clipNorm >= 0)) {
      throw new IllegalArgumentException("clip-norm must be >= 0 (0 = off), got " + clipNorm);
    }
  }

  /** AdamW with the given peak rate, betas (0.9, 0.99), eps 1e-8, no weight decay, clip-norm 1, constant rate. */
  public static OptimizerSettings adamw(double lr) {
    return new OptimizerSettings(lr, 0.9, 0.99, 1e-8, 0, 1.0, LrSchedule.constant(0));
  }
}
