package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
    return run(overrides, dir, false);
  }

  static RunReporter.Summary run(Map<String, String> overrides, Path dir, boolean resume) throws Exception {
    try (NucleonNode node = NucleonNode.start(TestRuns.settings(overrides), dir, resume, null)) {
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
    // the open run record: what produced it, and what the model wrote at each evaluation
    JsonNode provenance = new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        dir.resolve(dev.nucleon.actors.run.Provenance.FILE).toFile());
    assertTrue(provenance.get("inputs").size() >= 2, "the model's files, hashed: " + provenance);
    assertEquals(1, provenance.at("/seeds/nucleon.run.seed").asInt(), provenance.get("seeds").toString());
    List<String> samples = Files.readAllLines(dir.resolve(RunReporter.SAMPLES));
    assertEquals(2 * 8, samples.size(), "8 samples at each of the 2 evaluations");
    JsonNode first = new com.fasterxml.jackson.databind.ObjectMapper().readTree(samples.get(0));
    JsonNode lastSample = new com.fasterxml.jackson.databind.ObjectMapper().readTree(samples.get(15));
    assertEquals(0, first.get("version").asInt());
    assertEquals(4, lastSample.get("version").asInt());
    assertTrue(first.has("prompt") && first.has("completion") && first.has("answer") && first.has("reward"),
        first.toString());
  }

  /**
   * A LoRA run: the rollout engine samples from the base with the adapter merged (sampler and learner log-probs of
   * the same version agree), checkpoints hold the PEFT adapter alone, and a resumed run continues.
   */
  @Test
  void loraRunTrainsAnAdapterAndResumesFromIt(@TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.algorithm.max-staleness", "0");
    o.put("nucleon.run.eval.size", "0");
    o.put("nucleon.run.total-steps", "3");
    o.put("nucleon.learner.lora.rank", "4");
    o.put("nucleon.learner.optimizer.lr", "1e-2");
    run(o, dir);
    Path adapter = dir.resolve("checkpoints/step-000000003/adapter");
    dev.nucleon.model.lora.PeftAdapter saved = dev.nucleon.model.lora.PeftAdapter.read(adapter);
    Path kept = dir.resolve("adapter-at-3"); // the resume below keeps only the newest checkpoints
    saved.write(kept);
    assertEquals(7 * 2, saved.modules().size(), "all-linear over the quickstart model's 2 layers");
    assertTrue(saved.modules().values().stream().anyMatch(m -> {
      for (float v : m.b().data()) {
        if (v != 0f) {
          return true;
        }
      }
      return false;
    }), "B moved away from zero");
    o.put("nucleon.run.total-steps", "5");
    RunReporter.Summary resumed = run(o, dir, true);
    assertEquals(5, resumed.steps());
    // on-policy steps: the rollout engine generated with the weights the learner scores (base + adapter)
    TestRuns.assertSamplerMatchesLearner(dir, 3);

    // a new run that starts from the trained adapter (train --adapter): at a learning rate too small to move it,
    // its first checkpoint holds that adapter, not a fresh one (whose B would be zero)
    Path next = dir.resolve("continued");
    Map<String, String> c = new java.util.LinkedHashMap<>(o);
    c.put("nucleon.model.adapter", "\"" + kept.toString().replace("\\", "/") + "\"");
    c.put("nucleon.run.total-steps", "1");
    c.put("nucleon.learner.optimizer.lr", "1e-12");
    run(c, next);
    dev.nucleon.model.lora.PeftAdapter continued = dev.nucleon.model.lora.PeftAdapter.read(
        next.resolve("checkpoints/step-000000001/adapter"));
    // and its first batch was sampled by base + that adapter, which the learner scores
    JsonNode first = TestRuns.rows(next, "step").get(0);
    assertTrue(first.has("logprob_gap_max") && first.get("logprob_gap_max").asDouble() < 1e-3,
        "the first batch of a run from an adapter must be sampled with it: " + first);
    for (var m : saved.modules().values()) {
      float[] want = m.b().data();
      float[] got = continued.modules().get(m.name()).b().data();
      for (int i = 0; i < want.length; i++) {
        assertEquals(want[i], got[i], 1e-6, m.name() + " B[" + i + "]");
      }
    }
    // an adapter whose rank the settings do not give is refused before anything starts, with the reason
    c.put("nucleon.learner.lora.rank", "8");
    var e = assertThrows(IllegalArgumentException.class, () -> run(c, dir.resolve("refused")));
    assertTrue(e.getMessage().contains("nucleon.model.adapter") && e.getMessage().contains("r = 4"),
        e.getMessage());
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
    // the status view's learner row counts what the learner trained (it showed 0 tokens before)
    long trained = 0;
    long samples = 0;
    for (JsonNode row : steps) {
      trained += row.get("completion_tokens").asLong();
      samples += row.get("samples").asLong();
    }
    JsonNode last = steps.get(steps.size() - 1).get("node");
    JsonNode learnerRow = null;
    for (JsonNode actor : last.get("actors")) {
      if (actor.get("role").asText().equals("learner")) {
        learnerRow = actor;
      }
    }
    assertEquals(trained, learnerRow.get("tokens").asLong(), "learner row tokens vs the step rows: " + learnerRow);
    assertEquals(samples, learnerRow.get("trajectories").asLong(), "learner row trajectories: " + learnerRow);
    assertEquals(6, learnerRow.get("batches").asLong(), "a learner batch is a step");
    assertTrue(learnerRow.get("tokensPerSecond").asDouble() > 0, "learner tokens/s: " + learnerRow);
    int stalest = 0;
    for (JsonNode row : steps) {
      assertTrue(row.get("staleness_max").asInt() <= 1, "batch of step " + row.get("step") + " has staleness "
          + row.get("staleness_max"));
      stalest = Math.max(stalest, row.get("staleness_max").asInt());
    }
    // the status view's staleness (node snapshot) is the trained batches' as metrics.jsonl has it: it read 0 while
    // the chart read 1 when it was measured on arrival (this run usually trains data one version old)
    assertEquals(stalest, last.get("stalenessMax").asInt(), "status staleness max vs the step rows: " + last);
    long counted = 0;
    for (var e : (Iterable<java.util.Map.Entry<String, JsonNode>>) () -> last.get("staleness").fields()) {
      counted += e.getValue().asLong();
    }
    assertEquals(samples, counted, "the staleness histogram counts every trained trajectory once");
  }

  @Test
  void resumeContinuesWithTheSameDatasetPositionAndAccounting(@TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.algorithm.max-staleness", "0");
    o.put("nucleon.run.eval.size", "0");
    o.put("nucleon.run.total-steps", "3");
    run(o, dir);
    List<JsonNode> first = TestRuns.rows(dir, "step");
    java.util.Set<Long> firstPrompts = new java.util.HashSet<>();
    first.forEach(r -> r.get("prompts").forEach(p -> firstPrompts.add(p.asLong())));
    assertEquals(12, firstPrompts.size());
    // the start of a row its node was killed while writing: the resumed run cuts it instead of joining its own
    // first row to it (readers would skip both as one malformed line)
    Files.writeString(dir.resolve("metrics.jsonl"), "{\"type\":\"step\",\"step\":4,\"prom",
        java.nio.file.StandardOpenOption.APPEND);

    o.put("nucleon.run.total-steps", "6");
    RunReporter.Summary resumed = run(o, dir, true);
    assertEquals(6, resumed.steps());
    List<JsonNode> all = TestRuns.rows(dir, "step");
    assertEquals(6, all.size(), "three steps, then three more after the resume");
    assertEquals(List.of(3), TestRuns.rows(dir, "resume").stream().map(r -> r.get("step").asInt()).toList(),
        "the resume row, whole");
    java.util.Set<Long> later = new java.util.HashSet<>();
    for (int i = 3; i < 6; i++) {
      assertEquals(i + 1, all.get(i).get("step").asInt(), "versions continue where the checkpoint stopped");
      all.get(i).get("prompts").forEach(p -> later.add(p.asLong()));
    }
    assertEquals(12, later.size());
    later.retainAll(firstPrompts);
    assertEquals(java.util.Set.of(), later, "the dataset cursor continued: no prompt of the epoch came back");
    assertTrue(Files.exists(dir.resolve("checkpoints/step-000000006/model/config.json")));
  }

  @Test
  void aRunWhoseDataRunsOutEndsWithAFinalCheckpointAndEvaluation(@TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    // 90 training prompts, one epoch, batches of 4 groups: 22 full batches, then 2 groups short of a batch
    o.put("nucleon.dataset.arithmetic.max-operand", "9");
    o.put("nucleon.dataset.eval.size", "10");
    o.put("nucleon.dataset.epochs", "1");
    o.put("nucleon.run.eval.size", "10");
    o.put("nucleon.algorithm.max-staleness", "0");
    o.put("nucleon.run.total-steps", "100");
    RunReporter.Summary s = run(o, dir);
    assertEquals(22, s.steps());
    assertTrue(s.checkpoint().endsWith("step-000000022"), s.checkpoint());
    List<JsonNode> evals = TestRuns.rows(dir, "eval");
    assertEquals(22, evals.get(evals.size() - 1).get("step").asInt(), "the last evaluation is of the last version");
    assertEquals(90L, s.prompts().get("read"));
    assertEquals(88L, s.prompts().get("trained"));
    assertEquals(2L, s.prompts().get("unfinished"), "scored, short of a batch");
  }

  @Test
  void badPromptsAreDroppedOnceWithTheirReasonAndEveryPromptIsAccountedFor(@TempDir Path dir) throws Exception {
    // the quickstart model has a context of 16 tokens: 4 new tokens leave 12 for the prompt
    StringBuilder jsonl = new StringBuilder();
    for (int a = 1; a <= 16; a++) {
      jsonl.append("{\"prompt\": \"").append(a).append("+").append(a + 2).append("=\", \"answer\": \"")
          .append(2 * a + 2).append("\"}\n");
    }
    jsonl.append("{\"prompt\": \"1+1+1+1+1+1+1+1+1+1+1+1=\", \"answer\": \"12\"}\n");
    jsonl.append("{\"prompt\": \"  \", \"answer\": \"0\"}\n");
    jsonl.append("{\"prompt\": \"7+\uFFFD=\", \"answer\": \"7\"}\n");
    Path data = dir.resolve("data.jsonl");
    java.nio.file.Files.writeString(data, jsonl);
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.dataset.format", "generic");
    o.put("nucleon.dataset.path", "\"" + data + "\"");
    o.put("nucleon.dataset.eval.size", "0");
    o.put("nucleon.dataset.epochs", "1");
    o.put("nucleon.run.eval.size", "0");
    o.put("nucleon.run.total-steps", "100");
    o.put("nucleon.algorithm.max-staleness", "0");
    RunReporter.Summary s = run(o, dir.resolve("run"));
    Map<String, Long> p = s.prompts();
    assertEquals(19L, p.get("read"), "every row was read once");
    assertEquals(1L, p.get("dropped.too-long"));
    assertEquals(1L, p.get("dropped.empty-prompt"));
    assertEquals(1L, p.get("dropped.undecodable"));
    long dropped = p.entrySet().stream().filter(e -> e.getKey().startsWith("dropped."))
        .mapToLong(Map.Entry::getValue).sum();
    assertEquals(p.get("read"), p.get("trained") + dropped + p.get("unfinished"), "read = trained + dropped + live");
    assertEquals(4 * s.steps(), p.get("trained"));
    JsonNode summary = new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        dir.resolve("run/summary.json").toFile());
    assertEquals(1, summary.get("prompts").get("dropped").get("too-long").asInt(), summary.toString());
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

  @Test
  void aTokenBudgetThatCanNeverBeFilledIsRefusedAtStartNamingTheKeys(@TempDir Path dir) {
    Map<String, String> o = TestRuns.small();
    // 2 x 4 groups of 4 samples of at most 16 tokens: 512 tokens at most, never 100000
    o.put("nucleon.replay.batch-tokens", "100000");
    IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> run(o, dir));
    assertTrue(e.getMessage().startsWith("nucleon.replay.batch-tokens = 100000 can never be filled"), e.getMessage());
    assertTrue(e.getMessage().contains("nucleon.algorithm.batch-groups") && e.getMessage().contains("512 tokens"),
        e.getMessage());
  }

  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(ints = {0, 1})
  void aRunWithAnOpenContinuousBatchTrainsEveryStep(int maxStaleness, @TempDir Path dir) throws Exception {
    Map<String, String> o = TestRuns.small();
    // 4 groups x 4 samples per work batch through 6 slots, kept open across work batches; evaluations every 2 steps
    // run in between (the open batch takes no newcomers while one waits for the generator)
    o.put("nucleon.rollout.batch-slots", "6");
    o.put("nucleon.run.eval.every-steps", "2");
    o.put("nucleon.algorithm.max-staleness", String.valueOf(maxStaleness));
    RunReporter.Summary s = run(o, dir);
    assertEquals(4, s.steps());
    assertEquals(16L, s.prompts().get("trained"));
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      assertTrue(row.get("staleness_max").asInt() <= maxStaleness, row.toString());
      if (maxStaleness == 0) {
        assertEquals(1.0, row.get("ratio_mean").asDouble(), 1e-4, "on-policy data has importance ratio 1");
      }
    }
    TestRuns.assertSamplerMatchesLearner(dir, 1);
    // evaluated before the first step, after the second and after the last, each labelled with the version that
    // answered: asynchronously the one after the second may be answered by version 3, or by the final weights
    // (then it is the final evaluation)
    List<Integer> evals = TestRuns.rows(dir, "eval").stream().map(e -> e.get("step").asInt()).toList();
    if (maxStaleness == 0) {
      assertEquals(List.of(0, 2, 4), evals);
    } else {
      assertTrue(evals.size() == 2 || evals.size() == 3, evals.toString());
      assertEquals(0, evals.get(0));
      assertEquals(4, evals.get(evals.size() - 1));
      assertTrue(evals.size() == 2 || evals.get(1) == 2 || evals.get(1) == 3, evals.toString());
    }
  }
}
