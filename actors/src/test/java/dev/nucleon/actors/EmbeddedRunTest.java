package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The whole loop in one JVM, with the quickstart's model and task, for a few steps. */
class EmbeddedRunTest {

  static RunReporter.Summary run(Map<String, String> overrides, Path dir) throws Exception {
    try (NucleonNode node = NucleonNode.start(TestRuns.settings(overrides), dir, false, null)) {
      return node.finished().get(180, TimeUnit.SECONDS);
    }
  }

  @Test
  void synchronousRunTrainsOnlyOnPolicyData(@TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.algorithm.max-staleness", "0");
    RunReporter.Summary s = run(o, dir);
    assertEquals(4, s.steps());
    List<JsonNode> steps = TestRuns.rows(dir, "step");
    assertEquals(4, steps.size());
    for (int i = 0; i < steps.size(); i++) {
      JsonNode row = steps.get(i);
      assertEquals(i + 1, row.get("step").asInt());
      assertEquals(0, row.get("staleness_max").asInt(), "max-staleness 0: every trajectory is on-policy");
      assertEquals(1.0, row.get("ratio_mean").asDouble(), 1e-4, "on-policy data has importance ratio 1");
      assertEquals(16, row.get("samples").asInt());
      assertEquals(4, row.get("prompts").size());
    }
    List<JsonNode> evals = TestRuns.rows(dir, "eval");
    assertEquals(2, evals.size(), "evaluated before the first step and after the last");
    assertEquals(0, evals.get(0).get("step").asInt());
    assertEquals(4, evals.get(1).get("step").asInt());
    assertEquals(20, evals.get(1).get("eval_prompts").asInt());
    Path ckpt = Path.of(s.checkpoint());
    assertTrue(Files.exists(ckpt.resolve("model/config.json")) && Files.exists(ckpt.resolve("model/tokenizer.json")),
        "the last checkpoint is a complete Hugging Face model folder");
    assertTrue(Files.exists(dir.resolve("summary.json")));
  }

  @Test
  void asynchronousRunNeverTrainsOnDataStalerThanTheBound(@TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.algorithm.max-staleness", "1");
    o.put("nucleon.run.total-steps", "6");
    o.put("nucleon.run.eval.size", "0");
    run(o, dir);
    List<JsonNode> steps = TestRuns.rows(dir, "step");
    assertEquals(6, steps.size());
    for (JsonNode row : steps) {
      assertTrue(row.get("staleness_max").asInt() <= 1, "batch of step " + row.get("step") + " has staleness "
          + row.get("staleness_max"));
    }
  }

  @Test
  void aFailingRewardPluginDoesNotStopTheRun(@TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.reward.name", "flaky-match");
    o.put("nucleon.run.eval.size", "0");
    long before = FlakyRewardFactory.THROWN.get();
    RunReporter.Summary s = run(o, dir);
    assertEquals(4, s.steps());
    assertTrue(FlakyRewardFactory.THROWN.get() > before, "the plug-in threw");
    double failed = 0;
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      failed += row.get("failed_rewards").asDouble();
    }
    assertTrue(failed > 0, "failed rewards are counted, never silent zeros");
  }
}
