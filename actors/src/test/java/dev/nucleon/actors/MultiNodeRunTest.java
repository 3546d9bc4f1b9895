package dev.nucleon.actors;

import static dev.nucleon.actors.monitor.MonitorFixtures.metric;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nucleon.rollout.data.Dataset;
import dev.nucleon.rollout.data.DatasetRow;
import dev.nucleon.rollout.data.DatasetSettings;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three cluster nodes on 127.0.0.1 (three actor systems in this JVM, talking over Artery): A runs the coordinator
 * and the learner, B and C each a rollout worker and a reward scorer. Trajectories go from B and C to the replay
 * buffer on A (through Kryo), and every policy version goes from A's weight server to B and C on TCP streams. C leaves in the middle
 * of the run; its prompts are generated again, and every training prompt of the epoch is consumed exactly once.
 */
class MultiNodeRunTest {

  static int freePort() {
    return TestPorts.free();
  }

  @Test
  void aWorkerNodeLeavesMidRunAndEveryPromptIsTrainedExactlyOnce(@TempDir Path dir) throws Exception {
    aWorkerLeavesMidRun(dir, Map.of());
  }

  /**
   * The same with multi-turn episodes (the retry environment: a wrong answer is asked again): an episode in flight
   * on the node that leaves is generated again from its first turn, as a prompt would be, and every prompt of the
   * epoch is still trained exactly once.
   */
  @Test
  void episodesInFlightOnANodeThatLeavesAreRestartedAndTrainedExactlyOnce(@TempDir Path dir) throws Exception {
    aWorkerLeavesMidRun(dir, Map.of("nucleon.environment.name", "retry", "nucleon.environment.max-turns", "2",
        "nucleon.environment.message-format", "{prompt}"));
    int turns = 0;
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      turns += row.path("turns_mean").asDouble() > 1 ? 1 : 0;
    }
    assertTrue(turns > 0, "episodes of two turns were trained");
  }

  private static void aWorkerLeavesMidRun(Path dir, Map<String, String> extra) throws Exception {
    int portA = freePort();
    String seed = "[\"pekko://nucleon@127.0.0.1:" + portA + "\"]";
    Map<String, String> common = TestRuns.small();
    // a 10 x 10 addition table: 90 training prompts (10 held out), one epoch, 30 steps of 3 groups
    common.put("nucleon.dataset.arithmetic.max-operand", "9");
    common.put("nucleon.dataset.eval.size", "10");
    common.put("nucleon.dataset.epochs", "1");
    common.put("nucleon.run.eval.size", "10");
    common.put("nucleon.algorithm.group-size", "2");
    common.put("nucleon.algorithm.batch-groups", "3");
    common.put("nucleon.algorithm.max-staleness", "1");
    common.put("nucleon.rollout.groups-per-batch", "2");
    common.put("nucleon.run.total-steps", "30");
    common.put("nucleon.rollout.group-timeout", "5s");
    common.put("nucleon.learner.weight-chunk-bytes", "64KiB");
    common.put("nucleon.reward-scorer.scorers", "1");
    common.put("nucleon.cluster.seed-nodes", seed);
    common.putAll(extra);

    Map<String, String> a = new java.util.LinkedHashMap<>(common);
    a.put("nucleon.cluster.roles", "[coordinator, learner]");
    a.put("nucleon.cluster.port", String.valueOf(portA));
    Map<String, String> b = new java.util.LinkedHashMap<>(common);
    b.put("nucleon.cluster.roles", "[rollout, reward]");
    b.put("nucleon.cluster.port", String.valueOf(freePort()));
    Map<String, String> c = new java.util.LinkedHashMap<>(b);
    c.put("nucleon.cluster.port", String.valueOf(freePort()));

    RunReporter.Summary summary;
    long weightBytes;
    try (NucleonNode nodeA = NucleonNode.start(TestRuns.settings(a), dir, false, null);
        NucleonNode nodeB = NucleonNode.start(TestRuns.settings(b), dir.resolve("b"), false, null)) {
      NucleonNode nodeC = NucleonNode.start(TestRuns.settings(c), dir.resolve("c"), false, null);
      // let C take part, then take it away in the middle of the run
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (nodeC.metrics().snapshot().actors().stream().noneMatch(x -> x.tokens() > 0)
          && System.nanoTime() < deadline) {
        Thread.sleep(100);
      }
      assertTrue(nodeC.metrics().snapshot().actors().stream().anyMatch(x -> x.tokens() > 0),
          "node C generated before it left");
      nodeC.close();
      summary = nodeA.finished().get(240, TimeUnit.SECONDS);
      weightBytes = nodeA.metrics().snapshot().learner().weightsBytes();
    }
    assertEquals(30, summary.steps());
    assertTrue(weightBytes > 0, "weights were announced to the rollout nodes");
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      // the coordinator gives work only to workers within max-staleness (1) of the learner: a worker whose fetches
      // failed would fall behind, and its groups would be refused, so every step's data shows the fetched versions
      assertTrue(row.get("staleness_max").asInt() <= 1, "a step trained on data of a worker that fell behind: " + row);
    }

    List<Long> consumed = new ArrayList<>();
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      row.get("prompts").forEach(p -> consumed.add(p.asLong()));
    }
    Set<Long> unique = new HashSet<>(consumed);
    assertEquals(consumed.size(), unique.size(), "no prompt was trained twice: " + consumed);
    Set<Long> expected = new HashSet<>();
    DatasetSettings ds = DatasetSettings.from(TestRuns.settings(a).config());
    for (DatasetRow r : Dataset.load(ds).train()) {
      expected.add(r.id());
    }
    assertEquals(90, expected.size());
    assertEquals(expected, unique, "every training prompt of the epoch was consumed exactly once");
  }

  /**
   * With {@code weight-fanout = 1} the learner streams each version to one of the two rollout nodes and that node
   * relays it to the other: the learner's server sends each version once, and the run goes on as without relays.
   */
  @Test
  void withFanOutOneTheLearnerSendsEachVersionOnce(@TempDir Path dir) throws Exception {
    int portA = freePort();
    Map<String, String> common = smallCluster(portA, 8);
    common.put("nucleon.algorithm.max-staleness", "1");
    common.put("nucleon.learner.weight-fanout", "1");
    Map<String, String> a = node(common, "[coordinator, learner]", portA);
    Map<String, String> b = node(common, "[rollout, reward]", freePort());
    Map<String, String> c = node(common, "[rollout, reward]", freePort());
    RunReporter.Summary summary;
    long weightBytes;
    try (NucleonNode nodeA = NucleonNode.start(TestRuns.settings(a), dir, false, null);
        NucleonNode nodeB = NucleonNode.start(TestRuns.settings(b), dir.resolve("b"), false, null);
        NucleonNode nodeC = NucleonNode.start(TestRuns.settings(c), dir.resolve("c"), false, null)) {
      summary = nodeA.finished().get(240, TimeUnit.SECONDS);
      weightBytes = nodeA.metrics().snapshot().learner().weightsBytes();
    }
    assertEquals(8, summary.steps());
    long wire = quickstartWireBytes(false);
    // 8 versions after the first; the first version each worker fetches comes from the learner (a relay is known
    // once it has heard from the learner); with both workers served by the learner it would send 16 or more
    assertTrue(weightBytes > 0 && weightBytes <= 11L * wire, "the learner sent " + weightBytes + " bytes for "
        + "versions of " + wire + " bytes");
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      assertTrue(row.get("staleness_max").asInt() <= 1, "a step trained on data of a worker that fell behind: " + row);
    }
  }

  /**
   * With bfloat16 weights on the wire and deltas on, a rollout node that holds the previous version is sent only
   * the bfloat16 elements that changed (a whole version every 4th): the run goes on as usual and the worker
   * streams fewer bytes than whole versions would take.
   */
  @Test
  void deltasCarryOnlyWhatChangedInBfloat16(@TempDir Path dir) throws Exception {
    int portA = freePort();
    Map<String, String> common = smallCluster(portA, 8);
    common.put("nucleon.rollout.dtype", "bf16");
    common.put("nucleon.learner.weight-delta-every", "4");
    common.put("nucleon.learner.optimizer.lr", "1e-5");
    TwoNodes run = runTwoNodes(common, portA, dir);
    RunReporter.Summary summary = run.summary();
    String scrape = run.scrape();
    assertEquals(8, summary.steps());
    double fetched = metric(scrape, "nucleon_weights_fetched_bytes_total");
    double versions = metric(scrape, "nucleon_weights_fetch_seconds_count");
    long whole = quickstartWireBytes(true);
    assertTrue(versions >= 4, "the worker fetched " + versions + " versions");
    // how many versions go as deltas depends on timing (a worker asks for one only once its generator applied the
    // previous version), so the check is that some did: together they saved at least one version's worth
    assertTrue(fetched <= (versions - 1) * whole, "the worker streamed " + fetched + " bytes for " + versions
        + " versions of " + whole + " bytes each in bf16: no version came as a delta");
    for (JsonNode row : TestRuns.rows(dir, "step")) {
      assertTrue(row.get("staleness_max").asInt() <= 1, "a step trained on data of a worker that fell behind: " + row);
    }
  }

  /**
   * A LoRA run across two nodes: the learner streams each policy version's adapter alone (PEFT's tensors, a tenth
   * of the model here), the rollout node merges it into its own copy of the base, and what it samples scores the
   * same under the learner's base + adapter (the log-prob gap of on-policy steps).
   */
  @Test
  void loraVersionsTravelAsTheAdapterAloneAndTheWorkerComputesTheLearnersModel(@TempDir Path dir)
      throws Exception {
    int portA = freePort();
    Map<String, String> common = smallCluster(portA, 6);
    common.put("nucleon.algorithm.max-staleness", "0");
    common.put("nucleon.run.eval.size", "0");
    common.put("nucleon.learner.lora.rank", "4");
    common.put("nucleon.learner.optimizer.lr", "1e-2");
    TwoNodes run = runTwoNodes(common, portA, dir);
    RunReporter.Summary summary = run.summary();
    String scrape = run.scrape();
    assertEquals(6, summary.steps());
    double fetched = metric(scrape, "nucleon_weights_fetched_bytes_total");
    double versions = metric(scrape, "nucleon_weights_fetch_seconds_count");
    long adapter = adapterWireBytes(4);
    long whole = quickstartWireBytes(false);
    // at staleness 0 steps 2..6 each need the version before them (1..5); version 6, published as the run ends,
    // arrives before the scrape or not depending on timing
    assertTrue(versions >= 5, "the worker fetched " + versions + " versions");
    assertTrue(fetched <= versions * adapter, "the worker streamed " + fetched + " bytes for " + versions
        + " versions; an adapter is " + adapter + " bytes on the wire (the whole model " + whole + ")");
    assertTrue(adapter * 5 < whole, "the adapter is " + adapter + " bytes, the model " + whole);
    TestRuns.assertSamplerMatchesLearner(dir, 5); // the worker samples what base + adapter scores
  }

  /** The end of a run on two nodes: its summary and the rollout node's Prometheus scrape. */
  private record TwoNodes(RunReporter.Summary summary, String scrape) {}

  /** Runs A (coordinator + learner, on {@code portA}) and B (rollout + reward) to the end of the run. */
  private static TwoNodes runTwoNodes(Map<String, String> common, int portA, Path dir) throws Exception {
    Map<String, String> a = node(common, "[coordinator, learner]", portA);
    Map<String, String> b = node(common, "[rollout, reward]", freePort());
    try (NucleonNode nodeA = NucleonNode.start(TestRuns.settings(a), dir, false, null);
        NucleonNode nodeB = NucleonNode.start(TestRuns.settings(b), dir.resolve("b"), false, null)) {
      return new TwoNodes(nodeA.finished().get(240, TimeUnit.SECONDS), nodeB.metrics().scrapeText());
    }
  }

  /** A node's settings: the common keys plus its roles and its port. */
  private static Map<String, String> node(Map<String, String> common, String roles, int port) {
    Map<String, String> n = new java.util.LinkedHashMap<>(common);
    n.put("nucleon.cluster.roles", roles);
    n.put("nucleon.cluster.port", String.valueOf(port));
    return n;
  }

  /** Keys shared by a small run whose seed node is on {@code seedPort}. */
  private static Map<String, String> smallCluster(int seedPort, int steps) {
    Map<String, String> common = TestRuns.small();
    common.put("nucleon.run.total-steps", String.valueOf(steps));
    common.put("nucleon.reward-scorer.scorers", "1");
    common.put("nucleon.cluster.seed-nodes", "[\"pekko://nucleon@127.0.0.1:" + seedPort + "\"]");
    return common;
  }

  /** Bytes of one version of an all-linear LoRA adapter of rank {@code rank} on the quickstart model, in float32. */
  private static long adapterWireBytes(int rank) {
    dev.nucleon.model.Engines.start();
    try (ai.djl.ndarray.NDManager m = ai.djl.ndarray.NDManager.newBaseManager();
        dev.nucleon.model.LlamaModel model = dev.nucleon.model.ModelFiles.read(
            TestRuns.REPO.resolve("conf/models/quickstart-base")).instantiate(m)) {
      model.attachLora(dev.nucleon.model.lora.PeftAdapter.Settings.of(rank, 16, 0, List.of("all-linear")), 1);
      return dev.nucleon.actors.weights.WeightStream.wireBytes(model.policyUpdate().values().stream()
          .map(dev.nucleon.actors.weights.TensorSource::of).toList(), false);
    }
  }

  /** Bytes of one whole version of the quickstart base model on the wire. */
  private static long quickstartWireBytes(boolean bf16) {
    dev.nucleon.model.Engines.start();
    try (ai.djl.ndarray.NDManager m = ai.djl.ndarray.NDManager.newBaseManager();
        dev.nucleon.model.LlamaModel model = dev.nucleon.model.ModelFiles.read(
            TestRuns.REPO.resolve("conf/models/quickstart-base")).instantiate(m)) {
      return dev.nucleon.actors.weights.WeightStream.wireBytes(model.toHostTensors().values().stream()
          .map(dev.nucleon.actors.weights.TensorSource::of).toList(), bf16);
    }
  }
}
