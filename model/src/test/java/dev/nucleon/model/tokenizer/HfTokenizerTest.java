package dev.nucleon.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.TestResources;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The real TinyLlama tokenizer.json reproduces 113 encodings recorded from transformers. */
class HfTokenizerTest {

  static final Path TINYLLAMA = TestResources.path("hf-real/tokenizers/TinyLlama-1.1B-Chat-v1.0");

  @Test
  void reproducesEveryReferenceEncodingAndDecoding() throws Exception {
    ObjectMapper json = new ObjectMapper();
    List<String> failures = new ArrayList<>();
    int cases = 0;
    try (HfTokenizer tok = HfTokenizer.load(TINYLLAMA)) {
      for (String line : Files.readAllLines(TestResources.path("hf-real/tinyllama_encodings.jsonl"))) {
        JsonNode c = json.readTree(line);
        cases++;
        String text = c.get("text").asText();
        int[] want = new int[c.get("expected_ids").size()];
        for (int i = 0; i < want.length; i++) {
          want[i] = c.get("expected_ids").get(i).asInt();
        }
        int[] got = tok.encode(text, c.get("add_special_tokens").asBoolean());
        if (!java.util.Arrays.equals(want, got)) {
          failures.add(c.get("case_id").asText() + ": ids differ");
          continue;
        }
        if (!tok.decode(got, false).equals(c.get("decoded_with_special").asText())) {
          failures.add(c.get("case_id").asText() + ": decode with special tokens differs");
        }
        if (!tok.decode(got, true).equals(c.get("decoded_skip_special").asText())) {
          failures.add(c.get("case_id").asText() + ": decode skipping special tokens differs");
        }
      }
    }
    System.out.printf("TinyLlama tokenizer: %d cases, %d failures%n", cases, failures.size());
    assertEquals(113, cases);
    assertEquals(List.of(), failures);
  }

  /**
   * OLMo 2's dolma2 tokenizer (byte-level BPE over a cl100k-style split: digits in threes, contractions, whitespace
   * runs; 22 added tokens, special and not) encodes and decodes 32 texts as Hugging Face's own JavaScript port of
   * tokenizers does (hf-real/dolma2_encodings.jsonl: scripts, emoji with joiners, code, special and non-special
   * added tokens inside text, odd whitespace).
   */
  @Test
  void dolma2MatchesTheReferenceEncodings() throws Exception {
    ObjectMapper json = new ObjectMapper();
    List<String> failures = new ArrayList<>();
    int cases = 0;
    try (HfTokenizer tok = HfTokenizer.load(TestResources.path("hf-real/tokenizers/OLMo-2-dolma2"))) {
      assertEquals(100278, tok.vocabSize());
      for (String line : Files.readAllLines(TestResources.path("hf-real/dolma2_encodings.jsonl"))) {
        JsonNode c = json.readTree(line);
        cases++;
        String text = c.get("text").asText();
        int[] want = new int[c.get("ids").size()];
        for (int i = 0; i < want.length; i++) {
          want[i] = c.get("ids").get(i).asInt();
        }
        int[] got = tok.encode(text, false);
        if (!java.util.Arrays.equals(want, got)) {
          failures.add(json.writeValueAsString(text) + ": ids " + java.util.Arrays.toString(got) + ", want "
              + java.util.Arrays.toString(want));
          continue;
        }
        if (!tok.decode(got, false).equals(c.get("decoded").asText())) {
          failures.add(json.writeValueAsString(text) + ": decode with special tokens gives "
              + json.writeValueAsString(tok.decode(got, false)));
        }
        if (!tok.decode(got, true).equals(c.get("decoded_skip_special").asText())) {
          failures.add(json.writeValueAsString(text) + ": decode skipping special tokens gives "
              + json.writeValueAsString(tok.decode(got, true)));
        }
      }
    }
    System.out.printf("dolma2 tokenizer: %d cases, %d failures%n", cases, failures.size());
    assertEquals(32, cases);
    assertEquals(List.of(), failures);
  }

  @Test
  void specialTokensComeFromTheTokenizerConfig() {
    try (HfTokenizer tok = HfTokenizer.load(TINYLLAMA.resolve("tokenizer.json"))) {
      assertEquals(1, tok.bosId());
      assertArrayEquals(new int[] {2}, tok.eosIds());
      assertEquals(32000, tok.vocabSize());
      assertEquals(1, tok.encode("hello", true)[0]);
      assertTrue(tok.encode("hello", false)[0] != 1);
    }
  }

  @Test
  void missingTokenizerIsAClearError(@org.junit.jupiter.api.io.TempDir Path dir) {
    var e = assertThrows(ModelFormatException.class, () -> HfTokenizer.load(dir));
    assertTrue(e.getMessage().contains("tokenizer.json not found"), e.getMessage());
  }
}
