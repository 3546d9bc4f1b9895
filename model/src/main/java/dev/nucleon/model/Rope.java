package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.core.Embedding;

/**
 * Rotary position embeddings: pair {@code j} of a head's dimensions turns by angle {@code pos * theta^(-2j/D)}
 * (Llama 3 frequency scaling applied when configured). Which dimensions form pair {@code j} is the family's
 * {@link LlamaConfig.RopeLayout}: {@code (j, j + D/2)} in Hugging Face's "rotate half" layout, {@code (2j, 2j + 1)}
 * in the interleaved one (ERNIE 4.5).
 *
 * <p>{@code rope(x) = x * cos + rotate(x) * sin} where {@code rotate} maps each pair {@code (a, b)} to
 * {@code (-b, a)}. The rotation is applied as {@code x * cos + (x @ R) * sin} with a fixed signed permutation
 * matrix R, which is exact (each output is one input times +-1), costs one matrix product instead of a split, a
 * negation and a concatenation, and serves both layouts: only R and the order of the cos/sin columns differ.
 */
final class Rope {

  private final int headDim;
  private final int maxPositions;
  private final NDArray cos;
  private final NDArray sin;
  private final NDArray rotate;

  /**
   * @param scaled whether the config's rotary scaling applies (false: plain frequencies, for the sliding-window
   *     layers of families that scale only their full-attention layers)
   * @param type the activations' type: the tables are computed in double precision and stored in it, as
   *     transformers casts its float32 cos/sin to the query's type
   */
  Rope(NDManager manager, LlamaConfig config, boolean scaled, ai.djl.ndarray.types.DataType type) {
    headDim = config.ropeDim();
    maxPositions = config.maxPositionEmbeddings();
    double[] invFreq = inverseFrequencies(config, scaled);
    double scale = config.ropeScaling() == null || !scaled ? 1.0 : config.ropeScaling().attentionFactor();
    int half = headDim / 2;
    boolean interleaved = config.ropeLayout() == LlamaConfig.RopeLayout.INTERLEAVED;
    int[] first = new int[half]; // pair j's two dimensions
    int[] second = new int[half];
    for (int j = 0; j < half; j++) {
      first[j] = interleaved ? 2 * j : j;
      second[j] = interleaved ? 2 * j + 1 : j + half;
    }
    float[] c = new float[maxPositions * headDim];
    float[] s = new float[maxPositions * headDim];
    for (int p = 0; p < maxPositions; p++) {
      for (int j = 0; j < half; j++) {
        double angle = p * invFreq[j];
        float cv = (float) (Math.cos(angle) * scale);
        float sv = (float) (Math.sin(angle) * scale);
        int a = first[j];
        int b = second[j];
        c[p * headDim + a] = cv;
        c[p * headDim + b] = cv;
        s[p * headDim + a] = sv;
        s[p * headDim + b] = sv;
      }
    }
    cos = table(manager, c, new Shape(maxPositions, headDim), type);
    sin = table(manager, s, new Shape(maxPositions, headDim), type);
    float[] r = new float[headDim * headDim];
    for (int j = 0; j < half; j++) {
      r[second[j] * headDim + first[j]] = -1f; // out[a] = -x[b]
      r[first[j] * headDim + second[j]] = 1f; // out[b] = x[a]
    }
    rotate = table(manager, r, new Shape(headDim, headDim), type); // entries 0 and +-1: exact in any type
    cos.setName("rope.cos");
    sin.setName("rope.sin");
  }

  private static NDArray table(NDManager manager, float[] values, Shape shape, ai.djl.ndarray.types.DataType type) {
    return Precision.converted(manager.create(values, shape), type, manager);
  }

