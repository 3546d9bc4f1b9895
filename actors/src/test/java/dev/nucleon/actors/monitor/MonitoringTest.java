package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class MonitoringTest {

  private static ActorSystem<Void> system;

  @BeforeAll
  static void startSystem() {
    system = ActorSystem.create(Behaviors.empty(), "monitoring-test",
        ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = WARNING")
            .withFallback(ConfigFactory.load()));
  }

  @AfterAll
  static void stopSystem() {
    system.terminate();
  }

  private static MonitorSettings settings(boolean metrics, int metricsPort, boolean dashboard, int dashboardPort) {
    MonitorSettings d = MonitorSettings.from(ConfigFactory.defaultReference());
    return new MonitorSettings(new MonitorSettings.Endpoint(metrics, "127.0.0.1", metricsPort),
        new MonitorSettings.Endpoint(dashboard, "127.0.0.1", dashboardPort), d.rateWindow(), d.progress(),
        d.progressLogInterval(), d.plots());
  }

  @Test
  void startsWhatIsEnabledAndServesIt() throws Exception {
    NucleonMetrics metrics = new NucleonMetrics("n", List.of("coordinator"));
    try (Monitoring m = Monitoring.start(system, settings(true, 0, true, 0), metrics, true,
        () -> CompletableFuture.completedFuture(MonitorFixtures.twoNodeStatus()), () -> null)) {
      HttpClient http = HttpClient.newHttpClient();
      assertEquals(200, http.send(HttpRequest.newBuilder(URI.create(m.metricsUrl().orElseThrow())).build(),
          HttpResponse.BodyHandlers.discarding()).statusCode());
      assertEquals(200, http.send(HttpRequest.newBuilder(URI.create(m.dashboardUrl().orElseThrow() + "api/status"))
          .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.discarding()).statusCode());
    }
    // a node without the coordinator serves no dashboard; nothing enabled: nothing runs
    try (Monitoring m = Monitoring.start(system, settings(false, 0, true, 0), metrics, false, null, () -> null)) {
      assertTrue(m.metricsUrl().isEmpty() && m.dashboardUrl().isEmpty());
    }
  }

  @Test
  void aTakenPortLeavesThatEndpointOffWithoutFailing() throws Exception {
    NucleonMetrics metrics = new NucleonMetrics("n", List.of("coordinator"));
    try (ServerSocket taken = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        Monitoring m = Monitoring.start(system, settings(true, taken.getLocalPort(), true, taken.getLocalPort()),
            metrics, true, () -> CompletableFuture.completedFuture(MonitorFixtures.twoNodeStatus()), () -> null)) {
      assertTrue(m.metricsUrl().isEmpty());
      assertTrue(m.dashboardUrl().isEmpty());
    }
  }
}
