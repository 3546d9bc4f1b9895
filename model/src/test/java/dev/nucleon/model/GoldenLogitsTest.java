package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.model.tokenizer.TextTokenizer;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Conformance against a reference nobody here wrote: llama2.c's run.c output for the stories260K-shaped checkpoint.
 * The RoPE row permutation, the tokenizer, GQA and the tied head all have to be right for every logit to agree.
 */
class GoldenLogitsTest {

  static final String PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside in "
      + "the park. One day, she saw a big, red ball.";

  static int[] tokens;
  static float[][] golden;

  @BeforeAll
  static void readGolden() throws Exception {
    ObjectMapper json = new ObjectMapper();
    List<String> lines = Files.readAllLines(TestResources.path("stories260k/golden_logits.jsonl"));
    tokens = new int[lines.size()];
    golden = new float[lines.size()][];
    for (String line : lines) {
      JsonNode n = json.readTree(line);
      int pos = n.get("pos").asInt();
      tokens[pos] = n.get("token").asInt();
      float[] l = new float[n.get("logits").size()];
      for (int i = 0; i < l.length; i++) {
        l[i] = (float) n.get("logits").get(i).asDouble();
      }
      golden[pos] = l;
    }
  }

  @Test
  void tokenizerEncodesThePromptIntoTheGoldenInputTokens() {
    var ckpt = ModelFiles.read(TestResources.storiesModel());
    try (TextTokenizer tok = ModelFiles.tokenizer(TestResources.storiesModel(), TestResources.storiesTokenizer(),
        ckpt.config())) {
      int[] encoded = tok.encode(PROMPT, true);
      assertTrue(encoded.length < tokens.length, "prompt must be shorter than the golden run");
      assertArrayEquals(Arrays.copyOf(tokens, encoded.length), encoded);
      assertEquals(PROMPT, tok.decode(encoded, true));
    }
  }

  @Test
  void everyLogitMatchesLlama2c() {
    Engines.start();
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = ModelFiles.read(TestResources.storiesModel()).instantiate(m)) {
      NDArray logits = model.logits(m.create(Arrays.stream(tokens).asLongStream().toArray(),
          new ai.djl.ndarray.types.Shape(1, tokens.length)));
      float[] flat = logits.toFloatArray();
      int vocab = model.config().vocabSize();
      double maxErr = 0;
      List<String> argmaxMismatches = new ArrayList<>();
      for (int pos = 0; pos < tokens.length; pos++) {
        float[] want = golden[pos];
        float[] got = Arrays.copyOfRange(flat, pos * vocab, (pos + 1) * vocab);
        for (int i = 0; i < vocab; i++) {
          maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
        }
        int[] top = top2(want);
        if (want[top[0]] - want[top[1]] > 1e-3 && argmax(got) != top[0]) {
          argmaxMismatches.add("pos " + pos);
        }
      }
      System.out.printf("golden logits: %d positions x %d, max abs error %.2e%n", tokens.length, vocab, maxErr);
      assertTrue(maxErr <= 2e-4, "max abs error " + maxErr);
      assertEquals(List.of(), argmaxMismatches);
    }
  }

  static int argmax(float[] a) {
    int best = 0;
    for (int i = 1; i < a.length; i++) {
      if (a[i] > a[best]) {
        best = i;
      }
    }
    return best;
  }

  static int[] top2(float[] a) {
    int first = argmax(a);
    int second = first == 0 ? 1 : 0;
    for (int i = 0; i < a.length; i++) {
      if (i != first && a[i] > a[second]) {
        second = i;
      }
    }
    return new int[] {first, second};
  }
}
