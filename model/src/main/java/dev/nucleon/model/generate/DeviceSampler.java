package dev.nucleon.model.generate;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.nucleon.model.Ops;

/**
 * Draws the next token of every row of a batch where the logits are (CPU or GPU), so that only the drawn ids and two
 * log-probs per row come back to the host instead of the whole {@code [batch, vocab]} distribution.
 *
 * <p>Inverse-CDF sampling: each request brings one uniform number from its own seeded stream, so its draw does not
 * depend on the other rows of its batch. Temperature divides the logits per row; top-k and top-p (per row) sort each
 * row on the device and keep the prefix whose mass before a token is below top-p, renormalized. Greedy rows take the
 * argmax of the raw logits (lowest id on ties). For every row the log-prob of the drawn token comes back twice: under
 * the distribution it was drawn from (the behaviour log-prob) and under the model at temperature 1.
 */
final class DeviceSampler {

  private DeviceSampler() {}

  /** The drawn tokens and their log-probs (sampling distribution; model at temperature 1). */
  record Drawn(long[] tokens, float[] samplingLogProbs, float[] modelLogProbs) {}

  /**
   * @param logits {@code [b, vocab]} float32
   * @param params each row's sampling settings
   * @param uniforms each row's draw in [0, 1) (ignored for greedy rows)
   */
  static Drawn draw(NDArray logits, SamplingParams[] params, float[] uniforms) {
    NDManager m = logits.getManager();
    int b = params.length;
    long vocab = logits.getShape().get(1);
    NDArray raw = logits.logSoftmax(1);
    boolean anyGreedy = false;
    boolean anySampled = false;
    boolean anyTruncated = false;
    boolean unitTemperature = true;
    float[] inverseTemperature = new float[b];
    float[] topK = new float[b];
    float[] topP = new float[b];
    boolean[] greedy = new boolean[b];
    for (int i = 0; i < b; i++) {
      SamplingParams p = params[i];
      float t = p.temperature();
      inverseTemperature[i] = t == 0f ? 1f : 1f / t;
      unitTemperature &= t == 0f || t == 1f;
      topK[i] = p.topK() > 0 ? p.topK() : vocab;
      // top-p 1 keeps every token (the float sum of a row's mass may reach 1 before its tail)
      topP[i] = p.topP() >= 1f ? Float.POSITIVE_INFINITY : p.topP();
      if (p.isGreedy()) {
        anyGreedy = true;
        greedy[i] = true;
      } else {
        anySampled = true;
        anyTruncated |= !p.isUntruncated();
      }
    }
    NDArray token = null;
    NDArray sampling = null;
    if (anySampled) {
      NDArray tempered = unitTemperature ? raw
          : logits.mul(m.create(inverseTemperature, new Shape(b, 1))).logSoftmax(1);
      NDArray u = m.create(uniforms, new Shape(b, 1));
      if (!anyTruncated) {
        NDArray cdf = tempered.exp().cumSum(1);
        // scaled by each row's rounded total, so the draw always lands on a token with mass
        NDArray target = u.mul(Ops.slice(cdf, 1, vocab - 1, vocab, m));
        // counted over the first vocab - 1 columns: at most the last id
        token = Ops.slice(cdf, 1, 0, vocab - 1, m).lt(target).sum(new int[] {1}, true);
        sampling = tempered.gather(token, 1);
      } else {
        NDArray order = tempered.argSort(1, false);
        NDArray sorted = tempered.gather(order, 1);
        NDArray probs = sorted.exp();
        NDArray before = probs.cumSum(1).sub(probs);
        NDArray rank = m.arange(0f, (float) vocab).reshape(1, vocab);
        NDArray keep = rank.lt(m.create(topK, new Shape(b, 1)))
            .logicalAnd(before.lt(m.create(topP, new Shape(b, 1))));
        NDArray keptCdf = probs.mul(keep.toType(DataType.FLOAT32, false)).cumSum(1);
        NDArray mass = Ops.slice(keptCdf, 1, vocab - 1, vocab, m);
        NDArray position = Ops.slice(keptCdf, 1, 0, vocab - 1, m).lt(u.mul(mass)).sum(new int[] {1}, true);
        token = order.gather(position, 1);
        sampling = sorted.gather(position, 1).sub(mass.log());
      }
    }
    if (anyGreedy) {
      NDArray best = raw.argMax(1).reshape(b, 1);
      token = token == null ? best : NDArrays.where(m.create(greedy, new Shape(b, 1)), best, token);
    }
    NDArray model = raw.gather(token, 1);
    float[] samplingLogProbs = sampling == null ? new float[b] : sampling.toFloatArray();
    float[] modelLogProbs = model.toFloatArray();
    long[] tokens = token.toLongArray();
    for (int i = 0; i < b; i++) {
      if (greedy[i]) {
        samplingLogProbs[i] = 0f;
      }
    }
    return new Drawn(tokens, samplingLogProbs, modelLogProbs);
  }
}
