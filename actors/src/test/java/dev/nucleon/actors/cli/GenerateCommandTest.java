package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.model.tokenizer.Llama2cTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GenerateCommandTest {

  static final String PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside in "
      + "the park. One day, she saw a big, red ball.";

  @TempDir
  static Path dir;
  static Path model;
  static Path tokenizer;

  @BeforeAll
  static void copyCheckpoint() {
    model = CliRun.copyResource("stories260k/model.bin", dir);
    tokenizer = CliRun.copyResource("stories260k/tok512.bin", dir);
  }

  @Test
  void greedyGenerationPrintsLlama2csOwnContinuation() throws Exception {
    Path golden = CliRun.copyResource("stories260k/golden_logits.jsonl", dir);
    ObjectMapper json = new ObjectMapper();
    List<String> lines = Files.readAllLines(golden);
    int[] tokens = lines.stream().mapToInt(l -> {
      try {
        return json.readTree(l).get("token").asInt();
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    }).toArray();
    Llama2cTokenizer tok = Llama2cTokenizer.load(tokenizer, 512);
    int promptLen = tok.encode(PROMPT, true).length;
    String expected = tok.decode(Arrays.copyOfRange(tokens, promptLen, tokens.length), true);

    CliRun run = CliRun.of("generate", "--model", model.toString(), "--tokenizer", tokenizer.toString(),
        "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", String.valueOf(tokens.length - promptLen));
    assertEquals(0, run.exitCode(), run.err());
    assertEquals(expected.replace("\n", "\\n"), run.out().stripTrailing());
  }

  @Test
  void samplesOneLinePerSampleReproduciblyBySeed() {
    String[] args = {"generate", "--model", model.toString(), "--tokenizer", tokenizer.toString(), "--prompt",
        "Once upon a time", "--num-samples", "3", "--max-new-tokens", "12", "--temperature", "0.9", "--top-p", "0.9",
        "--seed", "7"};
    CliRun a = CliRun.of(args);
    CliRun b = CliRun.of(args);
    assertEquals(0, a.exitCode(), a.err());
    assertEquals(3, a.out().lines().count());
    assertEquals(a.out(), b.out());
    args[args.length - 1] = "8";
    assertNotEquals(a.out(), CliRun.of(args).out());
  }

  @Test
  void aMissingModelIsAClearErrorNotAStackTrace() {
    CliRun run = CliRun.of("generate", "--model", dir.resolve("missing.bin").toString(), "--prompt", "hi");
    assertEquals(1, run.exitCode());
    assertTrue(run.err().contains("missing.bin") && run.err().contains("not found"), run.err());
    assertTrue(!run.err().contains("\tat "), "no stack trace: " + run.err());
  }
}
