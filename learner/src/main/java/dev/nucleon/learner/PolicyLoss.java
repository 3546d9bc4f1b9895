package dev.nucleon.learner;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import dev.nucleon.model.Ops;

/**
 * The policy-gradient loss over one micro-batch, as a function of NDArrays so every variant can be tested on
 * hand-made inputs.
 *
 * <p>Per completion token, with advantage A of its sequence:
 * <ol>
 *   <li>Without TIS: {@code r = exp(logp - logp_behaviour)}. With TIS: {@code r = exp(logp - logp_prox)} where the
 *       proximal log-prob is that of the policy at the start of the training step ({@code logp} itself, detached,
 *       for the step's first update; recorded before it for later ones), and the token is weighted by
 *       {@code w = min(exp(logp_prox - logp_behaviour), tisCap)}, also detached.</li>
 *   <li>{@code obj = w * min(r * A, clip(r, 1 - clipLow, 1 + clipHigh) * A)}; the token loss is {@code -obj}.
 *       Tokens whose ratio left the clip range on the side that would increase the objective get no gradient.</li>
 *   <li>With a KL coefficient: {@code + klCoef * kl}, where {@code kl} is k1 {@code logp - logp_ref} or k3
 *       {@code exp(logp_ref - logp) - (logp_ref - logp) - 1}.</li>
 *   <li>Masked to completion tokens and aggregated with a normalizer computed over the whole minibatch (not
 *       the micro-batch), so accumulating micro-batches gives the gradient of one large batch: token-mean divides
 *       the sum by the batch's completion tokens; sequence-mean first divides each sequence's sum by its length,
 *       then by the number of sequences; constant-normalizer divides the sum by sequences times a constant.</li>
 * </ol>
 */
public final class PolicyLoss {

  private PolicyLoss() {}

  /**
   * One micro-batch of inputs. The learner passes one entry per completion token ({@code [N]}, flattened over the
   * batch); any layout works where the arrays have one shape, or broadcast to it (advantages and lengths
   * {@code [B, 1]} against {@code [B, T]}).
   *
   * @param logp log-probs under the current policy (with gradient)
   * @param behaviourLogp log-probs under the policy that sampled the tokens
   * @param advantages the advantage of each token's sequence
   * @param mask 1 on completion tokens, 0 elsewhere
   * @param lengths completion length of each sequence (at least 1), for sequence-mean
   * @param referenceLogp log-probs under the frozen reference model, or null when there is no KL term
   * @param proximalLogp TIS's proximal log-probs (the policy at the start of the step), or null when that policy is
   *     the current one ({@code logp} detached; always so with one update per batch)
   */
  public record Inputs(NDArray logp, NDArray behaviourLogp, NDArray advantages, NDArray mask, NDArray lengths,
      NDArray referenceLogp, NDArray proximalLogp) {

    /** Inputs whose proximal policy is the current one. */
    public Inputs(NDArray logp, NDArray behaviourLogp, NDArray advantages, NDArray mask, NDArray lengths,
        NDArray referenceLogp) {
      this(logp, behaviourLogp, advantages, mask, lengths, referenceLogp, null);
    }
  }

  /**
   * The loss and sums for statistics (sums, so micro-batches add up).
   *
   * @param loss scalar, differentiable
   * @param tokens completion tokens in this micro-batch
   * @param clippedTokens tokens whose ratio was clipped on the active side
   * @param ratioSum sum of {@code exp(logp - logp_behaviour)} over tokens (mean is the off-policy signal)
   * @param ratioMax largest such ratio
   * @param klSum sum of the KL estimate over tokens (0 without a reference)
   * @param tisCappedTokens tokens whose TIS weight hit the cap
   */
  public record Output(NDArray loss, double tokens, double clippedTokens, double ratioSum, double ratioMax,
      double klSum, double tisCappedTokens) {}

