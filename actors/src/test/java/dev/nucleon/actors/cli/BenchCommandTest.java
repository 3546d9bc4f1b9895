package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** The bench commands print one JSON line with the figures; speed itself is not asserted here. */
class BenchCommandTest {

  static final String TINY = "random:dim=32,layers=1,vocab=50,heads=4,kv-heads=2";

  @Test
  void benchGeneratePrintsTokensPerSecond() throws Exception {
    CliRun run = CliRun.of("bench", "generate", "--model", TINY, "--batch", "3", "--new-tokens", "5", "--calls",
        "2", "--warmup", "0", "--threads", "1");
    assertEquals(0, run.exitCode(), run.err());
    JsonNode o = new ObjectMapper().readTree(run.out().strip());
    assertEquals("generate", o.get("bench").asText());
    assertEquals(3, o.get("batch").asInt());
    assertTrue(o.get("tokens_per_s").asDouble() > 0);
    assertTrue(o.get("model").asText().contains("d=32"));
  }

  @Test
  void benchScoreWithBackwardPrintsTokensPerSecond() throws Exception {
    CliRun run = CliRun.of("bench", "score", "--model", TINY, "--batch", "2", "--seq-len", "8", "--iterations", "1",
        "--backward");
    assertEquals(0, run.exitCode(), run.err());
    JsonNode o = new ObjectMapper().readTree(run.out().strip());
    assertEquals("score+backward", o.get("bench").asText());
    assertTrue(o.get("tokens_per_s").asDouble() > 0);
  }

  @Test
  void benchLearnPrintsTokensPerSecond() throws Exception {
    CliRun run = CliRun.of("bench", "learn", "--model", TINY, "--batch", "4", "--seq-len", "12", "--prompt-len", "4",
        "--micro-batch-tokens", "24", "--steps", "1");
    assertEquals(0, run.exitCode(), run.err());
    JsonNode o = new ObjectMapper().readTree(run.out().strip());
    assertEquals("learn", o.get("bench").asText());
    assertTrue(o.get("tokens_per_s").asDouble() > 0);
  }

  @Test
  void aBadRandomSpecNamesTheKey() {
    CliRun run = CliRun.of("bench", "score", "--model", "random:dim=32,depth=3");
    assertEquals(1, run.exitCode());
    assertTrue(run.err().contains("'depth'"), run.err());
  }
}
