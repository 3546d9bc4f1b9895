package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.actors.NucleonNode;
import dev.nucleon.actors.RunSettings;
import dev.nucleon.actors.run.RunConfig;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.apache.pekko.cluster.Cluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * A short real run of the quickstart settings (one JVM, every role) with monitoring on: its metrics agree with its
 * own metrics.jsonl; a real Prometheus server scrapes the node while it runs (target up, rollout token counter
 * increasing between scrapes); headless Chromium finds the run's data in the dashboard charts (screenshot kept in
 * target/test-artifacts/dashboard-run.png). The Prometheus and Chromium parts are skipped when those programs are
 * not installed (.ci/run installs them).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MonitoredRunTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private static final int STEPS = 50;

  private Path tmp;
  private Path runDir;
  private Process prometheus;
  private String prometheusApi;
  private NucleonNode node;
  private MetricsServer metricsServer;
  private DashboardServer dashboard;

  @BeforeAll
  void run() throws Exception {
    Path root = Path.of("..").toAbsolutePath().normalize();
    assumeTrue(Files.isRegularFile(root.resolve("conf/quickstart.conf")), "needs the repository's conf/");
    tmp = Files.createTempDirectory("nucleon-monitored-run");
    runDir = Files.createDirectories(tmp.resolve("run"));

    int metricsPort = ExternalTools.freePort();
    Optional<Path> prom = ExternalTools.find("prometheus");
    if (prom.isPresent()) {
      int port = ExternalTools.freePort();
      Path config = tmp.resolve("prometheus.yml");
      Files.writeString(config, """
          global:
            scrape_interval: 500ms
          scrape_configs:
            - job_name: nucleon
              honor_labels: true
              static_configs:
                - targets: ["127.0.0.1:%d"]
          """.formatted(metricsPort));
      prometheus = new ProcessBuilder(prom.get().toString(), "--config.file=" + config,
          "--storage.tsdb.path=" + tmp.resolve("prom-data"), "--web.listen-address=127.0.0.1:" + port)
          .redirectErrorStream(true).redirectOutput(tmp.resolve("prometheus.log").toFile()).start();
      prometheusApi = "http://127.0.0.1:" + port + "/api/v1/";
      PrometheusScrapeTest.waitFor(Duration.ofSeconds(60), () -> HTTP.send(HttpRequest.newBuilder(
              URI.create("http://127.0.0.1:" + port + "/-/ready")).build(), HttpResponse.BodyHandlers.discarding())
          .statusCode() == 200 ? Boolean.TRUE : null, tmp.resolve("prometheus.log"));
    }

    Map<String, String> overrides = new LinkedHashMap<>();
    overrides.put("nucleon.model.path", root.resolve("conf/models/quickstart-base").toString());
    overrides.put("nucleon.run.total-steps", Integer.toString(STEPS));
    overrides.put("nucleon.run.eval.size", "20");
    overrides.put("nucleon.dataset.eval.size", "20");
    overrides.put("nucleon.run.dir", tmp.toString());
    overrides.put("nucleon.monitor.metrics.enabled", "true");
    overrides.put("nucleon.monitor.metrics.port", Integer.toString(metricsPort));
    overrides.put("nucleon.monitor.dashboard.port", "0");
    // float32 on every machine (the quickstart's auto is bf16 where the CPU has bfloat16 units): the same numerics,
    // and a run about as long everywhere, long enough for Prometheus to scrape it while it runs (STEPS: about 8 s
    // here, 16 scrapes that saw the counter grow; a run of 20 steps once ended before the first scrape)
    overrides.put("nucleon.learner.dtype", "f32");
    var config = RunConfig.load(root.resolve("conf/quickstart.conf"), overrides);
    MonitorSettings monitor = MonitorSettings.from(config);
    long start = System.nanoTime();
    List<String> progress = new ArrayList<>();
    node = NucleonNode.start(RunSettings.from(config), runDir, false,
        RunProgress.withLines("test", STEPS, 0, Duration.ofSeconds(1), progress::add, System::nanoTime));
    // the node serves /metrics and the dashboard itself (nucleon.monitor); the test uses what it started
    metricsServer = node.monitoring().metricsServer().orElseThrow();
    dashboard = node.monitoring().dashboard().orElseThrow();
    node.finished().get(180, TimeUnit.SECONDS);
    Thread.sleep(1500); // one more scrape after the last step
  }

  @AfterAll
  void stop() throws Exception {
    if (node != null) {
      node.close();
    }
    if (prometheus != null) {
      prometheus.destroy();
      if (!prometheus.waitFor(10, TimeUnit.SECONDS)) {
        prometheus.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    }
    if (tmp != null) { // the run, Prometheus' data and the browser profiles: best effort, never failing the class
      try (var paths = Files.walk(tmp)) {
        for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
          try {
            Files.deleteIfExists(p);
          } catch (java.io.IOException e) {
            System.err.println("could not remove " + p + ": " + e);
          }
        }
      }
    }
  }

  private List<ObjectNode> stepRows() {
    return RunHistory.readAll(runDir.resolve(RunHistory.FILE)).stream()
        .filter(r -> r.path("type").asText("step").equals("step")).toList();
  }

  @Test
  void metricsAgreeWithTheRunsJsonl() {
    List<ObjectNode> rows = stepRows();
    NodeSnapshot s = node.metrics().snapshot();
    // steps equal: one row per learner step, each step once
    assertEquals(s.learner().steps(), rows.size(), "learner steps counter vs step rows");
    assertEquals(rows.size(), rows.stream().map(r -> r.get("step").asInt()).distinct().count(), "steps once");
    // tokens counted once: the learner trained on the tokens the rows report; the workers generated at least those
    long trained = rows.stream().mapToLong(r -> r.path("completion_tokens").asLong()).sum();
    assertTrue(trained > 0);
    assertEquals(trained, s.learner().tokens(), "learner tokens counter vs sum of completion_tokens");
    long generated = s.actors().stream().mapToLong(NodeSnapshot.Actor::tokens).sum();
    long trajectories = s.actors().stream().mapToLong(NodeSnapshot.Actor::trajectories).sum();
    long sampled = rows.stream().mapToLong(r -> r.path("samples").asLong()).sum();
    assertTrue(generated >= trained, generated + " generated < " + trained + " trained");
    assertTrue(trajectories >= sampled, trajectories + " trajectories < " + sampled + " trained samples");
    // the Prometheus exposition says the same
    String text = node.metrics().scrapeText();
    assertTrue(text.contains("nucleon_learner_steps_total{node=\"" + s.node() + "\",role=\"learner\"} "
        + (double) rows.size()), text);
    assertTrue(text.contains("nucleon_learner_tokens_total{node=\"" + s.node() + "\",role=\"learner\"} "
        + (double) trained), text);
    // every generated token took a decoded row-step; a static batch's finished rows take more
    double rolloutTokens = MonitorFixtures.metric(text, "nucleon_rollout_tokens_total");
    double rowSteps = MonitorFixtures.metric(text, "nucleon_rollout_row_steps_total");
    assertTrue(rolloutTokens > 0 && rowSteps >= rolloutTokens, rowSteps + " row-steps for " + rolloutTokens
        + " generated tokens");
    assertTrue(s.stalenessMax() <= 1, "max-staleness = 1 in the quickstart");
    // and the run's plots can be drawn
    List<Path> plots = RunPlots.write(runDir);
    assertTrue(plots.stream().anyMatch(p -> p.getFileName().toString().equals("reward.png")), plots.toString());
  }

  @Test
  void everyTrainedTrajectoryHasItsStalenessRecordedAndStepsMatchTheConfig() {
    List<ObjectNode> rows = stepRows();
    NodeSnapshot s = node.metrics().snapshot();
    long sampled = rows.stream().mapToLong(r -> r.path("samples").asLong()).sum();
    assertEquals(STEPS, rows.size(), "total-steps learner steps");
    // admitted trajectories have their staleness recorded; with max-staleness 1 a batch more may be admitted than
    // trained by the end
    long recorded = s.staleness().values().stream().mapToLong(Long::longValue).sum();
    assertTrue(recorded >= sampled, recorded + " staleness records for " + sampled + " trained trajectories");
  }

  @Test
  void prometheusScrapedTheRunningNode() throws Exception {
    assumeTrue(prometheus != null, "prometheus is not installed (apt-get install prometheus)");
    Path log = tmp.resolve("prometheus.log");
    JsonNode target = PrometheusScrapeTest.waitFor(Duration.ofSeconds(20), () -> {
      JsonNode t = get(prometheusApi + "targets").at("/data/activeTargets/0");
      return t.path("health").asText().equals("up") ? t : null;
    }, log);
    assertEquals("127.0.0.1:" + metricsServer.port(), target.at("/labels/instance").asText());
    // the rollout token counter as Prometheus scraped it during the run: increasing between scrapes
    String query = "nucleon_rollout_tokens_total[5m]";
    JsonNode series = get(prometheusApi + "query?query=" + URLEncoder.encode(query,
        StandardCharsets.UTF_8)).at("/data/result/0/values");
    assertTrue(series.size() >= 2, "scrapes of the token counter: " + series + " (" + query + ")");
    double first = series.get(0).get(1).asDouble();
    double last = series.get(series.size() - 1).get(1).asDouble();
    assertTrue(last > first, "token counter " + first + " -> " + last + ": " + series);
    for (int i = 1; i < series.size(); i++) {
      assertTrue(series.get(i).get(1).asDouble() >= series.get(i - 1).get(1).asDouble(), "never decreases");
    }
    // what Prometheus last saw is what the node counted
    double counted = node.metrics().snapshot().actors().stream()
        .filter(a -> a.role().equals(NucleonMetrics.ROLE_ROLLOUT)).mapToLong(NodeSnapshot.Actor::tokens).sum();
    assertEquals(counted, last, 0.0);
  }

  @Test
  void dashboardChartsHoldTheRunsData() throws Exception {
    Optional<Path> chromium = ExternalTools.find("chromium", "chromium-browser", "google-chrome");
    assumeTrue(chromium.isPresent(), "chromium is not installed (apt-get install chromium)");
    Path artifacts = Files.createDirectories(Path.of("target", "test-artifacts"));
    String dom = chromium(chromium.get(), tmp.resolve("profile-dom"), "--dump-dom");
    Files.writeString(artifacts.resolve("dashboard-run-dom.html"), dom, StandardCharsets.UTF_8);
    Map<String, Integer> points = new LinkedHashMap<>();
    Matcher m = Pattern.compile("<canvas id=\"(chart-[a-z-]+)\"[^>]*data-points=\"(\\d+)\"").matcher(dom);
    while (m.find()) {
      points.put(m.group(1), Integer.parseInt(m.group(2)));
    }
    int steps = stepRows().size();
    assertTrue(points.getOrDefault("chart-reward", 0) >= steps, "reward chart " + points);
    assertEquals(steps, points.getOrDefault("chart-step-time", 0), "step time chart " + points);
    assertEquals(steps, points.getOrDefault("chart-staleness", 0), "staleness chart " + points);
    assertEquals(steps, points.getOrDefault("chart-tokens", 0), "tokens per step of rollout-0 " + points);
    assertTrue(points.getOrDefault("chart-busy", 0) >= 2, "busy chart " + points);
    assertTrue(dom.contains("rollout-0") && dom.contains("Up"), "actors and members tables");
    Path shot = artifacts.resolve("dashboard-run.png");
    Files.deleteIfExists(shot);
    chromium(chromium.get(), tmp.resolve("profile-shot"), "--screenshot=" + shot.toAbsolutePath());
    assertNotNull(ImageIO.read(shot.toFile()), "screenshot decodes");
  }

  private String chromium(Path chromium, Path profile, String action) throws Exception {
    List<String> cmd = List.of(chromium.toString(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + profile,
        "--window-size=1400,1600", "--virtual-time-budget=6000", action, dashboard.url());
    Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    byte[] out = p.getInputStream().readAllBytes();
    if (!p.waitFor(90, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("chromium did not finish: " + cmd);
    }
    return new String(out, StandardCharsets.UTF_8);
  }

  private static JsonNode get(String url) throws Exception {
    return JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build(),
        HttpResponse.BodyHandlers.ofString()).body());
  }
}
