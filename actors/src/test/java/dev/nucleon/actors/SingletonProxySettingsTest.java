package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.Config;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.junit.jupiter.api.Test;

/**
 * A node's proxy to the coordinator singleton asks for it every 100 ms until it finds it, not Pekko's default of once
 * a second: the proxy of the node that starts the singleton usually asks before it is up, and every run waited for
 * the next ask before its first work.
 */
class SingletonProxySettingsTest {

  @Test
  void aNodesProxyAsksForTheCoordinatorEveryHundredMilliseconds() {
    Config pekko = NucleonNode.pekkoConfig(TestRuns.settings(TestRuns.small()));
    // the settings ClusterSingleton.init takes from the node's actor system (ClusterSingletonSettings.create)
    ClusterSingletonSettings settings = ClusterSingletonSettings.fromConfig(pekko.getConfig("pekko.cluster"));
    assertEquals(100, settings.singletonIdentificationInterval().toMillis());
  }
}
