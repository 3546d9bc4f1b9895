package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A sliding window of w lets a query see itself and the w - 1 keys before it, as transformers masks
 * ({@code kv_idx > q_idx - w}): on a one-layer Mistral the logits at position t change with the token at t - w + 1
 * and not with the one at t - w, and KV-cache decoding gives the same greedy tokens as recomputing the whole
 * sequence each step.
 */
class SlidingWindowTest {

  private static final int WINDOW = 3;

  private static LlamaConfig mistral(int layers) {
    int[] windows = new int[layers];
    java.util.Arrays.fill(windows, WINDOW);
    return new LlamaConfig("MistralForCausalLM", 40, 32, 64, layers, 4, 2, 8, 10000.0, null, 1e-6, 64, false,
        false, 1, new int[] {2}, false, windows);
  }

  @Test
  void aQuerySeesItselfAndTheWindowBeforeIt() {
    Engines.start();
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(mistral(1), m, 9)) {
      long[] base = {1, 5, 7, 9, 11, 13, 15, 17};
      int t = 7;
      float[] ref = logitsAt(model, m, base, t);
      long[] outside = base.clone();
      outside[t - WINDOW] = 30; // just outside the window
      assertArrayEquals(ref, logitsAt(model, m, outside, t), "the token w positions back is not seen");
      long[] inside = base.clone();
      inside[t - WINDOW + 1] = 30; // the oldest key inside it
      float[] moved = logitsAt(model, m, inside, t);
      double d = 0;
      for (int i = 0; i < ref.length; i++) {
        d = Math.max(d, Math.abs(ref[i] - moved[i]));
      }
      assertTrue(d > 1e-4, "the token w - 1 positions back is seen (logits moved by " + d + ")");
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  @Test
  void cachedDecodingEqualsRecomputingWithWindows() {
    Engines.start();
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(mistral(2), m, 12);
        Generator generator = new Generator(model, 0)) {
      int[] prompt = {1, 4, 9, 16, 25};
      int n = 12;
      int[] cached = generator.generate(List.of(new GenerationRequest(prompt, SamplingParams.greedy(n), 0)))
          .get(0).tokens();
      JniUtils.setGradMode(false);
      long[] seq = java.util.Arrays.stream(prompt).asLongStream().toArray();
      for (int i = 0; i < n; i++) {
        float[] last = logitsAt(model, m, seq, seq.length - 1);
        int best = 0;
        for (int k = 1; k < last.length; k++) {
          best = last[k] > last[best] ? k : best;
        }
        assertEquals(best, cached[i], "token " + i + " (window " + WINDOW + ", prompt " + prompt.length + ")");
        seq = java.util.Arrays.copyOf(seq, seq.length + 1);
        seq[seq.length - 1] = best;
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  private static float[] logitsAt(LlamaModel model, NDManager parent, long[] ids, int t) {
    try (NDManager m = parent.newSubManager()) {
      float[] all = model.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      int v = model.config().vocabSize();
      return java.util.Arrays.copyOfRange(all, t * v, (t + 1) * v);
    }
  }
}
