package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import org.junit.jupiter.api.Test;

class StatusViewTest {

  @Test
  void clusterViewHasMembersRunThroughputActorsAndStaleness() throws Exception {
    String text = StatusView.render(MonitorFixtures.twoNodeStatus());
    JsonNode j = new ObjectMapper().readTree(text); // valid JSON: no NaN tokens
    assertFalse(text.contains("NaN"), text);
    assertEquals("running", j.get("state").asText());
    assertEquals(3, j.at("/run/step").asInt());
    assertEquals(10, j.at("/run/total_steps").asInt());
    assertEquals(14.0, j.at("/run/eta_seconds").asDouble(), 1e-9);
    assertEquals(2, j.get("members").size());
    assertEquals(List.of("coordinator", "learner"),
        List.of(j.at("/members/0/roles/0").asText(), j.at("/members/0/roles/1").asText()));
    assertFalse(j.at("/members/1/reachable").asBoolean());
    assertEquals(100, j.at("/prompts/pending").asInt());
    // nodes sorted by name; actors of both
    assertEquals(3, j.get("actors").size());
    JsonNode worker = null;
    for (JsonNode a : j.get("actors")) {
      if (a.get("actor").asText().equals("rollout-0")) {
        worker = a;
      }
    }
    assertEquals("rollout", worker.get("role").asText());
    assertEquals(5000, worker.get("tokens").asLong());
    assertTrue(worker.get("tokens_per_s").asDouble() > 0);
    assertTrue(worker.get("busy_ratio").isNumber());
    assertTrue(worker.get("mailbox_depth").isNull());
    assertTrue(j.at("/throughput/rollout_tokens_per_s").asDouble() > 0);
    assertEquals(3, j.at("/learner/policy_version").asInt());
    assertEquals(2048, j.at("/learner/tokens").asLong());
    assertEquals(4, j.at("/replay/groups").asInt());
    assertEquals(2, j.at("/replay/dropped/zero_variance").asInt());
    assertEquals(2, j.at("/staleness/max").asInt());
    assertEquals(1.0, j.at("/staleness/mean").asDouble(), 1e-9);
    assertEquals(1, j.at("/staleness/histogram/1").asInt());
    assertEquals(0.4, j.at("/training/reward_mean").asDouble(), 1e-12);
    assertTrue(j.at("/training/loss").isNull());
    assertEquals(1, j.at("/rewards/0/outcomes/failed").asInt());
    assertEquals(2, j.get("nodes").size());
  }

  @Test
  void emptyStatusRendersWithNulls() throws Exception {
    ClusterStatus empty = new ClusterStatus(0, "starting", null, null, 0, 0, -1, 0, List.of(), null, List.of());
    JsonNode j = new ObjectMapper().readTree(StatusView.render(empty));
    assertTrue(j.get("learner").isNull());
    assertTrue(j.at("/replay/groups").isNull());
    assertTrue(j.at("/staleness/max").isNull());
    assertTrue(j.at("/run/eta_seconds").isNull());
    assertEquals(0, j.get("actors").size());
  }

  @Test
  void stepAndVersionFromTheLearnerSnapshot() {
    NucleonMetrics m = new NucleonMetrics("n", List.of("learner"));
    m.policyVersion(12);
    ClusterStatus s = ClusterStatus.of("running", "r", null, 100, 5.0, List.of(), null, List.of(m.snapshot()));
    assertEquals(12, s.step());
    assertEquals(12, s.policyVersion());
  }
}