  static double[] inverseFrequencies(LlamaConfig config, boolean scaled) {
    int half = config.ropeDim() / 2;
    double[] inv = new double[half];
    for (int j = 0; j < half; j++) {
      inv[j] = 1.0 / Math.pow(config.ropeTheta(), (2.0 * j) / config.ropeDim());
    }
    LlamaConfig.RopeScaling sc = scaled ? config.ropeScaling() : null;
    if (sc != null && sc.type().equals("yarn")) {
      yarn(inv, config, sc);
    } else if (sc != null) {
      double lowWavelen = sc.originalMaxPositionEmbeddings() / sc.lowFreqFactor();
      double highWavelen = sc.originalMaxPositionEmbeddings() / sc.highFreqFactor();
      for (int j = 0; j < half; j++) {
        double wavelen = 2 * Math.PI / inv[j];
        if (wavelen > lowWavelen) {
          inv[j] = inv[j] / sc.factor();
        } else if (wavelen >= highWavelen) {
          double smooth = (sc.originalMaxPositionEmbeddings() / wavelen - sc.lowFreqFactor())
              / (sc.highFreqFactor() - sc.lowFreqFactor());
          inv[j] = (1 - smooth) * inv[j] / sc.factor() + smooth * inv[j];
        }
      }
    }
    return inv;
  }

  /**
   * YaRN (transformers' {@code _compute_yarn_parameters}): dimensions that turn fewer than {@code betaSlow} times over
   * the original context are interpolated ({@code / factor}), those that turn more than {@code betaFast} times are
   * kept, with a linear ramp between.
   */
  private static void yarn(double[] inv, LlamaConfig config, LlamaConfig.RopeScaling sc) {
    int dim = config.ropeDim();
    double base = config.ropeTheta();
    double low = correctionDim(sc.betaFast(), dim, base, sc.originalMaxPositionEmbeddings());
    double high = correctionDim(sc.betaSlow(), dim, base, sc.originalMaxPositionEmbeddings());
    if (sc.truncate()) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, dim - 1);
    if (low == high) {
      high += 0.001;
    }
    for (int j = 0; j < inv.length; j++) {
      // float32 like transformers: the frequencies it stores are float32 tensors
      float extrapolation = (float) inv[j];
      float interpolation = (float) (inv[j] / sc.factor());
      float ramp = (float) Math.min(1, Math.max(0, (j - low) / (high - low)));
      float keep = 1 - ramp;
      inv[j] = interpolation * (1 - keep) + extrapolation * keep;
    }
  }

  private static double correctionDim(double rotations, int dim, double base, int maxPositions) {
    return dim * Math.log(maxPositions / (rotations * 2 * Math.PI)) / (2 * Math.log(base));
  }

  /** cos per position and dimension, {@code [maxPositions, D]}. */
  NDArray cosTable() {
    return cos;
  }

  /** sin per position and dimension, {@code [maxPositions, D]}. */
  NDArray sinTable() {
    return sin;
  }

  /** The signed permutation R of {@code x @ R} ({@code [D, D]}). */
  NDArray rotation() {
    return rotate;
  }

  int maxPositions() {
    return maxPositions;
  }

  /**
   * The angles for a batch of positions.
   *
   * @param positions int64 {@code [B, T]}; the results live in its manager
   * @return cos and sin shaped {@code [B, T, 1, D]}, ready to broadcast over {@code [B, T, heads, D]}
   */
  Angles angles(NDArray positions) {
    Shape s = positions.getShape();
    Shape target = new Shape(s.get(0), s.get(1), 1, headDim);
    NDArray c = Embedding.embedding(positions, cos, SparseFormat.DENSE).singletonOrThrow().reshape(target);
    NDArray sn = Embedding.embedding(positions, sin, SparseFormat.DENSE).singletonOrThrow().reshape(target);
    return new Angles(c, sn);
  }

  /** Rotates {@code x [B, T, heads, D]}; the result lives in x's manager. */
  NDArray apply(NDArray x, Angles a) {
    return x.mul(a.cos()).add(x.matMul(rotate).mul(a.sin()));
  }

  record Angles(NDArray cos, NDArray sin) {}
}
