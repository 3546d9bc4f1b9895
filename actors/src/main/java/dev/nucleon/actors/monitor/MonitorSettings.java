package dev.nucleon.actors.monitor;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.time.Duration;
import java.util.Locale;

/**
 * Monitoring settings ({@code nucleon.monitor} in reference.conf), read once at start; a wrong value stops with the
 * key, the file and line, and what was expected.
 *
 * @param metrics the per-node Prometheus endpoint ({@code nucleon.monitor.metrics})
 * @param dashboard the dashboard and JSON API on the coordinator's node ({@code nucleon.monitor.dashboard})
 * @param rateWindow the window of rates and busy ratios ({@code nucleon.monitor.rate-window})
 * @param progress how the run's progress is shown ({@code nucleon.monitor.progress.mode})
 * @param progressLogInterval the interval of plain progress log lines ({@code nucleon.monitor.progress.log-interval})
 * @param plots whether PNG plots are written at the end of a run ({@code nucleon.monitor.plots.enabled})
 */
public record MonitorSettings(
    Endpoint metrics,
    Endpoint dashboard,
    Duration rateWindow,
    ProgressMode progress,
    Duration progressLogInterval,
    boolean plots) {

  /** An HTTP endpoint: on or off, the interface to bind and the port (0 = any free port). */
  public record Endpoint(boolean enabled, String host, int port) {}

  /** How progress is shown: {@code auto} picks a bar on a terminal and log lines otherwise. */
  public enum ProgressMode { AUTO, BAR, LOG, OFF }

  /** The settings of {@code config} (which must contain the reference.conf defaults). */
  public static MonitorSettings from(Config config) {
    String m = "nucleon.monitor.";
    Endpoint metrics = endpoint(config, m + "metrics.");
    Endpoint dashboard = endpoint(config, m + "dashboard.");
    Duration window = config.getDuration(m + "rate-window");
    if (window.toMillis() < 2000) {
      throw new ConfigException.BadValue(config.getValue(m + "rate-window").origin(), m + "rate-window",
          "expected a duration of at least 2s, got " + window);
    }
    String raw = config.getString(m + "progress.mode");
    ProgressMode mode;
    try {
      mode = ProgressMode.valueOf(raw.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new ConfigException.BadValue(config.getValue(m + "progress.mode").origin(), m + "progress.mode",
          "expected auto, bar, log or off, got '" + raw + "'");
    }
    Duration interval = config.getDuration(m + "progress.log-interval");
    if (interval.isNegative() || interval.isZero()) {
      throw new ConfigException.BadValue(config.getValue(m + "progress.log-interval").origin(),
          m + "progress.log-interval", "expected a positive duration, got " + interval);
    }
    return new MonitorSettings(metrics, dashboard, window, mode, interval, config.getBoolean(m + "plots.enabled"));
  }

  private static Endpoint endpoint(Config config, String prefix) {
    boolean enabled = config.getBoolean(prefix + "enabled");
    String host = config.getString(prefix + "host");
    if (host.isBlank()) {
      throw new ConfigException.BadValue(config.getValue(prefix + "host").origin(), prefix + "host",
          "expected an interface address (127.0.0.1, 0.0.0.0, a host name), got an empty string");
    }
    int port = config.getInt(prefix + "port");
    if (port < 0 || port > 65535) {
      throw new ConfigException.BadValue(config.getValue(prefix + "port").origin(), prefix + "port",
          "expected a port in [0, 65535] (0 = any free port), got " + port);
    }
    return new Endpoint(enabled, host, port);
  }
}
