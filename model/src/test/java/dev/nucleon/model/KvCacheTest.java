package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Decoding token by token through the KV cache computes what a full forward pass computes. */
class KvCacheTest {

  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "llamaTied", "qwen3Like", "olmo2Like", "olmo3Like", "qwen3MoeLike",
      "ernieMoeLike", "deepseekLike"})
  void cachedDecodingMatchesFullForward(String shape) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    int b = 3;
    int prompt = 5;
    int total = 12;
    SplittableRandom rng = new SplittableRandom(7);
    long[] seq = new long[b * total];
    for (int i = 0; i < seq.length; i++) {
      seq[i] = rng.nextInt(c.vocabSize());
    }
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 3)) {
      float[] full = model.logits(m.create(seq, new Shape(b, total))).toFloatArray();
      int v = c.vocabSize();
      double maxErr = 0;
      try (KvCache cache = new KvCache(m, c, b, total, ai.djl.ndarray.types.DataType.FLOAT32)) {
        long[] first = new long[b * prompt];
        long[] pos = new long[b * prompt];
        for (int i = 0; i < b; i++) {
          for (int t = 0; t < prompt; t++) {
            first[i * prompt + t] = seq[i * total + t];
            pos[i * prompt + t] = t;
          }
        }
        float[] pre = model.forward(m.create(first, new Shape(b, prompt)), m.create(pos, new Shape(b, prompt)),
            LlamaModel.causalMask(m, prompt), cache, false).toFloatArray();
        for (int i = 0; i < b; i++) {
          for (int t = 0; t < prompt; t++) {
            for (int k = 0; k < v; k++) {
              maxErr = Math.max(maxErr, Math.abs(pre[(i * prompt + t) * v + k] - full[(i * total + t) * v + k]));
            }
          }
        }
        for (int t = prompt; t < total; t++) {
          long[] tok = new long[b];
          long[] p = new long[b];
          for (int i = 0; i < b; i++) {
            tok[i] = seq[i * total + t];
            p[i] = t;
          }
          NDArray zeros = m.zeros(new Shape(1, 1, 1, t + 1));
          float[] step = model.forward(m.create(tok, new Shape(b, 1)), m.create(p, new Shape(b, 1)), zeros, cache,
              true).toFloatArray();
          for (int i = 0; i < b; i++) {
            for (int k = 0; k < v; k++) {
              maxErr = Math.max(maxErr, Math.abs(step[i * v + k] - full[(i * total + t) * v + k]));
            }
          }
        }
      }
      System.out.printf("%s: KV-cache vs full forward max abs error %.2e%n", shape, maxErr);
      assertTrue(maxErr < 1e-5, "max abs error " + maxErr);
    }
  }
}
