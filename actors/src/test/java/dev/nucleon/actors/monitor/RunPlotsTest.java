package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunPlotsTest {

  @TempDir
  Path runDir;

  static void writeRows(Path runDir, int n) throws Exception {
    StringBuilder sb = new StringBuilder();
    for (int s = 1; s <= n; s++) {
      sb.append(String.format(Locale.ROOT,
          "{\"step\":%d,\"reward_mean\":%.4f,\"accuracy\":%.4f,\"loss\":%.5f,\"kl\":%.5f,\"clip_fraction\":0.1,"
              + "\"tokens_per_s\":{\"rollout-0\":%d,\"rollout-1\":%d},\"learner_step_seconds\":0.5,"
              + "\"staleness_max\":%d,\"note\":\"x\",\"node\":{\"node\":\"n\",\"uptimeSeconds\":3,\"actors\":["
              + "{\"actor\":\"learner\",\"tokens\":0,\"tokensPerSecond\":0,\"busyRatio\":0.6}]}}%n",
          s, 0.1 + 0.01 * s, 0.05 * Math.sqrt(s), -0.01 / s, 0.001 * s, 1000 + s, 900 + s, s % 3));
    }
    Files.writeString(runDir.resolve("metrics.jsonl"), sb.toString(), StandardCharsets.UTF_8);
  }

  @Test
  void writesDecodablePngsPerMetric() throws Exception {
    writeRows(runDir, 40);
    List<Path> files = RunPlots.write(runDir);
    List<String> names = files.stream().map(p -> p.getFileName().toString()).toList();
    assertEquals(List.of("reward.png", "accuracy.png", "loss.png", "kl.png", "throughput.png", "busy.png",
        "step_time.png", "staleness.png"), names);
    for (Path f : files) {
      assertEquals(runDir.resolve("plots"), f.getParent());
      assertTrue(Files.size(f) > 5_000, f + " is " + Files.size(f) + " bytes");
      BufferedImage img = ImageIO.read(f.toFile());
      assertNotNull(img, f + " decodes as an image");
      assertEquals(1000, img.getWidth());
      assertEquals(560, img.getHeight());
    }
    assertFalse(Files.exists(runDir.resolve("plots/trajectories.png")));
  }

  @Test
  void missingMetricsFileIsAnError() {
    UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> RunPlots.write(runDir));
    assertTrue(e.getMessage().contains("metrics.jsonl"), e.getMessage());
  }
}
