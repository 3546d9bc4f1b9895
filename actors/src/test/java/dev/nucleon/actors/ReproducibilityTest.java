package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bit-reproducibility across processes: the same command run in two separate JVMs, one of them with a tiny young
 * generation (a collection every few megabytes, so GC timing differs completely), gives byte-identical weights.
 */
class ReproducibilityTest {

  /** {@code ./nucleon pretrain} twice: byte-identical model.safetensors. */
  @Test
  void pretrainGivesTheSameBytesInTwoProcesses(@TempDir Path dir) throws Exception {
    List<String> args = List.of("pretrain", TestRuns.REPO.resolve("conf/pretrain-quickstart.conf").toString(),
        "-Dnucleon.pretrain.max-steps=30", "-Dnucleon.pretrain.eval-every=15", "-Dnucleon.dataset.eval.size=50",
        "-Dnucleon.pretrain.model.dim=64", "-Dnucleon.pretrain.model.ffn=160");
    byte[] a = pretrain(dir.resolve("a"), args, List.of());
    byte[] b = pretrain(dir.resolve("b"), args, List.of("-Xmn4m"));
    assertTrue(a.length > 100_000, "a real checkpoint, " + a.length + " bytes");
    assertArrayEquals(a, b, "model.safetensors differs between two pretrain processes");
  }

  private static byte[] pretrain(Path out, List<String> args, List<String> jvm) throws Exception {
    List<String> all = new ArrayList<>(args);
    all.add("-Dnucleon.pretrain.output=\"" + out + "\"");
    run(out.resolveSibling(out.getFileName() + ".log"), jvm, all);
    return Files.readAllBytes(out.resolve("model.safetensors"));
  }

  /** A deterministic GRPO run twice: the same final weights and the same loss and reward at every step. */
  @Test
  void aDeterministicRunEndsWithTheSameWeightsInTwoProcesses(@TempDir Path dir) throws Exception {
    List<String> args = new ArrayList<>(List.of("train", TestRuns.REPO.resolve("conf/quickstart.conf").toString()));
    Map<String, String> o = TestRuns.small();
    o.put("nucleon.run.deterministic", "true");
    o.put("nucleon.algorithm.max-staleness", "0");
    o.put("nucleon.run.total-steps", "5");
    o.put("nucleon.algorithm.group-size", "8");
    o.forEach((k, v) -> args.add("-D" + k + "=" + v));
    Path a = train(dir.resolve("a"), args, List.of());
    Path b = train(dir.resolve("b"), args, List.of("-Xmn4m"));
    byte[] wa = Files.readAllBytes(finalWeights(a));
    byte[] wb = Files.readAllBytes(finalWeights(b));
    assertArrayEquals(wa, wb, "final weights differ between two deterministic runs");
    List<JsonNode> sa = TestRuns.rows(a, "step");
    List<JsonNode> sb = TestRuns.rows(b, "step");
    assertEquals(5, sa.size());
    for (int i = 0; i < sa.size(); i++) {
      for (String k : List.of("loss", "reward_mean", "grad_norm", "entropy", "completion_tokens")) {
        assertEquals(sa.get(i).get(k).asDouble(), sb.get(i).get(k).asDouble(), 0.0, "step " + (i + 1) + " " + k);
      }
      assertEquals(sa.get(i).get("prompts"), sb.get(i).get("prompts"), "step " + (i + 1) + " prompts");
    }
  }

  private static Path train(Path runDir, List<String> args, List<String> jvm) throws Exception {
    List<String> all = new ArrayList<>(args);
    all.add("--run-dir");
    all.add(runDir.toString());
    run(runDir.resolveSibling(runDir.getFileName() + ".log"), jvm, all);
    return runDir;
  }

  private static Path finalWeights(Path runDir) throws IOException {
    try (Stream<Path> s = Files.walk(runDir.resolve("checkpoints"))) {
      List<Path> found = s.filter(p -> p.getFileName().toString().equals("model.safetensors")).sorted().toList();
      assertTrue(!found.isEmpty(), "no checkpoint in " + runDir);
      return found.get(found.size() - 1);
    }
  }

  /** Runs the CLI in a fresh JVM with this test's class path; fails with the output's tail when it fails. */
  private static void run(Path log, List<String> jvm, List<String> args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.addAll(jvm);
    cmd.addAll(List.of("-Xss4m", "-Dai.djl.offline=true", "-DOPT_OUT_TRACKING=true",
        "-Dai.djl.default_engine=PyTorch", "-cp", System.getProperty("java.class.path"),
        "dev.nucleon.actors.cli.NucleonCli"));
    cmd.addAll(args);
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    if (!p.waitFor(4, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new AssertionError("timed out: " + String.join(" ", args));
    }
    String out = Files.readString(log);
    assertEquals(0, p.exitValue(), "exit code of " + String.join(" ", args) + ":\n"
        + out.substring(Math.max(0, out.length() - 4000)));
  }

  @Test
  void deterministicModeIsRefusedWhereItCannotHold() {
    Map<String, String> base = TestRuns.small();
    base.put("nucleon.run.deterministic", "true");
    base.put("nucleon.algorithm.max-staleness", "0");
    TestRuns.settings(base); // accepted as it is
    assertRefused(base, "nucleon.algorithm.max-staleness", "1", "synchronous");
    assertRefused(base, "nucleon.rollout.devices", "[cpu, cpu]", "one rollout worker");
    assertRefused(base, "nucleon.rollout.threads", "2", "one libtorch thread");
    assertRefused(base, "nucleon.rollout.groups-per-batch", "2", "groups-per-batch");
    assertRefused(base, "nucleon.replay.batch-tokens", "4096", "batches by groups");
    assertRefused(base, "nucleon.algorithm.drop-zero-variance", "true", "every sampled group");
    assertRefused(base, "nucleon.algorithm.drop-overlong", "true", "every sampled group");
  }

  private static void assertRefused(Map<String, String> base, String key, String value, String why) {
    Map<String, String> o = new java.util.LinkedHashMap<>(base);
    o.put(key, value);
    ConfigException e = assertThrows(ConfigException.class, () -> TestRuns.settings(o), key + " = " + value);
    assertTrue(e.getMessage().contains(key) && e.getMessage().contains(why), e.getMessage());
  }
}
