package dev.nucleon.reward.remote;

import dev.nucleon.core.sandbox.Sandbox;

import static dev.nucleon.reward.remote.HttpRewardTest.assertConfigError;
import static dev.nucleon.reward.remote.HttpRewardTest.assertFailedWith;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Runs the process reward with small POSIX shell scripts. */
class ProcessRewardTest {

  @TempDir
  Path root;

  @org.junit.jupiter.api.BeforeEach
  void othersMayTraverseTheWorkDir() throws Exception {
    // a root JVM runs the command as nobody, who must reach its folder (JUnit makes the folder 0700)
    Files.setPosixFilePermissions(root, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
  }

  private static final String NO_SANDBOX = "sandbox { cpu-time = 0s, memory = 0, output = 0, processes = 0, "
      + "network = true }";

  private RewardFunction reward(String script, String extra) {
    return new ProcessReward.Factory().create(ConfigFactory.parseString(extra)
        .withValue("command", ConfigValueFactory.fromIterable(List.of("/bin/sh", "-c", script)))
        .withValue("work-dir", ConfigValueFactory.fromAnyRef(root.toString())));
  }

  private static List<RewardRequest> requests(int n) {
    return java.util.stream.IntStream.range(0, n).mapToObj(i -> RewardRequest.of("c" + i, "g")).toList();
  }

  @Test
  void readsOneResultPerLineAndPassesRequestsAsJsonLines() throws Exception {
    // reward 1 when the request line carries its completion, with a component; the environment reaches the script
    String script = "while IFS= read -r line; do case \"$line\" in *'\"completion\":\"c1\"'*) "
        + "echo '{\"reward\": 1, \"components\": {\"tests_passed\": 3}}';; *) echo \"$BONUS\";; esac; done";
    List<RewardResult> out = reward(script, "env { BONUS = \"0.25\" }").score(requests(3));
    assertEquals(RewardResult.ok(0.25), out.get(0));
    assertEquals(RewardResult.ok(1, Map.of("tests_passed", 3.0)), out.get(1));
    assertEquals(RewardResult.ok(0.25), out.get(2));
    try (Stream<Path> left = Files.walk(root)) {
      assertEquals(0, left.filter(p -> p.getFileName().toString().startsWith("nucleon-reward-")).count(),
          "the call's directory is deleted");
    }
  }

  @Test
  void eachCallHasItsOwnWorkingDirectory() {
    // counts the files it finds, then leaves one behind: a shared directory would make the second call see it
    RewardFunction r = reward("n=$(ls | wc -l); touch leftover; while read -r l; do echo $n; done", "");
    assertEquals(0.0, r.score(requests(1)).get(0).reward());
    assertEquals(0.0, r.score(requests(1)).get(0).reward());
  }

  @Test
  void aHangingCommandIsKilledWithItsChildren() throws Exception {
    Path pidFile = root.resolve("child.pid");
    // without the sandbox (whose PID namespace would hide the child's pid from this test): the kill of every
    // descendant by the JVM itself
    RewardFunction r = reward("sleep 60 & echo $! > " + pidFile + "; sleep 60", "timeout = 500ms, " + NO_SANDBOX);
    long start = System.nanoTime();
    List<RewardResult> out = r.score(requests(2));
    assertTrue((System.nanoTime() - start) / 1e9 < 10);
    out.forEach(x -> assertFailedWith(x, "timed out after 500 ms", "killed"));
    long child = Long.parseLong(Files.readString(pidFile).trim());
    Thread.sleep(200);
    assertTrue(!running(child), "child " + child + " still runs");
  }

  /** Whether a process runs; a zombie (killed, not yet reaped by a container's init) does not. */
  private static boolean running(long pid) throws Exception {
    Path stat = Path.of("/proc/" + pid + "/stat");
    if (Files.exists(stat)) {
      String text = Files.readString(stat);
      char state = text.charAt(text.lastIndexOf(')') + 2);
      return state != 'Z' && state != 'X';
    }
    return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
  }

  @Test
  void stderrAndExitCodeGoIntoTheReason() {
    RewardFunction r = reward("echo 'Traceback: NameError: x' >&2; exit 3", "");
    assertFailedWith(r.score(requests(1)).get(0), "exited with 3", "stderr: Traceback: NameError: x");
  }

  @Test
  void wrongOutputFailsTheBatchNamingTheLine() {
    assertFailedWith(reward("cat > /dev/null; echo 1", "").score(requests(2)).get(0), "wrote 1 results for 2");
    assertFailedWith(reward("cat > /dev/null; echo 1; echo yes", "").score(requests(2)).get(1),
        "output line 2 is malformed", "yes");
  }

  @Test
  void badConfigIsNamed() {
    assertConfigError(() -> new ProcessReward.Factory().create(ConfigFactory.empty()), "command");
    assertConfigError(() -> new ProcessReward.Factory().create(ConfigFactory.parseString(
        "command = [\"true\"], timeout = -1s")), "timeout");
  }

  // ------------------------------------------------------------------------------------------------ sandbox
  // every hostile script below is bounded by itself too (a few dozen processes at most, a bounded loop), so that a
  // machine without the sandbox stays intact and the test only fails

  private static void assumeSandbox() {
    Sandbox.Support s = Sandbox.support();
    org.junit.jupiter.api.Assumptions.assumeTrue(s.prlimit() && s.namespaces() && (s.dropRoot() || !Sandbox.isRoot()),
        "prlimit, unprivileged user namespaces and (as root) setpriv are needed: " + s);
  }

  @Test
  void theSandboxHasNoNetworkUnlessAskedFor() throws Exception {
    assumeSandbox();
    try (java.net.ServerSocket listening = new java.net.ServerSocket(0, 50,
        java.net.InetAddress.getLoopbackAddress())) {
      String script = "while read -r l; do if (exec 3<>/dev/tcp/127.0.0.1/" + listening.getLocalPort()
          + ") 2>/dev/null; then echo 1; else echo 0; fi; done";
      List<String> bash = List.of("bash", "-c", script);
      assertEquals(0.0, withCommand(bash, "").score(requests(1)).get(0).reward(), "no network by default");
      assertEquals(1.0, withCommand(bash, "sandbox.network = true").score(requests(1)).get(0).reward());
    }
  }

  @Test
  void endlessOutputCpuLoopsAndHugeAllocationsFailWithinTheirLimits() {
    assumeSandbox();
    String strict = "sandbox { output = 100KiB, cpu-time = 1s, memory = 200MiB }, timeout = 30s";
    // the control: a well-behaved command under the same limits, as nobody, in its own HOME, scores
    RewardResult fine = withCommand(List.of("bash", "-c",
        "while read -r l; do case \"$HOME\" in */work) echo 1;; *) echo 0;; esac; done"), strict)
        .score(requests(1)).get(0);
    assertEquals(RewardResult.ok(1), fine, "a well-behaved command runs, with HOME in its working directory");
    long start = System.nanoTime();
    // 50 MB of output at most, in case the limit did not hold
    RewardResult yes = withCommand(List.of("bash", "-c", "yes | head -c 50000000"), strict).score(requests(1)).get(0);
    assertFailedWith(yes, "exited with");
    RewardResult spin = withCommand(List.of("bash", "-c", "for ((i = 0; i < 4000000000; i++)); do :; done; echo 1"),
        strict).score(requests(1)).get(0);
    assertFailedWith(spin, "exited with");
    RewardResult hog = withCommand(List.of("bash", "-c",
        "a=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#a}"), strict).score(requests(1)).get(0);
    assertFailedWith(hog, "exited with");
    double seconds = (System.nanoTime() - start) / 1e9;
    assertTrue(seconds < 25, "the limits ended them, not the 30 s timeouts: " + seconds + " s");
  }

  @Test
  void aForkBombGetsFewProcessesAndNoneOutlivesTheCall() throws Exception {
    assumeSandbox();
    // 24 background sleeps of a marked length under a limit of 8 processes: bash's fork fails (after its own
    // retries) and bash gives up, so the call fails by itself, well within its timeout
    String script = "for i in {1..24}; do sleep 7.77 & done; while read -r l; do echo 1; done";
    long start = System.nanoTime();
    RewardResult r = withCommand(List.of("bash", "-c", script), "sandbox.processes = 8, timeout = 60s")
        .score(requests(1)).get(0);
    assertFailedWith(r, "bash exited with");
    assertTrue((System.nanoTime() - start) / 1e9 < 45, "ended by the process limit, not the timeout");
    // the sleeps it did start die with the PID namespace when the command ends
    long left = ProcessHandle.allProcesses().filter(p -> p.info().arguments().map(a -> List.of(a).contains("7.77"))
        .orElse(false)).count();
    assertEquals(0, left, "no process of the call is left");
  }

  private RewardFunction withCommand(List<String> command, String extra) {
    return new ProcessReward.Factory().create(ConfigFactory.parseString(extra)
        .withValue("command", ConfigValueFactory.fromIterable(command))
        .withValue("work-dir", ConfigValueFactory.fromAnyRef(root.toString())));
  }
}
