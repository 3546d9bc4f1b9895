package dev.nucleon.actors.monitor;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * PNG plots of a run's per-step metrics ({@code RUN_DIR/metrics.jsonl}) into {@code RUN_DIR/plots/}, drawn with
 * XChart: reward, accuracy, loss, KL, throughput (tokens/s, per actor where the rows have per-actor maps), learner
 * step time and staleness. Each plot takes the keys of the rows that match it, so new keys appear without code
 * changes; a plot with no matching data is not written. Runs headless.
 */
public final class RunPlots {

  /** The plots folder inside a run directory. */
  public static final String DIR = "plots";

  /** One plot: a file name, a title, a y-axis title and which flattened keys go on it. */
  record Plot(String file, String title, String yTitle, Predicate<String> keys) {}

  static final List<Plot> PLOTS = List.of(
      new Plot("reward.png", "Reward per step", "reward", matches("(^|.*_)reward(_.*)?$")),
      new Plot("accuracy.png", "Accuracy per step", "accuracy", matches(".*accuracy.*")),
      new Plot("loss.png", "Loss per step", "loss", matches("(^|.*_)loss(_.*)?$")),
      new Plot("kl.png", "KL per step", "KL", matches("(^|.*_)kl(_.*)?$")),
      new Plot("throughput.png", "Throughput per step", "tokens / s", matches(".*tokens_per_s.*")),
      new Plot("trajectories.png", "Trajectories per step", "trajectories / s", matches(".*trajectories_per_s.*")),
      new Plot("busy.png", "Busy ratio per actor", "busy time / wall time", matches("actor_busy_ratio\\..*")),
      new Plot("step_time.png", "Learner step time", "seconds", matches(".*step_(seconds|time).*")),
      new Plot("staleness.png", "Staleness (policy versions behind)", "versions", matches("^staleness.*")));

  private static Predicate<String> matches(String regex) {
    Pattern p = Pattern.compile(regex);
    return k -> p.matcher(k).matches();
  }

  private RunPlots() {}

  /** Writes the plots of {@code runDir}'s metrics.jsonl into {@code runDir/plots}; returns the files written. */
  public static List<Path> write(Path runDir) {
    return write(RunHistory.readAll(runDir.resolve(RunHistory.FILE)), runDir.resolve(DIR));
  }

  /** Writes the plots of {@code rows} into {@code outDir}; returns the files written. */
  public static List<Path> write(List<ObjectNode> rows, Path outDir) {
    System.setProperty("java.awt.headless", "true");
    List<double[]> steps = new ArrayList<>();
    List<Map<String, Double>> numbers = new ArrayList<>();
    Set<String> keys = new LinkedHashSet<>();
    for (int i = 0; i < rows.size(); i++) {
      Map<String, Double> n = RunHistory.numbers(rows.get(i));
      numbers.add(n);
      keys.addAll(n.keySet());
      Double step = n.get("step");
      steps.add(new double[] {step != null ? step : i + 1});
    }
    List<Path> written = new ArrayList<>();
    try {
      Files.createDirectories(outDir);
      for (Plot plot : PLOTS) {
        Map<String, double[][]> series = new LinkedHashMap<>();
        for (String key : keys) {
          if (key.equals("step") || !plot.keys().test(key)) {
            continue;
          }
          List<double[]> pts = new ArrayList<>();
          for (int i = 0; i < numbers.size(); i++) {
            Double v = numbers.get(i).get(key);
            if (v != null && Double.isFinite(v)) {
              pts.add(new double[] {steps.get(i)[0], v});
            }
          }
          if (!pts.isEmpty()) {
            double[][] xy = new double[2][pts.size()];
            for (int i = 0; i < pts.size(); i++) {
              xy[0][i] = pts.get(i)[0];
              xy[1][i] = pts.get(i)[1];
            }
            series.put(key, xy);
          }
        }
        if (series.isEmpty()) {
          continue;
        }
        XYChart chart = new XYChartBuilder().width(1000).height(560).title(plot.title()).xAxisTitle("step")
            .yAxisTitle(plot.yTitle()).build();
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        chart.getStyler().setChartBackgroundColor(java.awt.Color.WHITE);
        chart.getStyler().setPlotGridLinesVisible(true);
        for (Map.Entry<String, double[][]> e : series.entrySet()) {
          XYSeries s = chart.addSeries(e.getKey(), e.getValue()[0], e.getValue()[1]);
          s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
          s.setMarker(e.getValue()[0].length == 1 ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
        }
        Path file = outDir.resolve(plot.file());
        BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
        written.add(file);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write plots into " + outDir + ": " + e.getMessage(), e);
    }
    return written;
  }
}
