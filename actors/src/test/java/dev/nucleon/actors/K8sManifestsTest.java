package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.typesafe.config.Config;
import dev.nucleon.actors.run.RunConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * deploy/k8s agrees with the run config it ships and with itself: every workload runs known roles (all four
 * covered), exposes the remoting and management ports the config names, is probed on Pekko Management's /alive and
 * /ready; no pod names a seed node: every pod joins by Cluster Bootstrap with Kubernetes API discovery, so every pod
 * carries the label the discovery selects, and its service account may list pods; the config map, with each pod's
 * command-line overrides, parses into valid run settings; the image's working directory holds the conf the config
 * includes.
 */
class K8sManifestsTest {

  private static final Path K8S = TestRuns.REPO.resolve("deploy/k8s");

  @Test
  void manifestsAgreeWithTheConfigAndEachOther(@TempDir Path tmp) throws Exception {
    List<JsonNode> docs = new ArrayList<>();
    ObjectMapper yaml = new ObjectMapper(new YAMLFactory());
    try (Stream<Path> files = Files.list(K8S)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList()) {
        try (var it = yaml.readerFor(JsonNode.class).<JsonNode>readValues(f.toFile())) {
          while (it.hasNext()) {
            JsonNode d = it.next();
            if (d != null && !d.isNull()) {
              docs.add(d);
            }
          }
        }
      }
    }
    JsonNode configMap = only(docs, "ConfigMap");
    String runConf = configMap.at("/data/run.conf").asText();
    assertTrue(runConf.contains("include file(\"/app/conf/quickstart.conf\")"), runConf);
    // the image ships conf/ at /app/conf (Jib's extra directory) and runs there
    String pom = Files.readString(TestRuns.REPO.resolve("actors/pom.xml"));
    assertTrue(pom.contains("<into>/app/conf</into>") && pom.contains("<workingDirectory>/app</workingDirectory>"));
    Path conf = tmp.resolve("run.conf");
    Files.writeString(conf, runConf.replace("/app/conf/quickstart.conf",
        TestRuns.REPO.resolve("conf/quickstart.conf").toString()));
    Config config = RunConfig.load(conf, Map.of());
    RunSettings settings = RunSettings.from(config);
    int remoting = settings.cluster().port();
    int management = settings.cluster().managementPort();
    assertTrue(remoting > 0 && management > 0, "fixed remoting and management ports: " + settings.cluster());

    RunSettings.Bootstrap bootstrap = settings.cluster().bootstrap();
    assertNotNull(bootstrap, "pods join by Cluster Bootstrap");
    assertEquals("kubernetes-api", bootstrap.discoveryMethod());
    assertTrue(settings.cluster().seedNodes().isEmpty(), "no fixed seed node");
    // the pods the discovery lists: pekko.discovery.kubernetes-api.pod-label-selector with the service name
    String[] selector = String.format(config.getString("pekko.discovery.kubernetes-api.pod-label-selector"),
        bootstrap.serviceName()).split("=", 2);
    assertTrue(config.getString("pekko.management.cluster.bootstrap.contact-point-discovery.port-name").isEmpty(),
        "contact points are asked on the management port");
    JsonNode statefulSet = only(docs, "StatefulSet");
    JsonNode governing = docs.stream().filter(d -> d.path("kind").asText().equals("Service")
        && d.at("/metadata/name").asText().equals(statefulSet.at("/spec/serviceName").asText())).findFirst()
        .orElseThrow();
    assertEquals("None", governing.at("/spec/clusterIP").asText(), "the StatefulSet's service is headless");
    assertTrue(matches(governing.at("/spec/selector"), statefulSet.at("/spec/template/metadata/labels")));
    // the pods' service account may list the pods of its namespace
    Set<String> podReaders = new HashSet<>();
    for (JsonNode binding : docs.stream().filter(d -> d.path("kind").asText().equals("RoleBinding")).toList()) {
      JsonNode role = docs.stream().filter(d -> d.path("kind").asText().equals("Role")
          && d.at("/metadata/name").asText().equals(binding.at("/roleRef/name").asText())).findFirst().orElseThrow();
      boolean listsPods = false;
      for (JsonNode rule : role.path("rules")) {
        listsPods |= contains(rule.path("resources"), "pods") && contains(rule.path("verbs"), "list");
      }
      if (listsPods) {
        binding.path("subjects").forEach(subject -> podReaders.add(subject.path("name").asText()));
      }
    }

