package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class MonitorSettingsTest {

  private static Config with(String hocon) {
    return ConfigFactory.parseString(hocon).withFallback(ConfigFactory.defaultReference()).resolve();
  }

  @Test
  void defaults() {
    MonitorSettings s = MonitorSettings.from(ConfigFactory.defaultReference());
    assertEquals(new MonitorSettings.Endpoint(false, "127.0.0.1", 9464), s.metrics());
    assertEquals(new MonitorSettings.Endpoint(true, "127.0.0.1", 8765), s.dashboard());
    assertEquals(Duration.ofSeconds(30), s.rateWindow());
    assertEquals(MonitorSettings.ProgressMode.AUTO, s.progress());
    assertTrue(s.plots());
  }

  @Test
  void badValuesNameTheKey() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> MonitorSettings.from(with("nucleon.monitor.metrics.port = 70000")));
    assertTrue(e.getMessage().contains("nucleon.monitor.metrics.port"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> MonitorSettings.from(with("nucleon.monitor.progress.mode = fancy")));
    assertTrue(e.getMessage().contains("nucleon.monitor.progress.mode") && e.getMessage().contains("fancy"));
    e = assertThrows(ConfigException.class, () -> MonitorSettings.from(with("nucleon.monitor.dashboard.enabled = 3")));
    assertTrue(e.getMessage().contains("nucleon.monitor.dashboard.enabled"), e.getMessage());
  }
}
