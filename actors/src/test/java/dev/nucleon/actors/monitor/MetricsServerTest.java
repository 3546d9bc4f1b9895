package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import org.junit.jupiter.api.Test;

class MetricsServerTest {

  private static final HttpClient HTTP = HttpClient.newHttpClient();

  @Test
  void servesPrometheusTextOnLoopback() throws Exception {
    NucleonMetrics metrics = new NucleonMetrics("n1", List.of("rollout"));
    try (MetricsServer server = MetricsServer.start(metrics, new MonitorSettings.Endpoint(true, "127.0.0.1", 0))) {
      assertTrue(server.port() > 0);
      assertEquals("127.0.0.1", server.address().getHostString());
      metrics.rolloutTokens("rollout-0", 10);
      HttpResponse<String> r1 = HTTP.send(HttpRequest.newBuilder(URI.create(server.url())).build(),
          HttpResponse.BodyHandlers.ofString());
      assertEquals(200, r1.statusCode());
      assertTrue(r1.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"), r1.headers().toString());
      assertTrue(r1.body().contains("nucleon_rollout_tokens_total{actor=\"rollout-0\",node=\"n1\",role=\"rollout\"} 10.0"),
          r1.body());
      metrics.rolloutTokens("rollout-0", 5);
      String again = HTTP.send(HttpRequest.newBuilder(URI.create(server.url())).build(),
          HttpResponse.BodyHandlers.ofString()).body();
      assertTrue(again.contains("nucleon_rollout_tokens_total{actor=\"rollout-0\",node=\"n1\",role=\"rollout\"} 15.0"));
      // the port is taken: a second server on it fails with the host and port in the message
      UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> MetricsServer.start(metrics,
          new MonitorSettings.Endpoint(true, "127.0.0.1", server.port())));
      assertTrue(e.getMessage().contains("127.0.0.1:" + server.port()), e.getMessage());
    }
  }

  @Test
  void disabledByDefaultAndBoundToLoopback() {
    MonitorSettings s = MonitorSettings.from(ConfigFactory.load());
    assertEquals(false, s.metrics().enabled());
    assertEquals("127.0.0.1", s.metrics().host());
    assertEquals("127.0.0.1", s.dashboard().host());
    assertTrue(MetricsServer.startIfEnabled(new NucleonMetrics("n", List.of()), s.metrics()).isEmpty());
  }
}
