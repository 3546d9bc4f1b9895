package dev.nucleon.actors.monitor;

import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves one node's {@link NucleonMetrics} as Prometheus text on {@code http://HOST:PORT/metrics} (the Prometheus
 * client's own HTTP server: a JDK HttpServer on two daemon threads, nothing to do with the actor system, so a busy
 * dispatcher never delays a scrape). Also answers {@code /-/healthy}. Close it at shutdown.
 */
public final class MetricsServer implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(MetricsServer.class);

  private final HTTPServer server;
  private final ExecutorService executor;
  private final String host;

  private MetricsServer(HTTPServer server, ExecutorService executor, String host) {
    this.server = server;
    this.executor = executor;
    this.host = host;
  }

  /**
   * Starts the endpoint of {@code settings} (use {@link #startIfEnabled} to honour {@code enabled}).
   *
   * @throws UncheckedIOException when the port cannot be bound (the message names host and port)
   */
  public static MetricsServer start(NucleonMetrics metrics, MonitorSettings.Endpoint settings) {
    AtomicInteger n = new AtomicInteger();
    ExecutorService executor = Executors.newFixedThreadPool(2, r -> {
      Thread t = new Thread(r, "nucleon-metrics-http-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    try {
      HTTPServer server = HTTPServer.builder()
          .hostname(settings.host())
          .port(settings.port())
          .registry(metrics.registry())
          .executorService(executor)
          .buildAndStart();
      MetricsServer s = new MetricsServer(server, executor, settings.host());
      LOG.info("Prometheus metrics of node {} on {}", metrics.node(), s.url());
      return s;
    } catch (IOException e) {
      executor.shutdownNow();
      throw new UncheckedIOException("cannot serve metrics on " + settings.host() + ":" + settings.port()
          + " (nucleon.monitor.metrics): " + e.getMessage(), e);
    }
  }

  /** Starts the endpoint when {@code settings.enabled()}; empty otherwise. */
  public static Optional<MetricsServer> startIfEnabled(NucleonMetrics metrics, MonitorSettings.Endpoint settings) {
    return settings.enabled() ? Optional.of(start(metrics, settings)) : Optional.empty();
  }

  /** The bound port (the real one when the configured port was 0). */
  public int port() {
    return server.getPort();
  }

  /** The metrics URL, e.g. {@code http://127.0.0.1:9464/metrics}. */
  public String url() {
    String h = host.contains(":") ? "[" + host + "]" : host;
    return "http://" + h + ":" + port() + "/metrics";
  }

  /** The bound address. */
  public InetSocketAddress address() {
    return new InetSocketAddress(host, port());
  }

  @Override
  public void close() {
    server.close();
    executor.shutdownNow();
  }
}
