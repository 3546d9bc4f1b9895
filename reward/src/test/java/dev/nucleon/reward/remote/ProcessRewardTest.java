package dev.nucleon.reward.remote;

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
    try (Stream<Path> left = Files.list(root)) {
      assertEquals(0, left.count(), "the call's directory is deleted");
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
    RewardFunction r = reward("sleep 60 & echo $! > " + pidFile + "; sleep 60", "timeout = 500ms");
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
}
