package dev.nucleon.actors.cli;

import com.typesafe.config.Config;
import dev.nucleon.actors.NucleonNode;
import dev.nucleon.actors.RunSettings;
import dev.nucleon.actors.run.RunConfig;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.apache.pekko.cluster.typed.Cluster;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code nucleon node CONF --roles rollout,reward}: join a running cluster and serve some roles. */
@Command(name = "node", mixinStandardHelpOptions = true,
    description = "Joins the cluster of a run (nucleon.cluster.seed-nodes) with the given roles until it ends.")
final class NodeCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "CONF", description = "the run file")
  Path conf;

  @Option(names = "--roles", split = ",", description = "coordinator, learner, rollout, reward")
  List<String> roles;

  @Option(names = "--port", description = "this node's port (nucleon.cluster.port)")
  Integer port;

  @Option(names = "--run-dir", paramLabel = "DIR", description = "run directory (learner and coordinator roles)")
  Path runDir;

  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "override a config key (HOCON value)")
  Map<String, String> overrides = new LinkedHashMap<>();

  @Override
  public Integer call() throws Exception {
    if (roles != null) {
      overrides.put("nucleon.cluster.roles", "[" + String.join(",", roles) + "]");
    }
    if (port != null) {
      overrides.put("nucleon.cluster.port", String.valueOf(port));
    }
    Config config = RunConfig.load(conf, overrides);
    RunSettings settings = RunSettings.from(config);
    Path dir = runDir != null ? runDir : settings.run().dir().resolve(settings.run().name() + "-node");
    java.nio.file.Files.createDirectories(dir);
    if (settings.hasRole("coordinator") || settings.hasRole("learner")) {
      // the node that keeps the run's record writes what `train` writes
      dev.nucleon.actors.run.RunDirectory.writeConfig(dir, config);
      dev.nucleon.actors.run.RunDirectory.logToFile(dir);
    }
    CountDownLatch removed = new CountDownLatch(1);
    try (NucleonNode node = NucleonNode.start(settings, dir, false, null)) {
      org.apache.pekko.cluster.Cluster.get(org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(node.system()))
          .registerOnMemberRemoved(removed::countDown);
      spec.commandLine().getOut().println("node up with roles " + settings.cluster().roles() + " at "
          + Cluster.get(node.system()).selfMember().address());
      spec.commandLine().getOut().flush();
      if (settings.hasRole("coordinator")) {
        node.finished().get();
        if (dev.nucleon.actors.monitor.MonitorSettings.from(config).plots()) {
          dev.nucleon.actors.monitor.RunPlots.write(dir);
        }
        spec.commandLine().getOut().println("run finished; run directory " + dir.toAbsolutePath());
      } else {
        removed.await();
      }
    }
    return 0;
  }
}
