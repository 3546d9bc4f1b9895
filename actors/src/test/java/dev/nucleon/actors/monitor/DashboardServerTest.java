package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DashboardServerTest {

  private static final HttpClient HTTP = HttpClient.newHttpClient();
  private static final ObjectMapper JSON = new ObjectMapper();
  private static ActorSystem<Void> system;

  @TempDir
  Path runDir;

  @BeforeAll
  static void startSystem() {
    system = ActorSystem.create(Behaviors.empty(), "dashboard-test",
        ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = WARNING")
            .withFallback(ConfigFactory.load()));
  }

  @AfterAll
  static void stopSystem() {
    system.terminate();
  }

  private static HttpResponse<String> get(DashboardServer s, String path) throws Exception {
    return HTTP.send(HttpRequest.newBuilder(URI.create(s.url() + path)).timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  @Test
  void servesPageBundledChartLibraryStatusHistoryAndMetrics() throws Exception {
    NucleonMetrics metrics = new NucleonMetrics("n0", List.of("coordinator"));
    metrics.policyVersion(7);
    AtomicBoolean fail = new AtomicBoolean();
    DashboardServer server = DashboardServer.start(system, new MonitorSettings.Endpoint(true, "127.0.0.1", 0),
        () -> fail.get() ? CompletableFuture.failedFuture(new IllegalStateException("coordinator not up"))
            // as the coordinator sends it: without the run folder, which the dashboard's node knows
            : CompletableFuture.completedFuture(MonitorFixtures.twoNodeStatus().withRunDir("")),
        () -> runDir, metrics).toCompletableFuture().get(20, TimeUnit.SECONDS);
    try {
      assertEquals("127.0.0.1", server.address().getAddress().getHostAddress());
      HttpResponse<String> page = get(server, "");
      assertEquals(200, page.statusCode());
      assertTrue(page.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
      assertTrue(page.body().contains("vendor/chart.umd.min.js") && page.body().contains("chart-reward"));
      assertTrue(!page.body().contains("http://") && !page.body().contains("https://"),
          "the page must not load anything from elsewhere");
      HttpResponse<String> lib = get(server, "vendor/chart.umd.min.js");
      assertEquals(200, lib.statusCode());
      assertTrue(lib.body().length() > 100_000 && lib.body().contains("Chart.js"), "Chart.js bundle in the jar");
      assertEquals(200, get(server, "app.js").statusCode());
      assertEquals(200, get(server, "app.css").statusCode());
      assertEquals(404, get(server, "nope.txt").statusCode());

      HttpResponse<String> status = get(server, "api/status");
      assertEquals(200, status.statusCode());
      assertTrue(status.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
      JsonNode s = JSON.readTree(status.body());
      assertEquals(3, s.at("/run/policy_version").asInt());
      assertEquals(runDir.toAbsolutePath().toString(), s.at("/run/dir").asText(), "the run folder, not empty");
      assertEquals(2, s.get("members").size());
      fail.set(true);
      HttpResponse<String> down = get(server, "api/status");
      assertEquals(503, down.statusCode());
      assertEquals("coordinator not up", JSON.readTree(down.body()).get("error").asText());

      JsonNode empty = JSON.readTree(get(server, "api/history").body());
      assertEquals(0, empty.get("rows").size());
      Path f = runDir.resolve("metrics.jsonl");
      Files.writeString(f, "{\"step\":1,\"reward_mean\":0.1,\"tokens_per_s\":{\"rollout-0\":900}}\n"
          + "{\"step\":2,\"reward_mean\":0.2}\n", StandardCharsets.UTF_8);
      JsonNode h = JSON.readTree(get(server, "api/history?from=0").body());
      assertEquals(2, h.get("rows").size());
      assertEquals(900, h.at("/rows/0/tokens_per_s/rollout-0").asInt());
      long next = h.get("next").asLong();
      Files.writeString(f, "{\"step\":3,\"reward_mean\":0.3}\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
      JsonNode h2 = JSON.readTree(get(server, "api/history?from=" + next).body());
      assertEquals(1, h2.get("rows").size());
      assertEquals(3, h2.at("/rows/0/step").asInt());
      assertEquals(400, get(server, "api/history?from=abc").statusCode());

      HttpResponse<String> m = get(server, "metrics");
      assertEquals(200, m.statusCode());
      assertTrue(m.body().contains("nucleon_policy_version{node=\"n0\",role=\"learner\"} 7.0"), m.body());
    } finally {
      server.stop(Duration.ofSeconds(2)).toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
  }
}