  /** {@code clamp(a - b, -20, 20)} on completion tokens, 0 elsewhere (selected, so -inf or NaN there never leaks). */
  private static NDArray logRatio(NDArray a, NDArray b, NDArray mask) {
    NDArray d = a.sub(b);
    return ai.djl.ndarray.NDArrays.where(mask.gt(0f), d, d.zerosLike()).clip(-MAX_LOG_RATIO, MAX_LOG_RATIO);
  }

  /** The batch-wide normalizer of an aggregation. */
  public static double normalizer(LossSettings s, long completionTokens, int sequences) {
    return switch (s.aggregation()) {
      case TOKEN_MEAN -> Math.max(1, completionTokens);
      case SEQUENCE_MEAN -> Math.max(1, sequences);
      case CONSTANT_NORMALIZER -> sequences * s.normalizerConstant();
    };
  }

  /** Log-ratios are clamped to this magnitude before exp, so no ratio overflows (its gradient is then 0). */
  static final float MAX_LOG_RATIO = 20f;

  public static Output compute(LossSettings s, Inputs in, double normalizer) {
    NDArray logp = in.logp();
    NDArray adv = in.advantages();
    NDArray mask = in.mask();
    // masked positions (prompt, padding) get log-ratio 0: whatever the model gives there can never reach the
    // gradient as inf * 0 = NaN
    NDArray behaviourRatio = logRatio(logp.stopGradient(), in.behaviourLogp(), mask).exp();
    NDArray ratio;
    NDArray weight = null;
    double tisCapped = 0;
    if (s.tisCap() > 0) {
      NDArray prox = in.proximalLogp() == null ? logp.stopGradient() : in.proximalLogp();
      NDArray proxRatio = in.proximalLogp() == null ? behaviourRatio
          : logRatio(prox, in.behaviourLogp(), mask).exp();
      ratio = logRatio(logp, prox, mask).exp();
      weight = Ops.minimum(proxRatio, s.tisCap());
      tisCapped = proxRatio.gte(s.tisCap()).toType(DataType.FLOAT32, false).mul(mask).sum().getFloat();
    } else {
      ratio = logRatio(logp, in.behaviourLogp(), mask).exp();
    }
    float low = (float) (1 - s.clipLow());
    float high = (float) (1 + s.clipHigh());
    NDArray objective = ratio.mul(adv).minimum(ratio.clip(low, high).mul(adv));
    if (weight != null) {
      objective = objective.mul(weight);
    }
    NDArray tokenLoss = objective.neg();
    double klSum = 0;
    if (s.klCoef() > 0) {
      if (in.referenceLogp() == null) {
        throw new IllegalArgumentException("kl-coef > 0 needs reference log-probs");
      }
      NDArray kl = switch (s.klEstimator()) {
        case K1 -> logRatio(logp, in.referenceLogp(), mask);
        case K3 -> {
          NDArray d = logRatio(in.referenceLogp(), logp, mask);
          yield Ops.sub(d.exp().sub(d), 1);
        }
      };
      klSum = kl.stopGradient().mul(mask).sum().getFloat();
      tokenLoss = tokenLoss.add(Ops.mul(kl, s.klCoef()));
    }
    NDArray masked = tokenLoss.mul(mask);
    if (s.aggregation() == LossSettings.Aggregation.SEQUENCE_MEAN) {
      masked = masked.div(in.lengths());
    }
    NDArray loss = Ops.div(masked.sum(), normalizer);

    NDArray r = ratio.stopGradient();
    NDArray clippedHigh = r.gt(high).logicalAnd(adv.gt(0f));
    NDArray clippedLow = r.lt(low).logicalAnd(adv.lt(0f));
    double clipped = clippedHigh.logicalOr(clippedLow).toType(DataType.FLOAT32, false).mul(mask).sum().getFloat();
    NDArray br = behaviourRatio.mul(mask);  // masked positions have ratio 1: zero them for the sums
    return new Output(loss, mask.sum().getFloat(), clipped, br.sum().getFloat(), br.max().getFloat(), klSum,
        tisCapped);
  }
}
