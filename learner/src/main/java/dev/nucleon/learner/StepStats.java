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
 */
public record StepStats(long step, int version, double loss, int sequences, long tokens, double clipFraction,
    double ratioMean, double ratioMax, double kl, double entropy, double tisCappedFraction, double gradNorm,
    double lr, boolean skipped, double seconds, double maxParamGradNorm, String maxParamGradName, boolean gradSpike,
    double gradNormMedian, LogProbGap logProbGap) {}
