package dev.nucleon.actors.cli;

import com.typesafe.config.Config;
import dev.nucleon.actors.NucleonNode;
import dev.nucleon.actors.RunReporter;
import dev.nucleon.actors.RunSettings;
import dev.nucleon.actors.monitor.MonitorSettings;
import dev.nucleon.actors.monitor.RunPlots;
import dev.nucleon.actors.monitor.RunProgress;
import dev.nucleon.actors.run.RunConfig;
import dev.nucleon.actors.run.RunDirectory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code nucleon train CONF}: a whole post-training run from one config file (one JVM by default). */
@Command(name = "train", mixinStandardHelpOptions = true,
    description = "Runs RL post-training from a HOCON run file; prints progress and the run directory.")
final class TrainCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "CONF", description = "the run file (see conf/)")
  Path conf;

  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "override a config key (HOCON value)")
  Map<String, String> overrides = new LinkedHashMap<>();

  @Option(names = "--adapter", paramLabel = "DIR", description = "start from a LoRA adapter in PEFT's layout "
      + "(nucleon.model.adapter): with nucleon.learner.lora its training continues, without it it is merged into "
      + "the base; give it again with --resume (the KL reference model is base + adapter)")
  Path adapter;

  @Option(names = {"-v", "--verbose"}, description = "show every log line on the console (default: the run's "
      + "progress, evaluations, warnings and errors; the rest is in RUN_DIR/nucleon.log)")
  boolean verbose;

  @Option(names = "--resume", description = "continue the newest run of this name from its newest valid checkpoint")
  boolean resume;

  @Option(names = "--run-dir", paramLabel = "DIR", description = "use this run directory (default: a new one)")
  Path runDir;

  /** {@code nucleon.monitor.console}: run or verbose. */
  static boolean consoleVerbose(Config config) {
    String key = "nucleon.monitor.console";
    return switch (config.getString(key)) {
      case "run" -> false;
      case "verbose" -> true;
      default -> throw new com.typesafe.config.ConfigException.BadValue(config.getValue(key).origin(), key,
          "expected run or verbose, got '" + config.getString(key) + "'");
    };
  }

  @Override
  public Integer call() throws Exception {
    if (adapter != null) {
      overrides.put("nucleon.model.adapter", com.typesafe.config.ConfigUtil.quoteString(adapter.toString()));
    }
    Config config = RunConfig.load(conf, overrides);
    dev.nucleon.actors.run.ConsoleFilter.setVerbose(verbose || consoleVerbose(config));
    RunSettings settings = RunSettings.from(config);
    Path dir = runDir;
    if (dir == null && resume) {
      dir = RunDirectory.newest(settings.run().dir(), settings.run().name()).orElse(null);
      if (dir == null) {
        throw new IllegalArgumentException("--resume: no run named '" + settings.run().name() + "' in "
            + settings.run().dir());
      }
    }
    if (dir == null) {
      dir = RunDirectory.fresh(settings.run().dir(), settings.run().name());
    }
    java.nio.file.Files.createDirectories(dir);
    RunDirectory.writeConfig(dir, config);
    RunDirectory.logToFile(dir);
    var out = spec.commandLine().getOut();
    out.println("run directory: " + dir.toAbsolutePath());
    out.flush();
    MonitorSettings monitor = MonitorSettings.from(config);
    try (NucleonNode node = NucleonNode.start(settings, dir, resume,
        RunProgress.create(settings.run().name(), settings.run().totalSteps(), 0, monitor))) {
      node.monitoring().dashboardUrl().ifPresent(u -> out.println("dashboard: " + u));
      node.monitoring().metricsUrl().ifPresent(u -> out.println("metrics: " + u));
      out.flush();
      RunReporter.Summary s;
      try {
        s = node.finished().get();
      } catch (java.util.concurrent.ExecutionException e) {
        throw new IllegalStateException("the run failed: " + e.getCause().getMessage(), e.getCause());
      }
      if (monitor.plots()) {
        RunPlots.write(dir);
      }
      out.printf("done: %d steps in %.1f s; held-out accuracy %.1f%% -> %.1f%%; checkpoint %s; run directory %s%n",
          s.steps(), s.seconds(), 100 * s.accuracyBefore(), 100 * s.accuracyAfter(),
          s.checkpoint().isEmpty() ? "(none)" : s.checkpoint(), dir.toAbsolutePath());
      out.flush();
    }
    return 0;
  }
}
