package dev.nucleon.actors.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.nio.file.Path;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

/**
 * A version above 2 GiB (five float32 tensors of 115M values, 2.3 GB) goes from one JVM to another on the weight
 * stream: every tensor's checksum holds and every value is the one sent. Neither side holds the version: the
 * sender generates it, the receiver checks it as it arrives.
 */
class LargeVersionTest {

  @Test
  void aVersionAboveTwoGibibytesCrossesJvms() throws Exception {
    int count = 5;
    long each = 115_000_000L;
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
        "-cp", System.getProperty("java.class.path"), SyntheticWeights.class.getName(),
        String.valueOf(count), String.valueOf(each)));
    Process child = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "large-version");
    try {
      BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      String line;
      do {
        line = out.readLine();
      } while (line != null && !line.startsWith("PORT "));
      assertTrue(line != null, "the serving JVM did not start");
      String[] parts = line.split(" ");
      int port = Integer.parseInt(parts[1]);
      long bytes = Long.parseLong(parts[3]);
      assertTrue(bytes > (2L << 30), "the version is above 2 GiB: " + bytes);
      SyntheticWeights.Check check = new SyntheticWeights.Check();
      long start = System.nanoTime();
      WeightStream.Decoder d = WeightFetcher.fetch(system, "127.0.0.1", port, check, bytes, Duration.ofSeconds(30), -1)
          .toCompletableFuture().get(10, TimeUnit.MINUTES);
      double seconds = (System.nanoTime() - start) / 1e9;
      System.out.printf("2.3 GB version across JVMs: %.1f s, %.0f MB/s%n", seconds, bytes / seconds / 1e6);
      assertEquals(bytes, d.bytes());
      assertEquals(count, check.tensors, "every tensor arrived with its checksum matching");
      assertEquals(count * each, check.values);
      assertEquals(0, check.wrong, "values differ from what was sent");
    } finally {
      child.getOutputStream().close();
      if (!child.waitFor(20, TimeUnit.SECONDS)) {
        child.destroyForcibly();
      }
      system.terminate();
    }
  }
}
