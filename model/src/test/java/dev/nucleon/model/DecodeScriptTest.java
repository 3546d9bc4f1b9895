package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The TorchScript decode step computes the logits the eager blocks compute, for every family's layer shape (GQA,
 * biases, per-head and full-width q/k norms, post-norm, interleaved rotary, sliding windows, tied heads) and in
 * both generation precisions, over a prefill with a padded row and decode steps through the cache.
 */
class DecodeScriptTest {

  @ParameterizedTest
  @CsvSource({
      "qwenLike, f32", "llamaTied, f32", "qwen3Like, f32", "olmo2Like, f32", "ernieBiased, f32", "olmo3Like, f32",
      "qwenLike, bf16", "qwen3Like, bf16", "olmo2Like, bf16", "olmo3Like, bf16"})
  void scriptedDecodingMatchesEager(String shape, String dtype) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    Precision precision = Precision.inference(Precision.parseType(dtype));
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(c, m, LlamaModel.randomWeights(c, 11), precision)) {
      float[] eager = decode(model, false, m);
      float[] scripted = decode(model, true, m);
      assertEquals(eager.length, scripted.length);
      double maxErr = 0;
      double scale = 0;
      for (int i = 0; i < eager.length; i++) {
        assertTrue(Float.isFinite(scripted[i]), "non-finite scripted logit at " + i);
        maxErr = Math.max(maxErr, Math.abs(eager[i] - scripted[i]));
        scale = Math.max(scale, Math.abs(eager[i]));
      }
      System.out.printf("%s %s: scripted vs eager decoding max abs difference %.2e (logits up to %.2f)%n", shape,
          dtype, maxErr, scale);
      // float32: the same ops in the same order; bfloat16: a rounding step apart at most
      double tolerance = precision.compute() == DataType.FLOAT32 ? 1e-6 : 2e-2 * Math.max(1, scale);
      assertTrue(maxErr <= tolerance, shape + " " + dtype + ": max abs difference " + maxErr);
    }
  }

  /** Logits of a 6-token prefill (row 1 left-padded by 2) then 5 decode steps, through a fresh cache. */
  private static float[] decode(LlamaModel model, boolean scripted, NDManager parent) {
    model.setScriptedDecode(scripted);
    assertEquals(scripted, model.decodesScripted());
    LlamaConfig c = model.config();
    int b = 3;
    int prompt = 6;
    int steps = 5;
    int pad = 2;
    SplittableRandom rng = new SplittableRandom(5);
    try (NDManager m = parent.newSubManager();
        KvCache cache = new KvCache(m, c, b, prompt + steps, model.precision().compute())) {
      long[] tokens = new long[b * prompt];
      long[] positions = new long[b * prompt];
      float[] mask = new float[b * prompt * prompt];
      for (int i = 0; i < b; i++) {
        int start = i == 1 ? pad : 0;
        for (int t = 0; t < prompt; t++) {
          tokens[i * prompt + t] = rng.nextInt(c.vocabSize());
          positions[i * prompt + t] = Math.max(0, t - start);
          for (int k = 0; k < prompt; k++) {
            boolean visible = k <= t && k >= start;
            mask[(i * prompt + t) * prompt + k] = visible || (t < start && k == t) ? 0f : LlamaModel.MASKED;
          }
        }
      }
      NDArray pre = model.forward(m.create(tokens, new Shape(b, prompt)), m.create(positions, new Shape(b, prompt)),
          m.create(mask, new Shape(b, 1, prompt, prompt)), cache, false);
      float[] out = new float[(b * prompt + b * steps) * c.vocabSize()];
      float[] first = pre.toFloatArray();
      System.arraycopy(first, 0, out, 0, first.length);
      int at = first.length;
      for (int s = 0; s < steps; s++) {
        long[] next = new long[b];
        long[] pos = new long[b];
        float[] stepMask = new float[b * (prompt + s + 1)];
        for (int i = 0; i < b; i++) {
          next[i] = rng.nextInt(c.vocabSize());
          pos[i] = prompt + s - (i == 1 ? pad : 0);
          for (int k = 0; i == 1 && k < pad; k++) {
            stepMask[i * (prompt + s + 1) + k] = LlamaModel.MASKED;
          }
        }
        float[] logits = model.forward(m.create(next, new Shape(b, 1)), m.create(pos, new Shape(b, 1)),
            m.create(stepMask, new Shape(b, 1, 1, prompt + s + 1)), cache, true).toFloatArray();
        System.arraycopy(logits, 0, out, at, logits.length);
        at += logits.length;
      }
      return out;
    }
  }
}
