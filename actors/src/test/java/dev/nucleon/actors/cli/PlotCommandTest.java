package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class PlotCommandTest {

  @TempDir
  Path runDir;

  private static String[] run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cli = new CommandLine(new PlotCommand());
    cli.setOut(new PrintWriter(out, true));
    cli.setErr(new PrintWriter(err, true));
    cli.setExecutionExceptionHandler((ex, line, parsed) -> {
      line.getErr().println("nucleon plot: " + ex.getMessage());
      return 1;
    });
    int exit = cli.execute(args);
    return new String[] {Integer.toString(exit), out.toString(), err.toString()};
  }

  @Test
  void writesPlotsOfARunDirectory() throws Exception {
    StringBuilder rows = new StringBuilder();
    for (int s = 1; s <= 20; s++) {
      rows.append("{\"step\":").append(s).append(",\"reward_mean\":").append(0.02 * s).append(",\"accuracy\":")
          .append(0.01 * s).append(",\"loss\":0.1,\"kl\":0.01,\"tokens_per_s\":").append(1000 + 10 * s)
          .append("}\n");
    }
    Files.writeString(runDir.resolve("metrics.jsonl"), rows, StandardCharsets.UTF_8);
    String[] r = run(runDir.toString());
    assertEquals("0", r[0], r[2]);
    assertEquals(5, r[1].lines().count(), r[1]);
    for (String line : r[1].lines().toList()) {
      Path png = Path.of(line);
      assertTrue(png.startsWith(runDir.resolve("plots")) && Files.size(png) > 5000, line);
      assertTrue(ImageIO.read(png.toFile()).getWidth() > 0);
    }
  }

  @Test
  void aDirectoryWithoutMetricsIsAnError() {
    String[] r = run(runDir.toString());
    assertEquals("1", r[0]);
    assertTrue(r[2].contains("metrics.jsonl"), r[2]);
  }
}
