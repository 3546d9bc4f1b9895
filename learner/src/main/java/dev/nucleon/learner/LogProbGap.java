package dev.nucleon.learner;

/**
 * How far the rollout's behaviour log-probs lie from the learner's own log-probs of the same tokens under the same
 * weights: the mismatch between the sampler's and the trainer's numerics (bfloat16 rollout against a float32 or
 * mixed-precision learner, other kernels, other batch shapes), which importance ratios would otherwise read as
 * policy change. Only trajectories sampled wholly by exactly the weights the learner holds when it scores them
 * count: tokens of older versions differ by the policy's own change as well, and so do tokens decoded after an
 * in-flight weight update over keys the older weights computed. With top-k or top-p sampling the behaviour
 * log-probs are renormalized over the kept tokens and the gap measures that too: the learner's actor reports the
 * metric only for untruncated sampling.
 *
 * <p>The anchors' metrics: TRL's {@code sampling_logp_difference} (mean and max of {@code |logp_learner -
 * logp_behaviour|}) and NeMo-RL's {@code token_mult_prob_error} (mean of {@code exp(|logp_learner -
 * logp_behaviour|)}, 1 when they agree).
 *
 * @param tokens tokens compared (0: no token of the step was sampled by the learner's current weights)
 * @param mean mean absolute log-prob difference over them (NaN when none)
 * @param max largest absolute difference (NaN when none)
 * @param multProbError mean of {@code exp(|difference|)} (NaN when none)
 */
public record LogProbGap(long tokens, double mean, double max, double multProbError) {

  public static final LogProbGap NONE = new LogProbGap(0, Double.NaN, Double.NaN, Double.NaN);

  /** Sums over the tokens of one step (or of a benchmark). */
  public static final class Accumulator {
    private long tokens;
    private double sumAbs;
    private double max;
    private double sumExp;

    /** Adds the tokens whose version is {@code version}, comparing learner and behaviour log-probs. */
    public void add(float[] learner, float[] behaviour, int[] versions, int version) {
      for (int i = 0; i < learner.length; i++) {
        if (versions[i] != version) {
          continue;
        }
        double d = Math.abs((double) learner[i] - behaviour[i]);
        tokens++;
        sumAbs += d;
        max = Math.max(max, d);
        sumExp += Math.exp(d);
      }
    }

    public LogProbGap result() {
      return tokens == 0 ? NONE : new LogProbGap(tokens, sumAbs / tokens, max, sumExp / tokens);
    }
  }
}
