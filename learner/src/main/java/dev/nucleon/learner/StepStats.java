package dev.nucleon.learner;

/**
 * What one optimizer step did, for logs and metrics.
 *
 * @param step optimizer steps taken so far (after this one)
 * @param version the policy version the step produced
 * @param loss the batch loss (sum over micro-batches)
 * @param sequences sequences trained on
 * @param tokens completion tokens trained on
 * @param clipFraction fraction of tokens whose ratio was clipped on the active side
 * @param ratioMean mean of {@code exp(logp - logp_behaviour)} over tokens; far from 1 on fresh data is a bug signal
 * @param ratioMax largest such ratio
 * @param kl mean KL estimate per token (0 without a reference model)
 * @param entropy mean entropy of the policy's next-token distribution per token, in nats
 * @param tisCappedFraction fraction of tokens whose TIS weight hit the cap
 * @param gradNorm global gradient norm before clipping
 * @param lr learning rate used
 * @param skipped true when the gradient was not finite and no update was made
 * @param seconds wall time of the step
 */
public record StepStats(long step, int version, double loss, int sequences, long tokens, double clipFraction,
    double ratioMean, double ratioMax, double kl, double entropy, double tisCappedFraction, double gradNorm,
    double lr, boolean skipped, double seconds) {}
