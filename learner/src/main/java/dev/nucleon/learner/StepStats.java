package dev.nucleon.learner;

/**
 * What one training step (one batch, one or more optimizer steps) did, for logs and metrics.
 *
 * @param step optimizer steps taken so far (after this one)
 * @param version the policy version the step produced
 * @param loss the batch loss (sum over micro-batches; with several updates per batch, the mean of theirs)
 * @param sequences sequences trained on
 * @param tokens completion tokens trained on
 * @param clipFraction fraction of tokens whose ratio was clipped on the active side
 * @param ratioMean mean of {@code exp(logp - logp_behaviour)} over tokens; far from 1 on fresh data is a bug signal
 * @param ratioMax largest such ratio
 * @param kl mean KL estimate per token (0 without a reference model)
 * @param entropy mean entropy of the policy's next-token distribution per token, in nats
 * @param tisCappedFraction fraction of tokens whose TIS weight hit the cap
 * @param gradNorm global gradient norm before clipping (the largest of the step's updates)
 * @param lr learning rate used
 * @param skipped true when an update of the step was not made (a non-finite gradient, or a spike the guard was
 *     told to skip)
 * @param seconds wall time of the step
 * @param maxParamGradNorm the largest gradient norm of a single parameter (before clipping; of the update with
 *     the largest global norm)
 * @param maxParamGradName that parameter's name
 * @param gradSpike the gradient norm exceeded the spike factor times the recent median ({@link GradSpikeGuard})
 * @param gradNormMedian the median of recent gradient norms it was compared with (NaN before enough history)
 * @param logProbGap behaviour against learner log-probs on the tokens the learner's current weights sampled
 * @param routing a mixture-of-experts policy's router statistics ({@link Routing#NONE} for a dense one)
 */
public record StepStats(long step, int version, double loss, int sequences, long tokens, double clipFraction,
    double ratioMean, double ratioMax, double kl, double entropy, double tisCappedFraction, double gradNorm,
    double lr, boolean skipped, double seconds, double maxParamGradNorm, String maxParamGradName, boolean gradSpike,
    double gradNormMedian, LogProbGap logProbGap, Routing routing) {

  /**
   * What the routers of a mixture-of-experts policy did in a step.
   *
   * @param compared (token, sparse layer) pairs that had a choice recorded by the rollout
   * @param disagreement the share of those where the learner's routers chose another set of experts than the
   *     rollout (with routing replay on, the choice replayed instead); NaN when nothing was compared
   * @param loadImbalance the most tokens any expert got over the mean per expert, in the layer where that is
   *     largest (1 = perfectly balanced), over the batch's first pass
   * @param auxLoss the load-balancing loss (mean over the step's updates; NaN when it is off)
   */
  public record Routing(long compared, double disagreement, double loadImbalance, double auxLoss) {
    public static final Routing NONE = new Routing(0, Double.NaN, 0, Double.NaN);
  }
}
