package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code ./nucleon} launcher's JVM flags: on two cores or fewer it leaves the optimizing JIT compiler off (it
 * competed with the learner and the generator there), elsewhere it keeps tiered compilation, and a user's
 * {@code JAVA_OPTS} come after its own flags, so they win. Runs the real script with {@code java} and {@code nproc}
 * replaced by stand-ins on the PATH: the stand-in java prints the arguments it got.
 */
class LauncherTest {

  private static final String C1_ONLY = "-XX:TieredStopAtLevel=1";

  @Test
  void twoCoresRunTheJvmWithoutItsOptimizingCompiler(@TempDir Path tmp) throws Exception {
    List<String> args = launch(tmp, 2, "", Map.of());
    assertTrue(args.contains(C1_ONLY), "2 cores: " + args);
    assertTrue(args.indexOf(C1_ONLY) < args.indexOf("dev.nucleon.actors.cli.NucleonCli"), String.valueOf(args));
    assertEquals("train", args.get(args.size() - 2));
    assertEquals("run.conf", args.get(args.size() - 1));
  }

  @Test
  void moreCoresKeepTieredCompilation(@TempDir Path tmp) throws Exception {
    List<String> args = launch(tmp, 3, "", Map.of());
    assertFalse(args.stream().anyMatch(a -> a.startsWith("-XX:TieredStopAtLevel")), "3 cores: " + args);
  }

  @Test
  void aThreadCountInTheEnvironmentIsNotACoreCount(@TempDir Path tmp) throws Exception {
    // GNU nproc prints OMP_NUM_THREADS when it is set (the stand-in does too): one libtorch thread on 8 cores
    List<String> args = launch(tmp, 8, "", Map.of("OMP_NUM_THREADS", "1", "OMP_THREAD_LIMIT", "1"));
    assertFalse(args.stream().anyMatch(a -> a.startsWith("-XX:TieredStopAtLevel")), "8 cores: " + args);
  }

  @Test
  void javaOptsComeLastSoTheUserWins(@TempDir Path tmp) throws Exception {
    List<String> args = launch(tmp, 1, "-XX:TieredStopAtLevel=4 -Dai.djl.offline=false", Map.of());
    // HotSpot takes the last of repeated flags
    assertTrue(args.indexOf(C1_ONLY) >= 0 && args.indexOf(C1_ONLY) < args.indexOf("-XX:TieredStopAtLevel=4"),
        String.valueOf(args));
    assertTrue(args.indexOf("-Dai.djl.offline=true") < args.indexOf("-Dai.djl.offline=false"), String.valueOf(args));
  }

  /**
   * Runs {@code ./nucleon train run.conf} with {@code cores} reported by nproc and {@code extraEnv} set; returns what
   * java was given.
   */
  private static List<String> launch(Path tmp, int cores, String javaOpts, Map<String, String> extraEnv)
      throws IOException, InterruptedException {
    Path bin = Files.createDirectories(tmp.resolve("bin"));
    stub(bin.resolve("java"), "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n");
    stub(bin.resolve("nproc"), "#!/bin/sh\n[ -n \"$OMP_NUM_THREADS\" ] && { echo \"$OMP_NUM_THREADS\"; exit; }\necho "
        + cores + "\n");
    Path out = tmp.resolve("out.txt");
    ProcessBuilder pb = new ProcessBuilder("bash", launcher().toString(), "train", "run.conf")
        .redirectErrorStream(true).redirectOutput(out.toFile());
    Map<String, String> env = pb.environment();
    env.putAll(extraEnv);
    env.put("PATH", bin + ":" + env.getOrDefault("PATH", "/usr/bin:/bin"));
    // a prebuilt jar: the launcher then neither checks the sources nor builds
    env.put("NUCLEON_JAR", tmp.resolve("nucleon.jar").toString());
    env.put("JAVA_OPTS", javaOpts);
    Process p = pb.start();
    if (!p.waitFor(30, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("launcher did not finish in 30 s");
    }
    String printed = Files.readString(out, StandardCharsets.UTF_8);
    assertEquals(0, p.exitValue(), printed);
    return printed.lines().toList();
  }

  /** The repository's launcher: the first folder up from the working directory that holds it and mvnw. */
  private static Path launcher() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      if (Files.isRegularFile(dir.resolve("nucleon")) && Files.isRegularFile(dir.resolve("mvnw"))) {
        return dir.resolve("nucleon");
      }
    }
    throw new AssertionError("no ./nucleon above " + Path.of("").toAbsolutePath());
  }

  private static void stub(Path file, String script) throws IOException {
    Files.writeString(file, script);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
  }
}
