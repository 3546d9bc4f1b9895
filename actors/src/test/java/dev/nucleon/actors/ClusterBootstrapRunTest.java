package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.StreamSupport;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Nodes without seed nodes find each other through Pekko Management's Cluster Bootstrap
 * ({@code nucleon.cluster.bootstrap}), the way deploy/k8s runs them: each node serves its management endpoint,
 * discovers its peers' endpoints (here by Pekko's {@code config} discovery, which lists them; on Kubernetes by the
 * pods API), and the two form one cluster that runs the whole loop. Settings that cannot work are refused by name.
 */
class ClusterBootstrapRunTest {

  @Test
  void twoNodesWithoutSeedNodesFormOneClusterAndTrain(@TempDir Path dir) throws Exception {
    int managementA = TestPorts.free();
    int managementB = TestPorts.free();
    Map<String, String> common = TestRuns.small();
    common.put("nucleon.run.total-steps", "4");
    common.put("nucleon.reward-scorer.scorers", "1");
    common.put("nucleon.cluster.management.enabled", "true");
    common.put("nucleon.cluster.bootstrap.enabled", "true");
    common.put("nucleon.cluster.bootstrap.discovery-method", "config");
    common.put("nucleon.cluster.bootstrap.service-name", "nucleon-test");
    common.put("nucleon.cluster.bootstrap.required-contact-points", "2");
    common.put("pekko.discovery.config.services.nucleon-test.endpoints", "[{host = \"127.0.0.1\", port = "
        + managementA + "}, {host = \"127.0.0.1\", port = " + managementB + "}]");
    // two nodes on one host: by default Bootstrap keeps only the endpoints on its own management port per host
    common.put("pekko.management.cluster.bootstrap.contact-point.filter-on-fallback-port", "false");
    // the default waits 5 s for the discovered set to stay the same before forming a cluster
    common.put("pekko.management.cluster.bootstrap.contact-point-discovery.stable-margin", "1s");
    Map<String, String> a = node(common, "[coordinator, learner]", managementA);
    Map<String, String> b = node(common, "[rollout, reward]", managementB);
    RunSettings settingsA = TestRuns.settings(a);
    assertTrue(settingsA.cluster().seedNodes().isEmpty());
    try (NucleonNode nodeA = NucleonNode.start(settingsA, dir, false, null);
        NucleonNode nodeB = NucleonNode.start(TestRuns.settings(b), dir.resolve("b"), false, null)) {
      RunReporter.Summary summary = nodeA.finished().get(240, TimeUnit.SECONDS);
      assertEquals(4, summary.steps());
      for (NucleonNode n : new NucleonNode[] {nodeA, nodeB}) {
        Cluster cluster = Cluster.get(n.system());
        assertEquals(MemberStatus.up(), cluster.selfMember().status());
        long up = StreamSupport.stream(cluster.state().getMembers().spliterator(), false)
            .filter(m -> m.status() == MemberStatus.up()).count();
        assertEquals(2, up, "one cluster of both nodes");
      }
    }
    assertEquals(4, TestRuns.rows(dir, "step").size());
  }

  @Test
  void bootstrapNeedsManagementAndNoSeedNodes() {
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.cluster.bootstrap.enabled", "true");
    ConfigException noManagement = assertThrows(ConfigException.class,
        () -> TestRuns.settings(o));
    assertTrue(noManagement.getMessage().contains("nucleon.cluster.management.enabled"),
        noManagement.getMessage());
    o.put("nucleon.cluster.management.enabled", "true");
    o.put("nucleon.cluster.seed-nodes", "[\"pekko://nucleon@127.0.0.1:25520\"]");
    ConfigException seeds = assertThrows(ConfigException.class, () -> TestRuns.settings(o));
    assertTrue(seeds.getMessage().contains("nucleon.cluster.seed-nodes"), seeds.getMessage());
  }

  private static Map<String, String> node(Map<String, String> common, String roles, int managementPort) {
    Map<String, String> n = new LinkedHashMap<>(common);
    n.put("nucleon.cluster.roles", roles);
    n.put("nucleon.cluster.port", String.valueOf(TestPorts.free()));
    n.put("nucleon.cluster.management.port", String.valueOf(managementPort));
    return n;
  }
}
