package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
      "olmo2-tiny-gqa-bf16", "ernie4_5-tiny", "ernie4_5-tiny-bias-bf16", "olmo3-tiny"})
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

  private static float[] logits(LlamaModel model, NDManager parent, long[] ids) {
    try (NDManager m = parent.newSubManager()) {
      return model.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
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
