package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
  void groupsOfRequestsShareTheirPromptsPrefill() throws Exception {
    CliRun run = CliRun.of("bench", "generate", "--model", TINY, "--batch", "7", "--group-size", "3",
        "--new-tokens", "2", "--calls", "2", "--warmup", "0", "--threads", "1");
    assertEquals(0, run.exitCode(), run.err());
    JsonNode o = new ObjectMapper().readTree(run.out().strip());
    assertEquals(3, o.get("group_size").asInt());
    assertEquals(2 * 3, o.get("prefilled_rows").asLong(), "7 requests of 3 prompts (3 + 3 + 1), twice");
    assertEquals(2 * 7 * 2, o.get("tokens").asLong());

    CliRun bad = CliRun.of("bench", "generate", "--model", TINY, "--group-size", "0");
    assertEquals(2, bad.exitCode());
    assertTrue(bad.err().contains("--group-size: expected at least 1, got 0"), bad.err());
  }

  @Test
  void bothBatchingsRunInTurnWithTheirRatio() throws Exception {
    CliRun run = CliRun.of("bench", "generate", "--model", TINY, "--batch", "2", "--lengths", "1-6", "--calls", "3",
        "--warmup", "0", "--threads", "1", "--batching", "both", "--rounds", "2");
    assertEquals(0, run.exitCode(), run.err());
    JsonNode o = new ObjectMapper().readTree(run.out().strip());
    JsonNode fixed = o.get("static");
    JsonNode continuous = o.get("continuous");
    // both modes decode the same requests in every round: lengths 1 + 6, 4 + 4 and 2 + 5 from these seeds, twice
    assertEquals(44, fixed.get("tokens").asLong(), o.toString());
    assertEquals(44, continuous.get("tokens").asLong(), o.toString());
    // static calls decode 30 row-steps a round; the continuous batch only rows that make a token (its compiled
    // decode step leaves idle rows out)
    assertEquals(0.733, fixed.get("slot_utilization").asDouble(), 0.001, o.toString());
    assertEquals(1.0, continuous.get("slot_utilization").asDouble(), 1e-9, o.toString());
    assertEquals(continuous.get("useful_tokens_per_s").asDouble() / fixed.get("useful_tokens_per_s").asDouble(),
        o.get("continuous_over_static").asDouble(), 0.01 * o.get("continuous_over_static").asDouble());
    assertEquals(2, o.get("round_ratios").size());
    assertEquals(null, o.get("tokens_per_s"), "each mode reports its own figures");
    // the open batch's rate until its last request started (the drain after it left out): a share of its time
    double steady = continuous.get("steady_seconds").asDouble();
    assertTrue(steady > 0 && steady < continuous.get("seconds").asDouble(), o.toString());
    assertTrue(continuous.get("steady_useful_tokens_per_s").asDouble() > 0, o.toString());
    assertEquals(null, fixed.get("steady_seconds"), "a static call always drains");
    assertTrue(o.get("steady_over_static").asDouble() > 0, o.toString());

    CliRun bad = CliRun.of("bench", "generate", "--model", TINY, "--rounds", "0");
    assertEquals(2, bad.exitCode());
    assertTrue(bad.err().contains("--rounds: expected at least 1, got 0"), bad.err());
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
    assertEquals(4, o.get("group_size").asInt(), "one prompt for the whole batch");
    assertTrue(o.get("share_prompts").asBoolean());
    run = CliRun.of("bench", "learn", "--model", TINY, "--batch", "4", "--seq-len", "12", "--prompt-len", "4",
        "--group-size", "2", "--share-prompts", "false", "--steps", "1");
    assertEquals(0, run.exitCode(), run.err());
    o = new ObjectMapper().readTree(run.out().strip());
    assertEquals(2, o.get("group_size").asInt());
    assertFalse(o.get("share_prompts").asBoolean());
    run = CliRun.of("bench", "learn", "--model", TINY, "--batch", "4", "--group-size", "3");
    assertEquals(2, run.exitCode());
    assertTrue(run.err().contains("--group-size: expected 0 or a divisor of --batch 4, got 3"), run.err());
    run = CliRun.of("bench", "learn", "--model", TINY, "--reference", "/usr/bin/python3");
    assertEquals(2, run.exitCode());
    assertTrue(run.err().contains("add --share-prompts false"), run.err());
  }

  /** A Python with torch (Debian's python3-torch), or null: the PyTorch references need one, CI machines lack it. */
  static String pythonWithTorch() {
    try {
      Process p = new ProcessBuilder("/usr/bin/python3", "-c", "import torch").redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      return p.waitFor() == 0 ? "/usr/bin/python3" : null;
    } catch (java.io.IOException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }

  @Test
  void theReferenceRunsTheSameCaseInPyTorchAndReportsTheRatio() throws Exception {
    String python = pythonWithTorch();
    org.junit.jupiter.api.Assumptions.assumeTrue(python != null, "no /usr/bin/python3 with torch here");
    for (String[] args : new String[][] {
        {"bench", "generate", "--model", TINY, "--batch", "3", "--new-tokens", "5", "--calls", "1", "--threads", "1",
            "--dtype", "bf16", "--reference", python},
        {"bench", "learn", "--model", TINY, "--batch", "4", "--seq-len", "12", "--prompt-len", "4",
            "--micro-batch-tokens", "24", "--steps", "1", "--threads", "1", "--share-prompts", "false",
            "--reference", python}}) {
      CliRun run = CliRun.of(args);
      assertEquals(0, run.exitCode(), run.err());
      JsonNode o = new ObjectMapper().readTree(run.out().strip());
      JsonNode ref = o.get("reference");
      assertEquals(o.get("bench").asText() + "-reference", ref.get("bench").asText());
      assertTrue(ref.get("framework").asText().startsWith("pytorch "), ref.toString());
      assertEquals(1, ref.get("threads").asInt());
      assertEquals(o.get("tokens_per_s").asDouble() / ref.get("tokens_per_s").asDouble(),
          o.get("speedup_vs_reference").asDouble(), 0.01 * o.get("speedup_vs_reference").asDouble());
    }
  }

  @Test
  void theReferenceComparesThePlainCaseOnly() {
    CliRun run = CliRun.of("bench", "generate", "--model", TINY, "--lengths", "2-5", "--reference", "/usr/bin/python3");
    assertEquals(2, run.exitCode());
    assertTrue(run.err().contains("--reference compares the plain case only"), run.err());
  }

  @Test
  void aBadRandomSpecNamesTheKey() {
    CliRun run = CliRun.of("bench", "score", "--model", "random:dim=32,depth=3");
    assertEquals(1, run.exitCode());
    assertTrue(run.err().contains("'depth'"), run.err());
  }
}
