package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real Prometheus server (Debian's {@code prometheus}; skipped when it is not installed) scrapes a node's
 * {@code /metrics}: its API reports the target up and the rollout token counter increasing between two scrapes.
 */
class PrometheusScrapeTest {

  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path dir;

  @Test
  void prometheusScrapesTheNodeAndSeesTokensIncrease() throws Exception {
    Optional<Path> prometheus = ExternalTools.find("prometheus");
    assumeTrue(prometheus.isPresent(), "prometheus is not installed (apt-get install prometheus)");

    NucleonMetrics metrics = new NucleonMetrics("node-1", List.of("rollout", "learner"));
    ScheduledExecutorService generator = Executors.newSingleThreadScheduledExecutor();
    Process server = null;
    try (MetricsServer node = MetricsServer.start(metrics, new MonitorSettings.Endpoint(true, "127.0.0.1", 0))) {
      // a rollout worker at work: 64 tokens every 50 ms
      generator.scheduleAtFixedRate(() -> {
        metrics.rolloutTokens("rollout-0", 64);
        metrics.rolloutTrajectories("rollout-0", 1);
      }, 0, 50, TimeUnit.MILLISECONDS);

      int port = ExternalTools.freePort();
      Path config = dir.resolve("prometheus.yml");
      Files.writeString(config, """
          global:
            scrape_interval: 1s
          scrape_configs:
            - job_name: nucleon
              honor_labels: true
              static_configs:
                - targets: ["127.0.0.1:%d"]
          """.formatted(node.port()));
      server = new ProcessBuilder(prometheus.get().toString(), "--config.file=" + config,
          "--storage.tsdb.path=" + dir.resolve("data"), "--web.listen-address=127.0.0.1:" + port)
          .redirectErrorStream(true).redirectOutput(dir.resolve("prometheus.log").toFile()).start();
      String api = "http://127.0.0.1:" + port + "/api/v1/";

      JsonNode target = waitFor(Duration.ofSeconds(60), () -> {
        JsonNode t = get(api + "targets").at("/data/activeTargets/0");
        return t.path("health").asText().equals("up") ? t : null;
      }, dir.resolve("prometheus.log"));
      assertEquals("127.0.0.1:" + node.port(), target.at("/labels/instance").asText());

      String query = "nucleon_rollout_tokens_total{actor=\"rollout-0\",node=\"node-1\",role=\"rollout\"}";
      double first = waitFor(Duration.ofSeconds(30), () -> value(api, query), dir.resolve("prometheus.log"));
      double second = waitFor(Duration.ofSeconds(30), () -> {
        Double v = value(api, query);
        return v != null && v > first ? v : null;
      }, dir.resolve("prometheus.log"));
      assertTrue(second > first && first > 0, first + " then " + second);
      // and the rate Prometheus computes is about what the worker does (1280 tokens/s)
      Double rate = waitFor(Duration.ofSeconds(30), () -> value(api, "rate(" + query + "[5s])"),
          dir.resolve("prometheus.log"));
      assertTrue(rate > 300 && rate < 5000, "rate " + rate);
    } finally {
      generator.shutdownNow();
      if (server != null) {
        server.destroy();
        if (!server.waitFor(10, TimeUnit.SECONDS)) {
          server.destroyForcibly();
        }
      }
    }
  }

  private static Double value(String api, String query) throws Exception {
    JsonNode r = get(api + "query?query=" + URLEncoder.encode(query, StandardCharsets.UTF_8)).at("/data/result");
    return r.size() == 1 ? r.get(0).get("value").get(1).asDouble() : null;
  }

  private static JsonNode get(String url) throws Exception {
    HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5))
        .build(), HttpResponse.BodyHandlers.ofString());
    return JSON.readTree(r.body());
  }

  interface Probe<T> {
    T get() throws Exception;
  }

  static <T> T waitFor(Duration limit, Probe<T> probe, Path log) throws Exception {
    long end = System.nanoTime() + limit.toNanos();
    Exception last = null;
    while (System.nanoTime() < end) {
      try {
        T t = probe.get();
        if (t != null) {
          return t;
        }
      } catch (java.io.IOException e) {
        last = e; // not listening yet
      }
      Thread.sleep(250);
    }
    String tail = Files.exists(log) ? Files.readString(log) : "";
    throw new AssertionError("timed out after " + limit + (last == null ? "" : " (" + last + ")") + "\n"
        + tail.substring(Math.max(0, tail.length() - 3000)));
  }
}
