package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class NucleonMetricsTest {

  private final AtomicLong now = new AtomicLong(1_000_000_000L);
  private final NucleonMetrics metrics =
      new NucleonMetrics("node-a", List.of("rollout", "learner"), now::get, TimeUnit.SECONDS.toNanos(30));

  private static void assertLine(String text, String line) {
    assertTrue(text.lines().anyMatch(l -> l.equals(line)), () -> "missing line\n  " + line + "\nin\n" + text);
  }

  @Test
  void rolloutCountersAndHistogramAppearWithNodeRoleAndActorLabels() {
    metrics.rolloutTokens("rollout-0", 100);
    metrics.rolloutTokens("rollout-0", 28);
    metrics.rolloutTokens("rollout-1", 7);
    metrics.rolloutTrajectories("rollout-0", 16);
    metrics.rolloutRowSteps("rollout-0", 160);
    metrics.rolloutBatchSeconds("rollout-0", 0.2);
    metrics.rolloutBatchSeconds("rollout-0", 0.4);
    String text = metrics.scrapeText();
    assertLine(text, "# TYPE nucleon_rollout_tokens_total counter");
    assertLine(text, "nucleon_rollout_tokens_total{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 128.0");
    assertLine(text, "nucleon_rollout_tokens_total{actor=\"rollout-1\",node=\"node-a\",role=\"rollout\"} 7.0");
    assertLine(text, "nucleon_rollout_trajectories_total{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 16.0");
    assertLine(text, "nucleon_rollout_row_steps_total{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 160.0");
    assertLine(text, "# TYPE nucleon_rollout_batch_seconds histogram");
    assertLine(text,
        "nucleon_rollout_batch_seconds_bucket{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\",le=\"0.25\"} 1");
    assertLine(text,
        "nucleon_rollout_batch_seconds_bucket{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\",le=\"0.5\"} 2");
    assertLine(text, "nucleon_rollout_batch_seconds_count{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 2");
    assertTrue(text.contains("nucleon_rollout_batch_seconds_sum{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 0.6"),
        text);
  }

  @Test
  void weightFetchesPerWorker() {
    metrics.weightsFetched("rollout-0", 0.3, 1_000_000);
    metrics.weightsFetched("rollout-0", 0.2, 1_000_000);
    metrics.weightsFetchFailed("rollout-1");
    String text = metrics.scrapeText();
    assertLine(text, "nucleon_weights_fetched_bytes_total{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 2000000.0");
    assertLine(text, "nucleon_weights_fetch_seconds_count{actor=\"rollout-0\",node=\"node-a\",role=\"rollout\"} 2");
    assertLine(text, "nucleon_weights_fetch_failures_total{actor=\"rollout-1\",node=\"node-a\",role=\"rollout\"} 1.0");
  }

  @Test
  void rewardReplayStalenessLearnerWeightsAndSignals() {
    metrics.rewardScored("gsm8k", "ok", 30);
    metrics.rewardScored("gsm8k", "failed", 2);
    metrics.rewardSeconds("gsm8k", 0.003);
    metrics.replayGroups(5);
    metrics.replayDropped("zero_variance", 3);
    metrics.replayDropped("stale", 1);
    metrics.trajectoryStaleness(0);
    metrics.trajectoryStaleness(1);
    metrics.trajectoryStaleness(1);
    metrics.trajectoryStaleness(3);
    metrics.learnerStep(0.5, 4096, 16);
    metrics.learnerFlagged(false, false);
    metrics.learnerStep(0.7, 1000, 16);
    metrics.learnerFlagged(true, true);
    metrics.policyVersion(2);
    metrics.weightsPublished(0.12, 1_600_000);
    Map<String, Double> signals = new LinkedHashMap<>();
    signals.put("reward_mean", 0.25);
    signals.put("accuracy", 0.5);
    signals.put("loss", -0.01);
    signals.put("kl", 0.002);
    signals.put("clip_fraction", 0.1);
    signals.put("entropy", 1.5);
    signals.put("grad-norm", 0.9);
    signals.put("ignored", null);
    metrics.trainingSignals(signals);
    metrics.trainingSignals(Map.of("reward_mean", 0.5));

    String text = metrics.scrapeText();
    assertLine(text, "nucleon_reward_scored_total{node=\"node-a\",outcome=\"ok\",reward=\"gsm8k\",role=\"reward\"} 30.0");
    assertLine(text,
        "nucleon_reward_scored_total{node=\"node-a\",outcome=\"failed\",reward=\"gsm8k\",role=\"reward\"} 2.0");
    assertLine(text, "nucleon_reward_seconds_count{node=\"node-a\",reward=\"gsm8k\",role=\"reward\"} 1");
    assertLine(text, "# TYPE nucleon_replay_groups gauge");
    assertLine(text, "nucleon_replay_groups{node=\"node-a\",role=\"learner\"} 5.0");
    assertLine(text, "nucleon_replay_dropped_total{node=\"node-a\",reason=\"zero_variance\",role=\"learner\"} 3.0");
    assertLine(text, "nucleon_replay_dropped_total{node=\"node-a\",reason=\"stale\",role=\"learner\"} 1.0");
    assertLine(text, "# TYPE nucleon_trajectory_staleness histogram");
    assertLine(text, "nucleon_trajectory_staleness_bucket{node=\"node-a\",role=\"learner\",le=\"0.0\"} 1");
    assertLine(text, "nucleon_trajectory_staleness_bucket{node=\"node-a\",role=\"learner\",le=\"1.0\"} 3");
    assertLine(text, "nucleon_trajectory_staleness_bucket{node=\"node-a\",role=\"learner\",le=\"3.0\"} 4");
    assertLine(text, "nucleon_trajectory_staleness_count{node=\"node-a\",role=\"learner\"} 4");
    assertLine(text, "nucleon_learner_steps_total{node=\"node-a\",role=\"learner\"} 2.0");
    assertLine(text, "nucleon_learner_tokens_total{node=\"node-a\",role=\"learner\"} 5096.0");
    assertLine(text, "nucleon_learner_step_seconds_count{node=\"node-a\",role=\"learner\"} 2");
    assertLine(text, "nucleon_learner_flagged_steps_total{kind=\"grad_spike\",node=\"node-a\",role=\"learner\"} 1.0");
    assertLine(text,
        "nucleon_learner_flagged_steps_total{kind=\"skipped_update\",node=\"node-a\",role=\"learner\"} 1.0");
    assertLine(text, "nucleon_policy_version{node=\"node-a\",role=\"learner\"} 2.0");
    assertLine(text, "nucleon_weights_publish_seconds_count{node=\"node-a\",role=\"learner\"} 1");
    assertLine(text, "nucleon_weights_bytes_total{node=\"node-a\",role=\"learner\"} 1600000.0");
    assertLine(text, "nucleon_train_reward_mean{node=\"node-a\",role=\"learner\"} 0.5");
    assertLine(text, "nucleon_train_accuracy{node=\"node-a\",role=\"learner\"} 0.5");
    assertLine(text, "nucleon_train_kl{node=\"node-a\",role=\"learner\"} 0.002");
    assertLine(text, "nucleon_train_grad_norm{node=\"node-a\",role=\"learner\"} 0.9");
    assertTrue(!text.contains("nucleon_train_ignored"), text);

    NodeSnapshot s = metrics.snapshot();
    assertEquals(5, s.replayGroups());
    assertEquals(Map.of("stale", 1L, "zero_variance", 3L), s.replayDropped());
    assertEquals(Map.of("0", 1L, "1", 2L, "3", 1L), s.staleness());
    assertEquals(3, s.stalenessMax());
    assertEquals(5.0 / 4, s.stalenessMean(), 1e-12);
    assertEquals(2, s.learner().steps());
    assertEquals(5096, s.learner().tokens());
    assertEquals(0.7, s.learner().stepSecondsLast(), 1e-12);
    assertEquals(0.6, s.learner().stepSecondsMean(), 1e-12);
    assertEquals(2, s.learner().policyVersion());
    assertEquals(1_600_000, s.learner().weightsBytes());
    assertEquals(0.5, s.trainingSignals().get("reward_mean"));
    assertEquals(0.9, s.trainingSignals().get("grad_norm"));
    assertEquals(1, s.rewards().size());
    assertEquals(Map.of("failed", 2L, "ok", 30L), s.rewards().get(0).outcomes());
  }

  @Test
  void ratesOverTheWindowAndBusyRatio() {
    metrics.rolloutTokens("rollout-0", 0);
    BusyTracker learner = metrics.busyTracker("learner", "learner");
    // 10 s: 5000 tokens, learner busy 4 s of them
    for (int s = 0; s < 10; s++) {
      metrics.rolloutTokens("rollout-0", 500);
      if (s % 5 < 2) {
        learner.begin();
        now.addAndGet(TimeUnit.SECONDS.toNanos(1));
        learner.end();
      } else {
        now.addAndGet(TimeUnit.SECONDS.toNanos(1));
      }
    }
    NodeSnapshot s = metrics.snapshot();
    NodeSnapshot.Actor worker = s.actors().stream().filter(a -> a.actor().equals("rollout-0")).findFirst().get();
    assertEquals(500.0, worker.tokensPerSecond(), 1e-9);
    assertEquals(5000, worker.tokens());
    assertEquals(-1.0, worker.busyRatio());
    assertEquals(0.4, learner.ratio(), 1e-9);
    assertEquals(0.4, learner.ratioSinceStart(), 1e-9);
    assertLine(metrics.scrapeText(), "nucleon_actor_busy_ratio{actor=\"learner\",node=\"node-a\",role=\"learner\"} 0.4");

    // 40 s later, idle: the window forgets the old figures; since-start keeps them
    now.addAndGet(TimeUnit.SECONDS.toNanos(40));
    NodeSnapshot later = metrics.snapshot();
    assertEquals(0.0, later.actors().stream().filter(a -> a.actor().equals("rollout-0")).findFirst().get()
        .tokensPerSecond(), 1e-9);
    assertEquals(0.0, learner.ratio(), 1e-9);
    assertEquals(0.08, learner.ratioSinceStart(), 1e-9);

    // an open interval counts as busy while it runs
    learner.begin();
    now.addAndGet(TimeUnit.SECONDS.toNanos(15));
    assertEquals(15.0 / 30.0, learner.ratio(), 0.04);
    learner.end();
  }

  @Test
  void mailboxDepthAndRecordedBusyTime() {
    metrics.busy("reward", "scorer-0", TimeUnit.MILLISECONDS.toNanos(250));
    now.addAndGet(TimeUnit.SECONDS.toNanos(1));
    metrics.mailboxDepth("scorer-0", 12);
    metrics.mailboxDepth("coordinator", "coordinator", 3);
    String text = metrics.scrapeText();
    assertLine(text, "# TYPE nucleon_mailbox_depth gauge");
    assertLine(text, "nucleon_mailbox_depth{actor=\"scorer-0\",node=\"node-a\",role=\"reward\"} 12.0");
    assertLine(text, "nucleon_mailbox_depth{actor=\"coordinator\",node=\"node-a\",role=\"coordinator\"} 3.0");
    assertLine(text, "nucleon_actor_busy_ratio{actor=\"scorer-0\",node=\"node-a\",role=\"reward\"} 0.25");
    NodeSnapshot s = metrics.snapshot();
    assertEquals(List.of("coordinator", "scorer-0"), s.actors().stream().map(NodeSnapshot.Actor::actor).toList());
    assertEquals(12, s.actors().get(1).mailboxDepth());
    assertEquals("reward", s.actors().get(1).role());
    assertNull(s.learner());
    assertEquals(-1, s.replayGroups());
    assertEquals(-1, s.stalenessMax());
  }

  @Test
  void aNodeExportsOnlyTheFamiliesOfWhatItRuns() {
    NucleonMetrics rolloutOnly = new NucleonMetrics("node-r", List.of("rollout"));
    rolloutOnly.rolloutTokens("rollout-0", 3);
    String text = rolloutOnly.scrapeText();
    assertLine(text, "nucleon_node_info{node=\"node-r\",roles=\"rollout\"} 1.0");
    assertTrue(text.contains("nucleon_rollout_tokens_total"), text);
    for (String absent : List.of("nucleon_policy_version", "nucleon_learner_steps_total", "nucleon_replay_groups",
        "nucleon_trajectory_staleness", "nucleon_weights_bytes_total", "nucleon_reward_scored_total")) {
      assertTrue(!text.contains(absent + "{"), absent + " in\n" + text);
    }
  }

  @Test
  void metricNamesAreSanitized() {
    assertEquals("grad_norm", NucleonMetrics.metricName("Grad-Norm"));
    assertEquals("_1x", NucleonMetrics.metricName("1x"));
    assertEquals("a_b", NucleonMetrics.metricName("__a..b__"));
  }
}
