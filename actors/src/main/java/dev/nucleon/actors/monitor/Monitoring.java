package dev.nucleon.actors.monitor;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The monitoring of one node in one call: starts {@code /metrics} when {@code nucleon.monitor.metrics.enabled}, and
 * on the coordinator's node the dashboard when {@code nucleon.monitor.dashboard.enabled}. Monitoring never stops a
 * run: a port that cannot be bound is logged as a warning and that endpoint stays off. {@link #close()} stops both.
 */
public final class Monitoring implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(Monitoring.class);

  private final MetricsServer metricsServer;
  private final DashboardServer dashboard;

  private Monitoring(MetricsServer metricsServer, DashboardServer dashboard) {
    this.metricsServer = metricsServer;
    this.dashboard = dashboard;
  }

  /**
   * Starts the node's endpoints.
   *
   * @param system the node's actor system (serves the dashboard)
   * @param settings {@code MonitorSettings.from(config)}
   * @param metrics the node's metrics
   * @param dashboardNode true on the node that runs the coordinator (the dashboard is served there only)
   * @param status asks the coordinator for the cluster status (used by the dashboard; may be null when
   *     {@code dashboardNode} is false)
   * @param runDir the run directory (its metrics.jsonl is the dashboard's history; may return null)
   */
  public static Monitoring start(ClassicActorSystemProvider system, MonitorSettings settings, NucleonMetrics metrics,
      boolean dashboardNode, Supplier<CompletionStage<ClusterStatus>> status, Supplier<Path> runDir) {
    MetricsServer m = null;
    if (settings.metrics().enabled()) {
      try {
        m = MetricsServer.start(metrics, settings.metrics());
      } catch (RuntimeException e) {
        LOG.warn("Prometheus metrics endpoint off: {}", e.getMessage());
      }
    }
    DashboardServer d = null;
    if (dashboardNode && settings.dashboard().enabled()) {
      try {
        d = DashboardServer.start(system, settings.dashboard(), status, runDir, metrics).toCompletableFuture()
            .get(30, TimeUnit.SECONDS);
      } catch (Exception e) {
        Throwable cause = e.getCause() != null ? e.getCause() : e;
        LOG.warn("dashboard off: cannot serve on {}:{} (nucleon.monitor.dashboard): {}", settings.dashboard().host(),
            settings.dashboard().port(), cause.getMessage());
      }
    }
    return new Monitoring(m, d);
  }

  /** The {@code /metrics} URL, when that endpoint runs. */
  public Optional<String> metricsUrl() {
    return Optional.ofNullable(metricsServer).map(MetricsServer::url);
  }

  /** The dashboard's URL, when it runs. */
  public Optional<String> dashboardUrl() {
    return Optional.ofNullable(dashboard).map(DashboardServer::url);
  }

  /** The metrics server, when it runs. */
  public Optional<MetricsServer> metricsServer() {
    return Optional.ofNullable(metricsServer);
  }

  /** The dashboard server, when it runs. */
  public Optional<DashboardServer> dashboard() {
    return Optional.ofNullable(dashboard);
  }

  /** Stops the endpoints (the dashboard gets up to 2 s to finish open requests). */
  @Override
  public void close() {
    if (metricsServer != null) {
      metricsServer.close();
    }
    if (dashboard != null) {
      try {
        dashboard.stop(Duration.ofSeconds(2)).toCompletableFuture().get(5, TimeUnit.SECONDS);
      } catch (Exception e) {
        LOG.debug("dashboard stop", e);
      }
    }
  }
}