    Set<String> accounts = new HashSet<>();
    docs.stream().filter(d -> d.path("kind").asText().equals("ServiceAccount"))
        .forEach(d -> accounts.add(d.at("/metadata/name").asText()));
    Set<String> roles = new HashSet<>();
    int workloads = 0;
    for (JsonNode d : docs) {
      String kind = d.path("kind").asText();
      if (!kind.equals("StatefulSet") && !kind.equals("Deployment")) {
        continue;
      }
      workloads++;
      String name = d.at("/metadata/name").asText();
      JsonNode pod = d.at("/spec/template");
      assertTrue(matches(d.at("/spec/selector/matchLabels"), pod.at("/metadata/labels")), name + ": selector");
      assertEquals("nucleon", pod.at("/metadata/labels/app").asText(), name);
      assertTrue(accounts.contains(pod.at("/spec/serviceAccountName").asText()), name + ": service account");
      assertTrue(podReaders.contains(pod.at("/spec/serviceAccountName").asText()), name + ": may list pods");
      assertEquals(selector[1], pod.at("/metadata/labels/" + selector[0]).asText(), name + ": discovered by "
          + String.join("=", selector));
      JsonNode c = pod.at("/spec/containers/0");
      assertEquals(remoting, port(c, "remoting"), name + ": remoting port");
      assertEquals(management, port(c, "management"), name + ": management port");
      assertEquals("/alive", c.at("/livenessProbe/httpGet/path").asText(), name);
      assertEquals("management", c.at("/livenessProbe/httpGet/port").asText(), name);
      assertEquals("/ready", c.at("/readinessProbe/httpGet/path").asText(), name);
      assertEquals("management", c.at("/readinessProbe/httpGet/port").asText(), name);
      List<String> args = new ArrayList<>();
      c.path("args").forEach(a -> args.add(a.asText()));
      Map<String, String> overrides = new java.util.LinkedHashMap<>();
      for (int i = 0; i + 1 < args.size(); i++) {
        if (args.get(i).equals("-D")) {
          String[] kv = args.get(i + 1).split("=", 2);
          overrides.put(kv[0], kv[1]);
        }
      }
      assertTrue(overrides.keySet().stream().noneMatch(k -> k.startsWith("nucleon.cluster")), name + ": every pod "
          + "joins alike (the config map's cluster settings): " + overrides);
      Set<String> env = new HashSet<>();
      c.path("env").forEach(e -> env.add(e.path("name").asText()));
      for (String a : args) {
        java.util.regex.Matcher ref = java.util.regex.Pattern.compile("\\$\\((\\w+)\\)").matcher(a);
        while (ref.find()) {
          assertTrue(env.contains(ref.group(1)), name + ": $(" + ref.group(1) + ") is not in the pod's env");
        }
      }
      assertEquals("node", args.get(0), name);
      assertEquals("/config/" + configMap.path("data").fieldNames().next(), args.get(1), name);
      assertEquals(String.valueOf(remoting), args.get(args.indexOf("--port") + 1), name);
      for (String r : args.get(args.indexOf("--roles") + 1).split(",")) {
        assertTrue(RunSettings.ROLES.contains(r), name + ": unknown role " + r);
        roles.add(r);
      }
      boolean mounted = false;
      for (JsonNode v : pod.at("/spec/volumes")) {
        mounted |= v.at("/configMap/name").asText().equals(configMap.at("/metadata/name").asText());
      }
      assertTrue(mounted, name + ": mounts the config map");
      if (kind.equals("StatefulSet")) {
        RunSettings coordinator = RunSettings.from(RunConfig.load(conf, overrides));
        assertEquals(settings.cluster(), coordinator.cluster());
        String runDir = args.get(args.indexOf("--run-dir") + 1);
        assertTrue(runDir.startsWith(settings.run().dir().toString()), name + ": run dir " + runDir + " under "
            + settings.run().dir());
        assertEquals(settings.config().getInt("nucleon.monitor.dashboard.port"), port(c, "dashboard"));
      }
      if (args.get(args.indexOf("--roles") + 1).contains("rollout")) {
        assertNotNull(c.at("/resources/limits").get("nvidia.com/gpu"), name + ": rollout workers ask for a GPU");
      }
    }
    assertEquals(3, workloads);
    assertEquals(RunSettings.ROLES, roles, "every role runs somewhere");
  }

  private static JsonNode only(List<JsonNode> docs, String kind) {
    List<JsonNode> found = docs.stream().filter(d -> d.path("kind").asText().equals(kind)).toList();
    assertEquals(1, found.size(), "one " + kind);
    return found.get(0);
  }

  private static boolean contains(JsonNode array, String value) {
    for (JsonNode v : array) {
      if (v.asText().equals(value)) {
        return true;
      }
    }
    return false;
  }

  private static boolean matches(JsonNode selector, JsonNode labels) {
    boolean all = selector.size() > 0;
    for (var it = selector.fields(); it.hasNext(); ) {
      var e = it.next();
      all &= labels.path(e.getKey()).asText().equals(e.getValue().asText());
    }
    return all;
  }

  private static int port(JsonNode container, String name) {
    for (JsonNode p : container.path("ports")) {
      if (p.path("name").asText().equals(name)) {
        return p.path("containerPort").asInt();
      }
    }
    return -1;
  }
}
