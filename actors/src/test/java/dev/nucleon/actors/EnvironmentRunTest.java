package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A run whose rollouts are episodes of an environment ({@code nucleon.environment.name = retry}): the worker
 * generates multi-turn trajectories (a wrong answer is told so and the question asked again), the scorer takes the
 * environment's rewards, and the learner trains on the model's tokens only, step after step.
 */
class EnvironmentRunTest {

  /** A small run of {@code steps} steps whose rollouts are episodes of the retry environment, two turns at most. */
  private static Map<String, String> retryEpisodes(int steps) {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.run.total-steps", String.valueOf(steps));
    // one-digit sums, so that two turns fit the quickstart model's context of 16 positions
    o.put("nucleon.dataset.arithmetic.max-operand", "9");
    o.put("nucleon.dataset.eval.size", "20");
    o.put("nucleon.environment.name", "retry");
    o.put("nucleon.environment.max-turns", "2");
    o.put("nucleon.environment.message-format", "{prompt}");
    o.put("nucleon.run.log-every-steps", "1");
    return o;
  }

  @Test
  void aRunTrainsOnEpisodesOfTheRetryEnvironment(@TempDir Path dir) throws Exception {
    Map<String, String> o = retryEpisodes(3);
    o.put("nucleon.run.eval.every-steps", "3");
    o.put("nucleon.run.eval.size", "8");
    try (NucleonNode node = NucleonNode.start(TestRuns.settings(o), dir, false, null)) {
      RunReporter.Summary summary = node.finished().get(240, TimeUnit.SECONDS);
      assertEquals(3, summary.steps());
    }
    int trained = 0;
    boolean multiTurn = false;
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      trained += row.path("completion_tokens").asInt();
      assertTrue(row.path("reward_mean").asDouble() >= 0 && row.path("reward_mean").asDouble() <= 1, row.toString());
      double turns = row.path("turns_mean").asDouble();
      assertTrue(turns >= 1 && turns <= 2, "turns within the limit: " + row);
      double ended = row.path("episodes_ended_environment").asDouble() + row.path("episodes_ended_max_turns")
          .asDouble() + row.path("episodes_ended_max_tokens").asDouble();
      assertEquals(row.path("samples").asDouble(), ended, "every episode's end is counted: " + row);
      multiTurn |= turns > 1;
    }
    assertTrue(multiTurn, "wrong first answers were asked again");
    TestRuns.assertSamplerMatchesLearner(dir, 1);
    assertTrue(trained > 0, "the learner trained on the episodes' model tokens");
    assertEquals(2, TestRuns.rows(dir, "eval").size(), "before and after");
  }

  /**
   * Checkpoints and resume hold for episodes as for prompts: a run of episodes stopped after three steps and resumed
   * continues its versions and its dataset cursor (no prompt of the epoch is trained twice), and its episodes still
   * take several turns.
   */
  @Test
  void anEpisodeRunResumesFromItsCheckpoint(@TempDir Path dir) throws Exception {
    Map<String, String> o = retryEpisodes(3);
    o.put("nucleon.algorithm.max-staleness", "0");
    o.put("nucleon.run.eval.size", "0");
    assertEquals(3, EmbeddedRunTest.run(o, dir, false).steps());
    java.util.Set<Long> first = new java.util.HashSet<>();
    TestRuns.rows(dir, "step").forEach(r -> r.get("prompts").forEach(p -> first.add(p.asLong())));
    o.put("nucleon.run.total-steps", "6");
    assertEquals(6, EmbeddedRunTest.run(o, dir, true).steps());
    List<JsonNode> all = TestRuns.rows(dir, "step");
    assertEquals(6, all.size(), "three steps, then three more after the resume");
    java.util.Set<Long> later = new java.util.HashSet<>();
    boolean multiTurn = false;
    for (int i = 3; i < 6; i++) {
      assertEquals(i + 1, all.get(i).get("step").asInt(), "versions continue where the checkpoint stopped");
      multiTurn |= all.get(i).path("turns_mean").asDouble() > 1;
      all.get(i).get("prompts").forEach(p -> later.add(p.asLong()));
    }
    assertTrue(multiTurn, "the resumed run's episodes still take more than one turn");
    assertEquals(first.size(), later.size(), "as many prompts after the resume as before");
    later.retainAll(first);
    assertEquals(java.util.Set.of(), later, "the dataset cursor continued: no prompt of the epoch came back");
  }

  /**
   * The multi-turn quickstart's config, shortened: the guessing game's episodes take several turns, the learner's
   * log-probs of the model's tokens match the sampler's through the turns (the KV cache extended by the hints), and
   * the summary holds the held-out evaluation before and after.
   */
  @Test
  void theMultiTurnQuickstartRunsEpisodesOfTheGuessingGame(@TempDir Path dir) throws Exception {
    Map<String, String> o = new java.util.LinkedHashMap<>();
    o.put("nucleon.model.path", "\"" + TestRuns.REPO.resolve("conf/models/multiturn-base") + "\"");
    o.put("nucleon.dataset.path", "\"" + TestRuns.REPO.resolve("conf/data/guess/guess-32.jsonl") + "\"");
    o.put("nucleon.run.total-steps", "6");
    o.put("nucleon.run.log-every-steps", "1");
    o.put("nucleon.run.eval.every-steps", "6");
    o.put("nucleon.run.eval.size", "32");
    o.put("nucleon.dataset.eval.size", "32");
    o.put("nucleon.algorithm.batch-groups", "4");
    o.put("nucleon.rollout.groups-per-batch", "4");
    o.put("nucleon.monitor.dashboard.enabled", "false");
    o.put("nucleon.monitor.progress.mode", "off");
    RunSettings settings = RunSettings.from(dev.nucleon.actors.run.RunConfig.load(
        TestRuns.REPO.resolve("conf/multiturn-quickstart.conf"), o));
    RunReporter.Summary summary;
    try (NucleonNode node = NucleonNode.start(settings, dir, false, null)) {
      summary = node.finished().get(240, TimeUnit.SECONDS);
    }
    assertEquals(6, summary.steps());
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      assertTrue(row.path("turns_mean").asDouble() > 1.5, "episodes of several turns: " + row);
    }
    List<JsonNode> evals = TestRuns.rows(dir, "eval");
    assertEquals(2, evals.size(), "before and after");
    double before = evals.get(0).path("eval_accuracy").asDouble();
    assertTrue(before > 0 && before < 1, "the base model finds some numbers, not all: " + before);
    TestRuns.assertSamplerMatchesLearner(dir, 1);
  }
}
