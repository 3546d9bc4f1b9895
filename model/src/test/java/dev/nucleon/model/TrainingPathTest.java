package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * With autograd on, the decoder takes its training path (one product per q/k/v and gate/up part, each layer's
 * temporaries freed when the layer ends, the output head only at the scored positions); without, the decoding path
 * (fused products). Both compute the same distributions, and the training path's handles can all be closed early
 * without breaking backward.
 */
class TrainingPathTest {

  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "llamaTied", "qwen3Like", "olmo2Like", "ernieBiased", "olmo3Like",
      "qwen3MoeLike", "ernieMoeLike", "deepseekLike"})
  void trainingAndDecodingPathsGiveTheSameLogProbs(String shape) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    int b = 3;
    int t = 9;
    float temperature = 0.7f;
    SplittableRandom rng = new SplittableRandom(5);
    long[] seq = new long[b * t];
    for (int i = 0; i < seq.length; i++) {
      seq[i] = rng.nextInt(c.vocabSize());
    }
    // positions b * T + t with t < T - 1 (each predicts a next token), in a scrambled order
    long[] positions = {0, 5, 9, 16, 3, 12, 25, 20, 1};
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 11)) {
      NDArray tokens = m.create(seq, new Shape(b, t));
      JniUtils.setGradMode(false);
      float[] decoding = LlamaModel.shiftedLogSoftmax(model.logits(tokens), m, temperature).toFloatArray();

      model.setTrainable(true);
      JniUtils.setGradMode(true);
      float[] training;
      try (NDManager step = m.newSubManager();
          GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray tok = step.create(seq, new Shape(b, t));
        NDArray ls = model.logSoftmaxAt(tok, step.create(positions), temperature);
        training = ls.toFloatArray();
        gc.backward(ls.max(new int[] {1}).sum());
      }
      String projection = c.latent() == null ? "model.layers.0.self_attn.qkv_proj.weight"
          : "model.layers.0.self_attn.kv_a_proj_with_mqa.weight";
      float[] grad = model.namedParameters().get(projection).getArray().getGradient().toFloatArray();
      int v = c.vocabSize();
      assertEquals(positions.length * v, training.length);
      double maxErr = 0;
      for (int i = 0; i < positions.length; i++) {
        int row = (int) (positions[i] / t);
        int col = (int) (positions[i] % t);
        for (int k = 0; k < v; k++) {
          maxErr = Math.max(maxErr, Math.abs(training[i * v + k] - decoding[(row * (t - 1) + col) * v + k]));
        }
      }
      assertTrue(maxErr < 1e-5, "training path differs from decoding path by " + maxErr);
      double g = 0;
      for (float x : grad) {
        g = Math.max(g, Math.abs(x));
      }
      assertTrue(g > 0, "backward reaches layer 0's q/k/v projection");
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /**
   * Autograd on the training path against central finite differences on the decoding path, for the parts the
   * families add: q/k norms (per head and full width), post-norm placement, q/k/v and gate/up views, latent
   * attention's projections and norms (both branches: the shared rotary key and the latent), routed and shared
   * experts.
   */
  @ParameterizedTest
  @ValueSource(strings = {"qwen3Like", "olmo2Like", "ernieBiased", "deepseekLike"})
  void gradientsMatchFiniteDifferences(String shape) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    long[] seq = {1, 7, 3, 9, 4, 11, 5, 2, 1, 6, 8, 10, 12, 3, 2, 9};
    long[] positions = {0, 2, 4, 6, 8, 9, 11, 13};
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 17)) {
      var host = model.toHostTensors(); // larger weights than the 0.02 init, so the loss is far from flat
      for (var t : host.values()) {
        for (int i = 0; i < t.data().length; i++) {
          t.data()[i] *= t.name().endsWith("norm.weight") ? 1f + 0.1f * (i % 5) : 8f;
        }
      }
      model.loadParameters(host);
      model.setTrainable(true);
      JniUtils.setGradMode(true);
      try (NDManager step = m.newSubManager();
          GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        gc.backward(loss(model, step, seq, positions));
      }
      JniUtils.setGradMode(false);
      String first = WeightLayout.blockNorms(c)[0];
      int checked = 0;
      java.util.List<String> names = c.latent() != null
          ? java.util.List.of("model.layers.0.self_attn.q_a_layernorm.weight",
              "model.layers.0.self_attn.kv_b_proj.weight", "model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "model.layers.1.mlp.experts.gate_up_proj",
              "model.layers.1.mlp.shared_experts.down_proj.weight")
          : c.outputBias()
          ? java.util.List.of("model.layers.0.self_attn.o_proj.bias", "model.layers.1.mlp.gate_up_proj.bias",
              "model.layers.0." + first + ".weight", "model.layers.1.self_attn.qkv_proj.bias",
              "model.layers.0.mlp.down_proj.bias")
          : java.util.List.of("model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight",
              "model.layers.0." + first + ".weight", "model.layers.1.self_attn.qkv_proj.weight",
              "model.layers.0.mlp.gate_up_proj.weight");
      for (String name : names) {
        var p = model.namedParameters().get(name);
        float[] g = p.getArray().getGradient().toFloatArray();
        int idx = 0;
        for (int i = 1; i < g.length; i++) {
          idx = Math.abs(g[i]) > Math.abs(g[idx]) ? i : idx;
        }
        double h = 1e-2;
        double fd = (perturbed(model, m, seq, positions, p, idx, h) - perturbed(model, m, seq, positions, p, idx, -h))
            / (2 * h);
        double rel = Math.abs(fd - g[idx]) / Math.max(Math.abs(g[idx]), 1e-3);
        assertTrue(Math.abs(g[idx]) > 1e-3, name + ": the check needs a gradient, got " + g[idx]);
        assertTrue(rel < 2e-2, shape + " " + name + "[" + idx + "]: autograd " + g[idx] + " vs " + fd);
        checked++;
      }
      assertEquals(5, checked);
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /** Mean log-prob of the next token at the chosen positions. */
  private static NDArray loss(LlamaModel model, NDManager m, long[] seq, long[] positions) {
    NDArray tokens = m.create(seq, new Shape(2, seq.length / 2));
    long[] targets = new long[positions.length];
    for (int i = 0; i < positions.length; i++) {
      targets[i] = seq[(int) positions[i] + 1];
    }
    NDArray ls = model.logSoftmaxAt(tokens, m.create(positions), 1f);
    return LlamaModel.pick(ls, m.create(targets)).mean();
  }

  private static double perturbed(LlamaModel model, NDManager parent, long[] seq, long[] positions,
      ai.djl.nn.Parameter p, int idx, double h) {
    float[] w = p.getArray().toFloatArray();
    float saved = w[idx];
    w[idx] = (float) (saved + h);
    p.getArray().set(java.nio.FloatBuffer.wrap(w));
    try (NDManager m = parent.newSubManager()) {
      return loss(model, m, seq, positions).getFloat();
    } finally {
      w[idx] = saved;
      p.getArray().set(java.nio.FloatBuffer.wrap(w));
    }
  }

  /**
   * Mixed precision (float32 master weights, bfloat16 activations) gives every parameter a float32 gradient that
   * points where the float32 gradient points: the casts carry gradients back to the masters. bfloat16 keeps 8
   * significant bits, so each parameter's gradient must agree in direction (cosine at least 0.99) and size (within
   * 5%); a cast that cut the graph would leave zeros, a wrong backward would turn the direction.
   */
  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "qwen3Like", "olmo2Like", "ernieBiased", "olmo3Like"})
  void mixedPrecisionGradientsFollowFloat32(String shape) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    long[] seq = {1, 7, 3, 9, 4, 11, 5, 2, 1, 6, 8, 10, 12, 3, 2, 9};
    long[] positions = {0, 2, 4, 6, 8, 9, 11, 13};
    boolean mode = JniUtils.isGradMode();
    var weights = LlamaModel.randomWeights(c, 23);
    for (var t : weights.values()) { // larger than the 0.02 init, so the gradients are far from zero
      for (int i = 0; i < t.data().length; i++) {
        t.data()[i] *= t.name().endsWith("norm.weight") ? 1f + 0.1f * (i % 5) : 8f;
      }
    }
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel f32 = LlamaModel.create(c, m, weights, Precision.FP32);
        LlamaModel mixed = LlamaModel.create(c, m, weights, Precision.BF16_MIXED)) {
      JniUtils.setGradMode(true);
      for (LlamaModel model : java.util.List.of(f32, mixed)) {
        model.setTrainable(true);
        try (NDManager step = m.newSubManager();
            GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
          gc.backward(loss(model, step, seq, positions));
        }
      }
      JniUtils.setGradMode(false);
      for (String name : f32.namedParameters().keySet()) {
        NDArray master = mixed.namedParameters().get(name).getArray();
        assertEquals(ai.djl.ndarray.types.DataType.FLOAT32, master.getGradient().getDataType(), name);
        float[] want = f32.namedParameters().get(name).getArray().getGradient().toFloatArray();
        float[] got = master.getGradient().toFloatArray();
        double dot = 0;
        double nw = 0;
        double ng = 0;
        for (int i = 0; i < want.length; i++) {
          dot += (double) want[i] * got[i];
          nw += (double) want[i] * want[i];
          ng += (double) got[i] * got[i];
        }
        double cosine = dot / Math.sqrt(nw * ng);
        double size = Math.sqrt(ng / nw);
        assertTrue(cosine >= 0.99 && Math.abs(size - 1) <= 0.05,
            shape + " " + name + ": mixed-precision gradient cosine " + cosine + ", norm ratio " + size);
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
  }
}
