package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunHistoryTest {

  @TempDir
  Path dir;

  @Test
  void readsCompleteLinesIncrementally() throws Exception {
    Path f = dir.resolve(RunHistory.FILE);
    assertEquals(0, RunHistory.read(f, 0, 100).rows().size()); // missing file: empty
    Files.writeString(f, "{\"step\":1,\"reward_mean\":0.1}\n{\"step\":2,\"reward_mean\":0.2}\n{\"step\":3,\"rew",
        StandardCharsets.UTF_8);
    RunHistory.Chunk c = RunHistory.read(f, 0, 100);
    assertEquals(2, c.rows().size());
    assertEquals(2, c.rows().get(1).get("step").asInt());
    // the half-written line is not read; after it is completed it is
    Files.writeString(f, "ard_mean\":0.3}\nnot json\n[1]\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
    RunHistory.Chunk d = RunHistory.read(f, c.next(), 100);
    assertEquals(1, d.rows().size());
    assertEquals(0.3, d.rows().get(0).get("reward_mean").asDouble());
    assertEquals(2, d.skipped());
    assertEquals(Files.size(f), d.next());
    assertEquals(0, RunHistory.read(f, d.next(), 100).rows().size());
    assertEquals(1, RunHistory.read(f, 0, 1).rows().size());
  }

  @Test
  void numbersFlattenNestedMaps() throws Exception {
    Map<String, Double> n = RunHistory.numbers(new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        "{\"step\":4,\"name\":\"x\",\"ok\":true,\"tokens_per_s\":{\"rollout-0\":100,\"rollout-1\":50.5},\"a\":[1]}"));
    assertEquals(Map.of("step", 4.0, "tokens_per_s.rollout-0", 100.0, "tokens_per_s.rollout-1", 50.5), n);
  }

  @Test
  void aNestedNodeSnapshotGivesPerActorThroughputAndBusyRatio() throws Exception {
    NucleonMetrics m = new NucleonMetrics("n", java.util.List.of("rollout", "learner"));
    m.rolloutTokens("rollout-0", 100);
    m.busy("learner", "learner", 1000);
    com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
    com.fasterxml.jackson.databind.node.ObjectNode row = json.createObjectNode();
    row.put("step", 1);
    row.put("reward_mean", 0.5);
    row.set("node", json.valueToTree(m.snapshot())); // as the run reporter writes it
    Map<String, Double> n = RunHistory.numbers(row);
    assertEquals(java.util.Set.of("step", "reward_mean", "actor_tokens_per_s.rollout-0", "actor_busy_ratio.learner"),
        n.keySet());
  }
}
