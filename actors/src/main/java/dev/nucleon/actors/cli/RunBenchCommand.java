package dev.nucleon.actors.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.actors.NucleonNode;
import dev.nucleon.actors.RunReporter;
import dev.nucleon.actors.RunSettings;
import dev.nucleon.actors.monitor.NodeSnapshot;
import dev.nucleon.actors.monitor.RunHistory;
import dev.nucleon.actors.run.RunConfig;
import dev.nucleon.actors.run.RunDirectory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code nucleon bench run CONF}: the same run twice in one process, synchronous ({@code max-staleness = 0}) and as
 * configured, without evaluation: end-to-end trajectories/s and tokens/s, and how idle the learner and the rollout
 * workers were (1 - busy time / wall time). One JSON line per setting.
 *
 * <p>The whole-run figures count from the node's start, so they include what only the first steps pay (loading the
 * models, the first calls of the compiled decode step, the allocator's first requests), a larger share of a short
 * asynchronous run than of a synchronous one. The {@code steady_} figures leave the first {@link #WARMUP_STEPS}
 * steps out: trained trajectories per second from the end of step {@value #WARMUP_STEPS} to the end of the last
 * step, read from the run's per-step metrics, and the median learner step there.
 */
@Command(name = "run", mixinStandardHelpOptions = true,
    description = "End-to-end throughput of a run, synchronous versus as configured (one JSON line each).")
final class RunBenchCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "CONF")
  Path conf;

  @Option(names = "--steps", defaultValue = "60", description = "learner steps per setting (default: ${DEFAULT-VALUE})")
  int steps;

  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "override a config key (HOCON value)")
  Map<String, String> overrides = new LinkedHashMap<>();

  /** Steps the steady figures leave out. */
  static final int WARMUP_STEPS = 5;

  @Override
  public Integer call() throws Exception {
    Map<String, String> base = new LinkedHashMap<>(overrides);
    base.put("nucleon.run.total-steps", String.valueOf(steps));
    base.put("nucleon.run.eval.size", "0");
    base.put("nucleon.monitor.dashboard.enabled", "false");
    base.put("nucleon.monitor.progress.mode", "off");
    base.put("nucleon.monitor.plots.enabled", "false");
    int configured = RunSettings.from(RunConfig.load(conf, base)).replay().maxStaleness();
    ObjectMapper json = new ObjectMapper();
    for (int staleness : List.of(0, configured)) {
      Map<String, String> o = new LinkedHashMap<>(base);
      o.put("nucleon.algorithm.max-staleness", String.valueOf(staleness));
      RunSettings s = RunSettings.from(RunConfig.load(conf, o));
      Path tmp = Files.createTempDirectory("nucleon-bench");
      ObjectNode row = json.createObjectNode();
      try (NucleonNode node = NucleonNode.start(s, RunDirectory.fresh(tmp, "bench"), false, null)) {
        long start = System.nanoTime();
        RunReporter.Summary summary = node.finished().get(30, TimeUnit.MINUTES);
        double seconds = (System.nanoTime() - start) / 1e9;
        NodeSnapshot snap = node.metrics().snapshot();
        long trajectories = 0;
        long tokens = 0;
        double rolloutBusy = 0;
        int workers = 0;
        double learnerBusy = 0;
        for (NodeSnapshot.Actor a : snap.actors()) {
          if (a.role().equals("rollout")) {
            trajectories += a.trajectories();
            tokens += a.tokens();
            rolloutBusy += a.busyRatioSinceStart();
            workers++;
          } else if (a.role().equals("learner")) {
            learnerBusy = a.busyRatioSinceStart();
          }
        }
        row.put("bench", "run");
        row.put("max_staleness", staleness);
        row.put("steps", summary.steps());
        row.put("seconds", Math.round(seconds * 10) / 10.0);
        row.put("trajectories_per_s", Math.round(trajectories / seconds * 10) / 10.0);
        row.put("completion_tokens_per_s", Math.round(tokens / seconds * 10) / 10.0);
        row.put("learner_idle_fraction", Math.round((1 - learnerBusy) * 1000) / 1000.0);
        row.put("rollout_idle_fraction", Math.round((1 - (workers == 0 ? 0 : rolloutBusy / workers)) * 1000) / 1000.0);
        Steady steady = Steady.of(RunHistory.read(summary.runDir().resolve(RunHistory.FILE), 0, Integer.MAX_VALUE)
            .rows());
        if (steady != null) {
          row.put("steady_from_step", WARMUP_STEPS + 1);
          row.put("steady_trajectories_per_s", Math.round(steady.trajectoriesPerSecond() * 10) / 10.0);
          row.put("steady_learner_step_ms", Math.round(steady.learnerStepMs() * 10) / 10.0);
        }
      } finally {
        try {
          MergeCommand.deleteTree(tmp); // the bench's run folder: its figures are the printed row
        } catch (java.io.IOException e) {
          spec.commandLine().getErr().println("could not remove " + tmp + ": " + e);
        }
      }
      spec.commandLine().getOut().println(json.writeValueAsString(row));
      spec.commandLine().getOut().flush();
    }
    return 0;
  }

  /**
   * The steady part of a run: trained trajectories per second after the first {@link #WARMUP_STEPS} steps, and the
   * median learner step time over the same steps.
   */
  record Steady(double trajectoriesPerSecond, double learnerStepMs) {

    /** From a run's per-step metric rows; null when fewer than 2 steps follow the warm-up ones. */
    static Steady of(List<ObjectNode> rows) {
      double warmEnd = Double.NaN;
      double last = Double.NaN;
      double samples = 0;
      List<Double> stepSeconds = new ArrayList<>();
      for (ObjectNode r : rows) {
        if (!"step".equals(r.path("type").asText())) {
          continue;
        }
        int step = r.path("step").asInt();
        double elapsed = r.path("elapsed_s").asDouble(Double.NaN);
        if (step == WARMUP_STEPS) {
          warmEnd = elapsed;
        } else if (step > WARMUP_STEPS) {
          samples += r.path("samples").asDouble(0);
          last = elapsed;
          stepSeconds.add(r.path("learner_step_seconds").asDouble(Double.NaN));
        }
      }
      if (!(last > warmEnd) || stepSeconds.size() < 2) {
        return null;
      }
      stepSeconds.sort(null);
      return new Steady(samples / (last - warmEnd), stepSeconds.get(stepSeconds.size() / 2) * 1000);
    }
  }
}
