package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.Config;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.management.javadsl.PekkoManagement;
import org.junit.jupiter.api.Test;

/**
 * With {@code nucleon.cluster.management.enabled}, a node's actor system serves Pekko Management's health checks on
 * the configured port, which Kubernetes probes (deploy/k8s): {@code /alive} while it runs, {@code /ready} only once
 * the node is a cluster member.
 */
class ManagementHealthTest {

  @Test
  void readyOnlyOnceAClusterMember() throws Exception {
    int port = TestPorts.free();
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.cluster.management.enabled", "true");
    o.put("nucleon.cluster.management.port", String.valueOf(port));
    o.put("nucleon.cluster.port", String.valueOf(TestPorts.free()));
    RunSettings settings = TestRuns.settings(o);
    Config pekko = NucleonNode.pekkoConfig(settings);
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "nucleon", pekko);
    try {
      PekkoManagement.get(Adapter.toClassic(system)).start().toCompletableFuture().get();
      HttpClient http = HttpClient.newHttpClient();
      assertEquals(200, get(http, port, "/alive"), "alive while the actor system runs");
      assertEquals(500, get(http, port, "/ready"), "not ready before it joins a cluster");
      Cluster cluster = Cluster.get(system);
      cluster.manager().tell(Join.create(cluster.selfMember().address()));
      long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      int ready = 0;
      while (ready != 200 && System.nanoTime() < deadline) {
        Thread.sleep(200);
        ready = get(http, port, "/ready");
      }
      assertEquals(200, ready, "ready once Up");
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get();
    }
  }

  private static int get(HttpClient http, int port, String path) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
        .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.discarding()).statusCode();
  }
}
