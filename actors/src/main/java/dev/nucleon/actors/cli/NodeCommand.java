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
    description = "Joins the cluster of a run (nucleon.cluster.seed-nodes, or nucleon.cluster.bootstrap) with the "
        + "given roles until it ends.")
final class NodeCommand implements Callable<Integer> {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(NodeCommand.class);

  /** Wait before a downed node starts its roles again. */
  private static final java.time.Duration REJOIN_DELAY = java.time.Duration.ofSeconds(2);

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

  @Option(names = "--resume", description = "coordinator and learner: continue the run in --run-dir from its newest "
      + "valid checkpoint (dataset position, accounting, weights and optimizer state)")
  boolean resume;

  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "override a config key (HOCON value)")
  Map<String, String> overrides = new LinkedHashMap<>();

  @Override
  public Integer call() throws Exception {
    dev.nucleon.actors.run.ConsoleFilter.setVerbose(true); // a node's console is its log (deploy/ scripts keep it)
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
    if (settings.hasRole("coordinator")) {
      try (NucleonNode node = up(settings, dir)) {
        node.finished().get();
        if (dev.nucleon.actors.monitor.MonitorSettings.from(config).plots()) {
          dev.nucleon.actors.monitor.RunPlots.write(dir);
        }
        spec.commandLine().getOut().println("run finished; run directory " + dir.toAbsolutePath());
      }
      return 0;
    }
    // a node without the coordinator serves until it is stopped. When it is downed (its side of a split lost the
    // coordinator, or the coordinator's side found it unreachable), a rollout or reward node starts its roles again
    // and rejoins; a learner without its coordinator cannot, and ends (restart it with --resume)
    java.util.concurrent.atomic.AtomicBoolean stopping = new java.util.concurrent.atomic.AtomicBoolean();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> stopping.set(true), "nucleon-node-stopping"));
    while (true) {
      CountDownLatch removed = new CountDownLatch(1);
      try (NucleonNode node = up(settings, dir)) {
        org.apache.pekko.cluster.Cluster cluster = org.apache.pekko.cluster.Cluster.get(
            org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(node.system()));
        cluster.registerOnMemberRemoved(removed::countDown);
        // a coordinator that left on purpose (stopped, then started again with --resume) forms a new cluster: once
        // the coordinator this node knew is gone, it leaves too, and rejoins through the seed nodes
        boolean seen = false;
        while (!removed.await(1, java.util.concurrent.TimeUnit.SECONDS)) {
          boolean present = false;
          for (org.apache.pekko.cluster.Member m : cluster.state().getMembers()) {
            present |= m.hasRole("coordinator");
          }
          if (seen && !present) {
            LOG.warn("the run's coordinator left the cluster; this node leaves and rejoins");
            cluster.leave(cluster.selfAddress());
            removed.await(30, java.util.concurrent.TimeUnit.SECONDS);
            break;
          }
          seen |= present;
        }
      }
      if (stopping.get()) {
        return 0;
      }
      if (settings.hasRole("learner")) {
        LOG.error("this learner node was removed from the cluster (downed); start it again with --resume");
        return 1;
      }
      LOG.warn("this node was removed from the cluster (downed, or it left); its roles start again and rejoin in {} s",
          REJOIN_DELAY.toSeconds());
      Thread.sleep(REJOIN_DELAY.toMillis());
      if (stopping.get()) {
        return 0;
      }
    }
  }

  private NucleonNode up(RunSettings settings, Path dir) {
    NucleonNode node = NucleonNode.start(settings, dir, resume, null);
    spec.commandLine().getOut().println("node up with roles " + settings.cluster().roles() + " at "
        + Cluster.get(node.system()).selfMember().address());
    spec.commandLine().getOut().flush();
    return node;
  }
}
