package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import dev.nucleon.model.Engines;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The loss on hand-made log-probs: which tokens get gradient, and how much. */
class PolicyLossTest {

  @BeforeAll
  static void engine() {
    Engines.start();
  }

  /** Gradient of the loss w.r.t. each log-prob, for one row of tokens. */
  static float[] grad(LossSettings s, float[] logp, float[] behaviour, float adv, float[] ref, double normalizer) {
    return grad(s, logp, behaviour, adv, ref, null, normalizer);
  }

  /** As above, with TIS's proximal log-probs given (null: the current ones). */
  static float[] grad(LossSettings s, float[] logp, float[] behaviour, float adv, float[] ref, float[] proximal,
      double normalizer) {
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray lp = m.create(logp, new Shape(1, logp.length));
      lp.setRequiresGradient(true);
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        PolicyLoss.Output out = PolicyLoss.compute(s, new PolicyLoss.Inputs(lp,
            m.create(behaviour, new Shape(1, logp.length)), m.create(new float[] {adv}, new Shape(1, 1)),
            m.ones(new Shape(1, logp.length)), m.create(new float[] {logp.length}, new Shape(1, 1)),
            ref == null ? null : m.create(ref, new Shape(1, logp.length)),
            proximal == null ? null : m.create(proximal, new Shape(1, logp.length))), normalizer);
        gc.backward(out.loss());
      }
      return lp.getGradient().toFloatArray();
    }
  }

  static float[] ratios(float... r) {
    float[] behaviour = new float[r.length];
    for (int i = 0; i < r.length; i++) {
      behaviour[i] = (float) -Math.log(r[i]); // logp = 0, so exp(logp - behaviour) = r
    }
    return behaviour;
  }

  @Test
  void clippedSideGetsNoGradient() {
    LossSettings s = new LossSettings(0.2, 0.28, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0,
        LossSettings.KlEstimator.K3);
    float[] logp = new float[4];
    float[] behaviour = ratios(0.5f, 0.9f, 1.1f, 1.5f);
    // A > 0: only the ratio above 1 + clipHigh (1.5) is clipped; d(-r A / N)/dlogp = -r A / N
    float[] gPos = grad(s, logp, behaviour, 2f, null, 4);
    assertArrayEquals(new float[] {-0.5f * 2 / 4, -0.9f * 2 / 4, -1.1f * 2 / 4, 0f}, gPos, 1e-6f);
    // A < 0: only the ratio below 1 - clipLow (0.5) is clipped
    float[] gNeg = grad(s, logp, behaviour, -1f, null, 4);
    assertArrayEquals(new float[] {0f, 0.9f / 4, 1.1f / 4, 1.5f / 4}, gNeg, 1e-6f);
  }

  @Test
  void truncatedImportanceSamplingCapsTheWeight() {
    LossSettings s = new LossSettings(0.2, 0.2, 2.0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0,
        LossSettings.KlEstimator.K3);
    float[] logp = new float[3];
    // pi / pi_behaviour = 0.5, 1.5, 5: the last weight is capped at 2; the proximal ratio is 1, so no clipping
    float[] g = grad(s, logp, ratios(0.5f, 1.5f, 5f), 1f, null, 3);
    assertArrayEquals(new float[] {-0.5f / 3, -1.5f / 3, -2f / 3}, g, 1e-6f);
  }

  /**
   * A later update of a step: the ratio is taken against the recorded proximal policy (and clipped), the weight is
   * proximal over behaviour (and capped), whatever the current policy's ratio to the behaviour.
   */
  @Test
  void truncatedImportanceSamplingWithARecordedProximalPolicy() {
    LossSettings s = new LossSettings(0.2, 0.2, 2.0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0,
        LossSettings.KlEstimator.K3);
    float[] logp = new float[4];
    float[] r = {0.5f, 1.0f, 1.1f, 1.5f}; // pi / pi_prox
    float[] w = {1.5f, 0.5f, 3f, 1f}; // pi_prox / pi_behaviour, the third capped at 2
    float[] proximal = new float[4];
    float[] behaviour = new float[4];
    for (int i = 0; i < 4; i++) {
      proximal[i] = (float) -Math.log(r[i]);
      behaviour[i] = (float) (proximal[i] - Math.log(w[i]));
    }
    float[] g = grad(s, logp, behaviour, 1f, null, proximal, 4);
    // d(-w r A / N)/dlogp = -w r A / N; the last ratio (1.5 > 1.2, A > 0) is clipped: no gradient
    assertArrayEquals(new float[] {-1.5f * 0.5f / 4, -0.5f * 1f / 4, -2f * 1.1f / 4, 0f}, g, 1e-6f);
  }

  @Test
  void aggregationsUseTheBatchNormalizer() {
    LossSettings tokenMean = LossSettings.defaults();
    float[] logp = {-1f, -2f};
    float[] same = logp.clone();
    // ratio 1, A = 1: loss = -(r1 + r2) / N, gradient -1/N per token
    assertArrayEquals(new float[] {-0.1f, -0.1f}, grad(tokenMean, logp, same, 1f, null, 10), 1e-6f);
    LossSettings seqMean = new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.SEQUENCE_MEAN, 1, 0,
        LossSettings.KlEstimator.K3);
    // divided by the row length (2), then by the number of sequences (normalizer 4)
    assertArrayEquals(new float[] {-0.125f, -0.125f}, grad(seqMean, logp, same, 1f, null, 4), 1e-6f);
    assertEquals(6 * 100.0, PolicyLoss.normalizer(new LossSettings(0.2, 0.2, 0,
        LossSettings.Aggregation.CONSTANT_NORMALIZER, 100, 0, LossSettings.KlEstimator.K3), 37, 6));
    assertEquals(37.0, PolicyLoss.normalizer(tokenMean, 37, 6));
  }

  @Test
  void klEstimatorsHaveTheirTextbookGradients() {
    float[] logp = {-1f, -0.5f};
    float[] ref = {-1.5f, -0.5f};
    // advantage 0 leaves only the KL term. k1 = logp - ref: d/dlogp = coef / N
    LossSettings k1 = new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0.1,
        LossSettings.KlEstimator.K1);
    assertArrayEquals(new float[] {0.05f, 0.05f}, grad(k1, logp, logp.clone(), 0f, ref, 2), 1e-6f);
    // k3 = exp(ref - logp) - (ref - logp) - 1: d/dlogp = coef (1 - exp(ref - logp)) / N
    LossSettings k3 = new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0.1,
        LossSettings.KlEstimator.K3);
    float want = (float) (0.1 * (1 - Math.exp(-0.5)) / 2);
    assertArrayEquals(new float[] {want, 0f}, grad(k3, logp, logp.clone(), 0f, ref, 2), 1e-6f);
  }
}
