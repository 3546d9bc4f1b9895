package dev.nucleon.actors.cli;

import dev.nucleon.actors.monitor.RunHistory;
import dev.nucleon.actors.monitor.RunPlots;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code nucleon plot RUN_DIR}: PNG plots of a run's per-step metrics into RUN_DIR/plots. */
@Command(name = "plot", mixinStandardHelpOptions = true,
    description = {"Draws PNG plots (reward, accuracy, loss, KL, throughput, step time, staleness per step) from "
        + "RUN_DIR/metrics.jsonl into RUN_DIR/plots and prints their paths."})
final class PlotCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "RUN_DIR", description = "a run directory (holds metrics.jsonl)")
  Path runDir;

  @Override
  public Integer call() throws Exception {
    if (!Files.isDirectory(runDir)) {
      throw new NoSuchFileException(runDir.toString(), null, "not a run directory");
    }
    if (!Files.exists(runDir.resolve(RunHistory.FILE))) {
      throw new NoSuchFileException(runDir.resolve(RunHistory.FILE).toString(), null,
          "no per-step metrics in this run directory");
    }
    List<Path> files = RunPlots.write(runDir);
    PrintWriter out = spec.commandLine().getOut();
    if (files.isEmpty()) {
      spec.commandLine().getErr().println("nucleon plot: " + runDir.resolve(RunHistory.FILE)
          + " has no plottable metrics yet");
      return 1;
    }
    files.forEach(f -> out.println(f));
    out.flush();
    return 0;
  }
}
