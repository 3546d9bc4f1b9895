package dev.nucleon.actors.chaos;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.actors.monitor.RunHistory;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The chaos suite ({@code ./mvnw -Pchaos verify}): the quickstart as a 3-node cluster of real JVMs on 127.0.0.1
 * ({@code deploy/local/start-cluster.sh}), one node SIGKILLed mid-run ({@code deploy/local/node.sh kill}) and a
 * replacement started 3 s later (the coordinator's with {@code --resume}). Each case asserts that the run finishes,
 * that every prompt of the run's history is trained exactly once, and that no two steps are more than 30 s apart
 * once the replacement is up. It prints the figures: time from the kill to the next step, the longest gap, prompts
 * re-issued.
 */
@Tag("chaos")
class ClusterChaosTest {

  private static final Path REPO = Path.of("..").toAbsolutePath().normalize();
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int STEPS = 60;
  private static final int KILL_AT_STEP = 15;
  private static final int GROUPS_PER_STEP = 32;
  private static final double MAX_GAP_S = 30;

  @ParameterizedTest(name = "SIGKILL node {0}")
  @ValueSource(ints = {2, 3, 1}) // rollout, reward, coordinator + learner
  void aRunSurvivesTheLossOfANode(int node, @TempDir Path dir) throws Exception {
    Path cluster = dir.resolve("cluster");
    Map<String, String> env = clusterEnv(cluster);
    try {
      run(env, "deploy/local/start-cluster.sh", "conf/quickstart.conf", "--detach",
          "-Dnucleon.run.total-steps=" + STEPS, "-Dnucleon.run.checkpoint.every-steps=5",
          "-Dnucleon.run.eval.every-steps=0", "-Dnucleon.run.eval.size=50",
          "-Dnucleon.monitor.dashboard.enabled=false");
      Path metrics = cluster.resolve("run/metrics.jsonl");
      await(() -> stepRows(metrics).size() >= KILL_AT_STEP, 300, "step " + KILL_AT_STEP);
      Instant kill = Instant.now();
      run(env, "deploy/local/node.sh", "kill", String.valueOf(node), cluster.toString());
      Thread.sleep(3000);
      Path log = logOf(cluster, node);
      long logBefore = Files.size(log);
      List<String> start = new ArrayList<>(List.of("deploy/local/node.sh", "start", String.valueOf(node)));
      if (node == 1) {
        start.add("--resume");
      }
      start.add(cluster.toString());
      run(env, start.toArray(String[]::new));
      await(() -> Files.readString(log).substring((int) logBefore).contains("node up with roles"), 120,
          "the replacement of node " + node);
      Instant up = Instant.now();
      await(() -> Files.exists(cluster.resolve("run/summary.json")), 600, "the end of the run");

      JsonNode summary = JSON.readTree(cluster.resolve("run/summary.json").toFile());
      assertEquals(STEPS, summary.get("steps").asInt(), "the run finished all its steps");
      // the run's history: a resume row discards the step rows after its step that the lost node had written
      TreeMap<Integer, JsonNode> history = new TreeMap<>();
      List<Instant> times = new ArrayList<>();
      for (JsonNode row : rows(metrics)) {
        if (row.get("type").asText().equals("resume")) {
          history.tailMap(row.get("step").asInt(), false).clear();
        } else if (row.get("type").asText().equals("step")) {
          history.put(row.get("step").asInt(), row);
          times.add(Instant.parse(row.get("time").asText()));
        }
      }
      assertEquals(STEPS, history.size(), "one step row per version in the history");
      List<Long> prompts = new ArrayList<>();
      history.values().forEach(r -> r.get("prompts").forEach(p -> prompts.add(p.asLong())));
      Set<Long> distinct = new HashSet<>(prompts);
      assertEquals(STEPS * GROUPS_PER_STEP, prompts.size(), "prompts trained");
      assertEquals(prompts.size(), distinct.size(), "no prompt trained twice");
      JsonNode accounting = summary.get("prompts");
      long dropped = 0;
      for (JsonNode n : accounting.get("dropped")) {
        dropped += n.asLong();
      }
      assertEquals(accounting.get("read").asLong(), accounting.get("trained").asLong() + dropped
          + accounting.get("unfinished").asLong(), "every prompt read is trained, dropped or unfinished: " + accounting);
      assertEquals(prompts.size(), accounting.get("trained").asLong(), "the accounting counts the history's prompts");

      double firstAfterKill = Double.NaN;
      double longestGap = 0;
      for (int i = 1; i < times.size(); i++) {
        Instant t = times.get(i);
        if (t.isAfter(kill) && Double.isNaN(firstAfterKill)) {
          firstAfterKill = seconds(kill, t);
        }
        if (t.isAfter(up)) {
          Instant from = times.get(i - 1).isAfter(up) ? times.get(i - 1) : up;
          longestGap = Math.max(longestGap, seconds(from, t));
        }
      }
      String coordinatorLog = Files.readString(logOf(cluster, 1));
      System.out.printf("chaos: node %d killed at step %d: next step %.1f s after the kill (replacement up %.1f s "
              + "after it), longest gap after that %.1f s; re-issued: %d prompt group(s) from a lost worker; summary "
              + "%s%n", node, KILL_AT_STEP, firstAfterKill, seconds(kill, up), longestGap,
          reissued(coordinatorLog), summary.toString());
      assertTrue(longestGap <= MAX_GAP_S, "longest gap between steps after the replacement was up: " + longestGap);
    } finally {
      run(env, "deploy/local/stop-cluster.sh", cluster.toString());
    }
  }

  /**
   * A LoRA run on three JVMs (deploy/local): the learner's node streams each policy version's adapter alone to the
   * rollout node, which merges it into its base; every step's batch, sampled there, scores the same under the
   * learner's base + adapter.
   */
  @Test
  void loraVersionsMoveAsAdaptersBetweenJvms(@TempDir Path dir) throws Exception {
    Path cluster = dir.resolve("cluster");
    int steps = 20;
    Map<String, String> env = clusterEnv(cluster);
    try {
      run(env, "deploy/local/start-cluster.sh", "conf/quickstart-lora.conf", "--detach",
          "-Dnucleon.run.total-steps=" + steps, "-Dnucleon.algorithm.max-staleness=0",
          "-Dnucleon.run.eval.every-steps=0", "-Dnucleon.run.eval.size=50",
          "-Dnucleon.monitor.dashboard.enabled=false",
          // float32 on every machine (the quickstart's learner is auto): the agreement checked below is float32's
          "-Dnucleon.learner.dtype=f32");
      await(() -> Files.exists(cluster.resolve("run/summary.json")), 600, "the end of the run");
      List<JsonNode> history = stepRows(cluster.resolve("run/metrics.jsonl"));
      assertEquals(steps, history.size(), "step rows");
      for (JsonNode row : history) {
        assertTrue(row.has("logprob_gap_max") && row.get("logprob_gap_max").asDouble() < 1e-3, "step "
            + row.get("step") + ": the rollout node's log-probs differ from the learner's base + adapter: " + row);
      }
      // "policy version N: 0.2 MB (f32) streamed in ..." on the rollout node: the adapter (161 KB), not the model
      var m = java.util.regex.Pattern.compile("policy version (\\d+): ([0-9.]+) MB").matcher(
          Files.readString(logOf(cluster, 2)));
      int versions = 0;
      while (m.find()) {
        versions++;
        double mb = Double.parseDouble(m.group(2));
        assertTrue(mb <= 0.2, "policy version " + m.group(1) + " took " + mb + " MB: more than the adapter");
      }
      assertTrue(versions >= steps - 1, "versions the rollout node streamed: " + versions);
    } finally {
      run(env, "deploy/local/stop-cluster.sh", cluster.toString());
    }
  }

  /** The environment of deploy/local's scripts for a cluster in {@code cluster} on three free ports. */
  private static Map<String, String> clusterEnv(Path cluster) throws IOException {
    return Map.of("NUCLEON_CLUSTER_DIR", cluster.toString(), "NUCLEON_BASE_PORT", String.valueOf(freePorts()),
        "NUCLEON_JAR", REPO.resolve("actors/target/nucleon.jar").toString());
  }

  private static double seconds(Instant a, Instant b) {
    return (b.toEpochMilli() - a.toEpochMilli()) / 1000.0;
  }

  /** The counts in the coordinator's "N prompt group(s) go back to pending" lines. */
  private static int reissued(String log) {
    int n = 0;
    var m = java.util.regex.Pattern.compile("; (\\d+) prompt group\\(s\\) go back to pending").matcher(log);
    while (m.find()) {
      n += Integer.parseInt(m.group(1));
    }
    return n;
  }

  private static Path logOf(Path cluster, int node) {
    return cluster.resolve(switch (node) {
      case 1 -> "node1-coordinator-learner.log";
      case 2 -> "node2-rollout.log";
      default -> "node3-reward.log";
    });
  }

  /**
   * The complete rows of the live metrics file: the learner may be writing its last line while this reads (a line
   * longer than the writer's buffer reaches the file in pieces), so a line without its newline is left for the next
   * poll; a complete line that is not a JSON object fails the test.
   */
  private static List<JsonNode> rows(Path metrics) {
    RunHistory.Chunk chunk = RunHistory.read(metrics, 0, Integer.MAX_VALUE);
    assertEquals(0, chunk.skipped(), "malformed lines in " + metrics);
    return new ArrayList<>(chunk.rows());
  }

  private static List<JsonNode> stepRows(Path metrics) {
    return rows(metrics).stream().filter(r -> r.get("type").asText().equals("step")).toList();
  }

  /** Three consecutive free ports (the cluster's nodes take BASE, BASE + 1, BASE + 2). */
  private static int freePorts() throws IOException {
    for (int attempt = 0; attempt < 50; attempt++) {
      // below the kernel's ephemeral range, where no other socket of this JVM can take it first (TestPorts)
      int base = dev.nucleon.actors.TestPorts.free();
      if (base > 65000) {
        continue;
      }
      boolean free = true;
      for (int p = base; p < base + 3 && free; p++) {
        try (ServerSocket s = new ServerSocket(p)) {
          s.setReuseAddress(true);
        } catch (IOException e) {
          free = false;
        }
      }
      if (free) {
        return base;
      }
    }
    throw new IOException("no three consecutive free ports");
  }

  private static void run(Map<String, String> env, String... command) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(command).directory(REPO.toFile()).redirectErrorStream(true);
    pb.environment().putAll(env);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes());
    if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
      fail(String.join(" ", command) + " failed:\n" + out);
    }
  }

  private interface Check {
    boolean ok() throws Exception;
  }

  private static void await(Check check, int seconds, String what) throws Exception {
    long deadline = System.nanoTime() + seconds * 1_000_000_000L;
    while (!check.ok()) {
      if (System.nanoTime() > deadline) {
        fail("waited " + seconds + " s for " + what);
      }
      Thread.sleep(200);
    }
  }
}
