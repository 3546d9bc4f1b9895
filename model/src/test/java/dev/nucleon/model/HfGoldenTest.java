package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.io.HfCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Conformance of whole Hugging Face families against a reference nobody here wrote (src/test/resources/golden, see
 * its README): every logit of every position within 1e-4 on both the decoding path and the training path, the same
 * greedy continuation through the KV cache, and a saved-then-reloaded model computing the same logits.
 */
class HfGoldenTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final double TOLERANCE = 1e-4;

  @TempDir
  Path tmp;

  @ParameterizedTest
  @ValueSource(strings = {"qwen3-tiny", "qwen3-tiny-tied-bf16", "llama3-tiny", "llama3-tiny-scaled-bf16", "olmo2-tiny",
      "olmo2-tiny-gqa-bf16", "ernie4_5-tiny", "ernie4_5-tiny-bias-bf16", "olmo3-tiny", "qwen3_moe-tiny",
      "qwen3_moe-tiny-bf16", "ernie4_5_moe-tiny", "ernie4_5_moe-tiny-bf16", "gpt_oss-tiny", "gpt_oss-tiny-bf16",
      "deepseek_v3-tiny", "deepseek_v3-tiny-noqlora-bf16"})
  void matchesTheReference(String name) throws Exception {
    Engines.start();
    Path dir = TestResources.path("golden/" + name);
    ModelFiles.Checkpoint ckpt = ModelFiles.read(dir);
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ckpt.instantiate(m)) {
      List<JsonNode> golden = lines(dir.resolve("golden.jsonl"));
      double worstDecoding = 0;
      double worstTraining = 0;
      for (JsonNode g : golden) {
        long[] ids = ids(g.get("input_ids"));
        float[] want = flatten(g.get("logits"));
        JniUtils.setGradMode(false);
        worstDecoding = Math.max(worstDecoding, maxDiff(want, logits(model, m, ids)));
        JniUtils.setGradMode(true);
        worstTraining = Math.max(worstTraining, maxDiff(want, logits(model, m, ids)));
      }
      JniUtils.setGradMode(false);
      System.out.printf("golden %s: max |logit - reference| %.2e (decoding path), %.2e (training path)%n", name,
          worstDecoding, worstTraining);
      assertTrue(worstDecoding <= TOLERANCE, name + ": decoding path off by " + worstDecoding);
      assertTrue(worstTraining <= TOLERANCE, name + ": training path off by " + worstTraining);

      try (Generator generator = new Generator(model, 0)) {
        List<JsonNode> greedy = lines(dir.resolve("greedy.jsonl"));
        List<GenerationRequest> requests = new ArrayList<>();
        for (JsonNode g : greedy) {
          int[] prompt = java.util.Arrays.stream(ids(g.get("prompt_ids"))).mapToInt(x -> (int) x).toArray();
          requests.add(new GenerationRequest(prompt, SamplingParams.greedy(g.get("greedy_ids").size()), 0));
        }
        var results = generator.generate(requests);
        for (int i = 0; i < greedy.size(); i++) {
          int[] want = java.util.Arrays.stream(ids(greedy.get(i).get("greedy_ids"))).mapToInt(x -> (int) x)
              .toArray();
          assertArrayEquals(want, results.get(i).tokens(), name + ": greedy continuation " + i + " (KV cache)");
        }
      }

      Path saved = tmp.resolve(name);
      HfCheckpoint.write(saved, model.config(), model.toHuggingFace());
      try (LlamaModel reloaded = ModelFiles.read(saved).instantiate(m)) {
        assertEquals(model.config(), reloaded.config());
        long[] ids = ids(golden.get(1).get("input_ids"));
        assertArrayEquals(logits(model, m, ids), logits(reloaded, m, ids), name + ": saved and reloaded");
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /**
   * The same cases computed in bfloat16 (weights and activations, the rollout's precision), and with float32
   * master weights and bfloat16 activations (the learner's mixed precision) on the training path. bfloat16 keeps 8
   * significant bits, so logits move by a few hundredths: every logit must lie within 3% of the case's largest
   * |logit| of the reference and their mean distance within 0.5% (measured: at most 2.2% and 0.3%), while a wrong
   * formula costs more (the cases' READMEs list 0.15 to 3.9 for one missing feature). Where the
   * reference's top-1 token leads by more than twice the bound, bfloat16 must pick the same token, and KV-cache
   * decoding in bfloat16 must give the logits of a full recompute within the bound.
   *
   * <p>Mixture-of-experts cases replay the float32 model's expert choices (routing replay): a token whose route
   * flips under bfloat16 rounding moves its logits by far more than the rounding does (measured without replay on
   * the float32 checkpoints: up to 0.33 and 0.81, one flipped route each), which is a different question, and the
   * flip rate is printed.
   */
  @ParameterizedTest
  @ValueSource(strings = {"qwen3-tiny", "qwen3-tiny-tied-bf16", "llama3-tiny", "llama3-tiny-scaled-bf16", "olmo2-tiny",
      "olmo2-tiny-gqa-bf16", "ernie4_5-tiny", "ernie4_5-tiny-bias-bf16", "olmo3-tiny", "qwen3_moe-tiny",
      "qwen3_moe-tiny-bf16", "ernie4_5_moe-tiny", "ernie4_5_moe-tiny-bf16", "gpt_oss-tiny", "gpt_oss-tiny-bf16",
      "deepseek_v3-tiny", "deepseek_v3-tiny-noqlora-bf16"})
  void bf16StaysNearTheReference(String name) throws Exception {
    Engines.start();
    Path dir = TestResources.path("golden/" + name);
    ModelFiles.Checkpoint ckpt = ModelFiles.read(dir);
    var internal = WeightLayout.fromHuggingFace(ckpt.config(), ckpt.huggingFace(), dir.toString());
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel bf16 = LlamaModel.create(ckpt.config(), m, internal, Precision.BF16);
        LlamaModel mixed = LlamaModel.create(ckpt.config(), m, internal, Precision.BF16_MIXED);
        LlamaModel f32 = LlamaModel.create(ckpt.config(), m, internal, Precision.FP32)) {
      List<JsonNode> golden = lines(dir.resolve("golden.jsonl"));
      double largest = 0;
      for (JsonNode g : golden) {
        for (float x : flatten(g.get("logits"))) {
          largest = Math.max(largest, Math.abs(x));
        }
      }
      double bound = 0.03 * largest;
      int vocab = ckpt.config().vocabSize();
      double worstDecoding = 0;
      double worstTraining = 0;
      double sumDecoding = 0;
      long count = 0;
      int decided = 0;
      long flipped = 0;
      long routed = 0;
      for (JsonNode g : golden) {
        long[] ids = ids(g.get("input_ids"));
        float[] want = flatten(g.get("logits"));
        JniUtils.setGradMode(false);
        Routing reference = Routing.record();
        logits(f32, m, ids, reference);
        Routing replayed = Routing.replay(reference.chosen());
        float[] got = logits(bf16, m, ids, replayed);
        flipped += replayed.differing();
        routed += replayed.compared();
        worstDecoding = Math.max(worstDecoding, maxDiff(want, got));
        for (int i = 0; i < want.length; i++) {
          sumDecoding += Math.abs(want[i] - got[i]);
        }
        count += want.length;
        JniUtils.setGradMode(true);
        worstTraining = Math.max(worstTraining, maxDiff(want, logits(mixed, m, ids,
            Routing.replay(reference.chosen()))));
        for (int pos = 0; pos < ids.length; pos++) {
          int top = argmax(want, pos * vocab, vocab);
          if (leadOf(want, pos * vocab, vocab, top) > 2 * bound) {
            decided++;
            assertEquals(top, argmax(got, pos * vocab, vocab), name + ": bf16 top-1 token at position " + pos);
          }
        }
      }
      JniUtils.setGradMode(false);
      long[] ids = ids(golden.get(2).get("input_ids"));
      // the recompute's experts replayed step by step: the question is the cache, not a flipped route
      Routing recompute = Routing.record();
      float[] full = logits(bf16, m, ids, recompute);
      double cacheGap = maxDiff(full, cachedLogits(bf16, m, ids, recompute.chosen()));
      double mean = sumDecoding / count;
      System.out.printf("golden %s in bf16: max |logit - reference| %.3f (bf16), %.3f (mixed, training path), "
          + "mean %.4f, cache vs recompute %.3f; bound %.3f; %d decided top-1 tokens agree; %d of %d routes replayed "
          + "differ from bf16's own%n", name, worstDecoding, worstTraining, mean, cacheGap, bound, decided, flipped,
          routed);
      // and it did compute in bfloat16: float32 would agree to 1e-5
      assertTrue(worstDecoding > 1e-3 && worstTraining > 1e-3, name + ": bf16 logits equal float32's ("
          + worstDecoding + ", " + worstTraining + "): the activations were not bfloat16");
      assertTrue(worstDecoding <= bound, name + ": bf16 off by " + worstDecoding + " > " + bound);
      assertTrue(mean <= 0.005 * largest, name + ": bf16 logits off by " + mean + " on average");
      assertTrue(worstTraining <= bound, name + ": mixed precision off by " + worstTraining + " > " + bound);
      assertTrue(cacheGap <= bound, name + ": bf16 KV-cache decoding off by " + cacheGap + " > " + bound);
      assertTrue(decided > 0, name + ": no position decided");
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /**
   * Logits of every position computed one token at a time through the KV cache, as decoding does; a mixture's
   * experts replayed from {@code experts} (each sparse layer's ids for every position) when given.
   */
  private static float[] cachedLogits(LlamaModel model, NDManager parent, long[] ids, Map<Integer, int[]> experts) {
    int vocab = model.config().vocabSize();
    float[] out = new float[ids.length * vocab];
    try (NDManager m = parent.newSubManager();
        KvCache cache = new KvCache(m, model.config(), 1, ids.length, model.precision().compute())) {
      NDArray none = m.zeros(new Shape(1, 1, 1, ids.length));
      for (int t = 0; t < ids.length; t++) {
        try (NDManager step = m.newSubManager()) {
          Routing routing = null;
          if (!experts.isEmpty()) {
            Map<Integer, int[]> at = new java.util.TreeMap<>();
            int position = t;
            experts.forEach((layer, all) -> {
              int k = all.length / ids.length;
              at.put(layer, java.util.Arrays.copyOfRange(all, position * k, (position + 1) * k));
            });
            routing = Routing.replay(at);
          }
          NDArray logits = model.forward(step.create(new long[] {ids[t]}, new Shape(1, 1)),
              step.create(new long[] {t}, new Shape(1, 1)), Ops.slice(none, 3, 0, t + 1, step), cache, true,
              routing);
          System.arraycopy(logits.toFloatArray(), 0, out, t * vocab, vocab);
        }
      }
    }
    return out;
  }

  private static int argmax(float[] x, int off, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
      if (x[off + i] > x[off + best]) {
        best = i;
      }
    }
    return best;
  }

  /** How far the top token's logit lies above the runner-up's. */
  private static double leadOf(float[] x, int off, int n, int top) {
    double second = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      if (i != top) {
        second = Math.max(second, x[off + i]);
      }
    }
    return x[off + top] - second;
  }

  private static float[] logits(LlamaModel model, NDManager parent, long[] ids) {
    return logits(model, parent, ids, null);
  }

  private static float[] logits(LlamaModel model, NDManager parent, long[] ids, Routing routing) {
    try (NDManager m = parent.newSubManager()) {
      return model.logits(m.create(ids, new Shape(1, ids.length)), routing).toFloatArray();
    }
  }

  private static List<JsonNode> lines(Path file) throws Exception {
    List<JsonNode> out = new ArrayList<>();
    for (String line : Files.readAllLines(file)) {
      if (!line.isBlank()) {
        out.add(JSON.readTree(line));
      }
    }
    return out;
  }

  private static long[] ids(JsonNode array) {
    long[] out = new long[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).asLong();
    }
    return out;
  }

  private static float[] flatten(JsonNode rows) {
    int v = rows.get(0).size();
    float[] out = new float[rows.size() * v];
    for (int r = 0; r < rows.size(); r++) {
      for (int k = 0; k < v; k++) {
        out[r * v + k] = (float) rows.get(r).get(k).asDouble();
      }
    }
    return out;
  }

  private static double maxDiff(float[] a, float[] b) {
    assertEquals(a.length, b.length, "logit count");
    double worst = 0;
    for (int i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    return worst;
  }
}
