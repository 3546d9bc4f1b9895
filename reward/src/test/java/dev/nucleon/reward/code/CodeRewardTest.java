package dev.nucleon.reward.code;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.GuardedReward;
import dev.nucleon.core.sandbox.Sandbox;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs real programs: Java through the JDK's source launcher (always here), Python where {@code python3} is. The
 * hostile programs are bounded by themselves too, so a machine without the sandbox stays intact and the test only
 * fails.
 */
class CodeRewardTest {

  @TempDir
  Path root;

  private static final String ADD_TESTS = "[\"assert add(1, 2) == 3\", \"assert add(-1, 1) == 0\", "
      + "\"assert add(2, 2) == 5\"]";

  private RewardFunction reward(String extra) {
    return new CodeReward.Factory().create(ConfigFactory.parseString(extra)
        .withValue("work-dir", ConfigValueFactory.fromAnyRef(root.toString())));
  }

  private static RewardRequest request(String completion, Map<String, String> metadata) {
    return new RewardRequest("", completion, new int[0], "", metadata);
  }

  private static RewardRequest python(String code, String tests) {
    return request("Here it is:\n```python\n" + code + "\n```\n", Map.of("tests", tests));
  }

  private static void assumePython() {
    Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3")), "no /usr/bin/python3 here");
  }

  private static void assumeSandbox() {
    Sandbox.Support s = Sandbox.support();
    Assumptions.assumeTrue(s.prlimit() && s.namespaces(), "prlimit and unprivileged user namespaces are needed: " + s);
  }

  @BeforeEach
  void othersMayTraverseTheWorkDir() throws Exception {
    // a root JVM runs the programs as nobody, who must reach their folder (JUnit makes the folder 0700)
    Files.setPosixFilePermissions(root, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
  }

  @AfterEach
  void nothingIsLeftBehind() throws Exception {
    try (Stream<Path> left = Files.walk(root)) {
      assertEquals(List.of(), left.filter(p -> p.getFileName().toString().startsWith("nucleon-code-")).toList(),
          "every request's folder is deleted");
    }
  }

  @Test
  void pythonAssertsScoreAllOrTheFractionThatPass() {
    assumePython();
    String add = "def add(a, b):\n    return a + b";
    String fixed = ADD_TESTS.replace("== 5", "== 4");
    assertEquals(RewardResult.ok(1.0), reward("").scoreOne(python(add, fixed)));
    assertEquals(RewardResult.ok(0.0), reward("").scoreOne(python(add, ADD_TESTS)), "one of three fails: all = 0");
    RewardResult fraction = reward("scoring = fraction").scoreOne(python(add, ADD_TESTS));
    assertEquals(2.0 / 3, fraction.reward(), 1e-12);
    assertEquals(RewardResult.ok(0.0), reward("").scoreOne(python("def add(a, b):\n    return a - b", fixed)));
  }

  @Test
  void aSolutionThatExitsBeforeTheTestsPassesNothing() {
    assumePython();
    String fixed = ADD_TESTS.replace("== 5", "== 4");
    for (String cheat : List.of("import sys\nsys.exit(0)", "import os\nos._exit(0)",
        "print('nucleon-tests-passed-0')\nraise SystemExit")) {
      assertEquals(RewardResult.ok(0.0), reward("").scoreOne(python(cheat, fixed)), cheat);
    }
  }

  @Test
  void theSolutionIsTheLastBlockOfItsLanguageOrTheWholeText() {
    assumePython();
    String tests = "[\"assert sq(3) == 9\"]";
    String prose = "First try:\n```python\ndef sq(x):\n    return x + x\n```\nBetter:\n```py\ndef sq(x):\n"
        + "    return x * x\n```\nAnd in Java:\n```java\nclass A {}\n```\n";
    assertEquals(1.0, reward("").scoreOne(request(prose, Map.of("tests", tests))).reward());
    assertEquals(1.0, reward("").scoreOne(request("def sq(x):\n    return x ** 2\n", Map.of("tests", tests)))
        .reward(), "a bare program");
    assertEquals(0.0, reward("").scoreOne(request("```java\nclass A {}\n```", Map.of("tests", tests))).reward(),
        "blocks, none of them Python");
  }

  @Test
  void javaStatementsRunAfterTheSolutionsClassesWithAssertionsOn() {
    String completion = "```java\nimport java.util.List;\n\npublic class Solution {\n"
        + "  public static int total(List<Integer> xs) { return xs.stream().mapToInt(Integer::intValue).sum(); }\n"
        + "}\n```";
    String tests = "[\"import java.util.List;\\nassert Solution.total(List.of(1, 2, 3)) == 6;\", "
        + "\"assert Solution.total(java.util.List.of()) == 0;\"]";
    Map<String, String> java = Map.of("tests", tests, "language", "java");
    assertEquals(RewardResult.ok(1.0), reward("").scoreOne(request(completion, java)));
    Map<String, String> wrong = Map.of("tests", tests.replace("== 6", "== 7"), "language", "java");
    assertEquals(RewardResult.ok(0.0), reward("").scoreOne(request(completion, wrong)), "assert is on (-ea)");
    assertEquals(RewardResult.ok(0.0), reward("").scoreOne(request("```java\nclass Solution { int x = ; }\n```",
        java)), "a compile error scores 0");
  }

  @Test
  void standardInputCasesCompareTheOutputLineByLine() {
    String echoSum = "```java\nimport java.util.Scanner;\npublic class Solution {\n"
        + "  public static void main(String[] a) {\n    Scanner s = new Scanner(System.in);\n"
        + "    int n = s.nextInt(); long t = 0; for (int i = 0; i < n; i++) t += s.nextLong();\n"
        + "    System.out.println(t + \"   \");\n    System.out.println();\n  }\n}\n```";
    // two forms of the same cases; the second output is wrong
    String object = "{\"inputs\": [\"3\\n1 2 3\\n\", [\"2\", \"5 5\"]], \"outputs\": [\"6\\n\", \"11\"]}";
    String list = "[{\"input\": \"3\\n1 2 3\\n\", \"output\": \"6\"}, {\"input\": \"2\\n5 5\", \"output\": \"11\"}]";
    for (String tests : List.of(object, list)) {
      Map<String, String> row = Map.of("tests", tests, "language", "java");
      assertEquals(0.0, reward("").scoreOne(request(echoSum, row)).reward(), tests);
      assertEquals(0.5, reward("scoring = fraction").scoreOne(request(echoSum, row)).reward(), tests);
    }
    Map<String, String> right = Map.of("tests", object.replace("\"11\"", "\"10\\r\\n\""), "language", "java");
    assertEquals(1.0, reward("").scoreOne(request(echoSum, right)).reward(),
        "trailing spaces, blank lines and CR LF do not count");
  }

  @Test
  void rowsWithoutUsableTestsFailNamingWhy() {
    RewardFunction r = new GuardedReward(reward(""), "code", java.time.Duration.ofSeconds(30), 1);
    List<RewardResult> out = r.score(List.of(
        request("x", Map.of()),
        request("x", Map.of("tests", "[1, 2]")),
        request("x", Map.of("tests", "{\"inputs\": [\"1\"]}")),
        request("x", Map.of("tests", "{\"inputs\": [\"1\"], \"outputs\": []}")),
        request("x", Map.of("tests", "[\"assert 1\"", "language", "python")),
        request("x", Map.of("tests", "[]")),
        request("x", Map.of("tests", "assert True", "language", "cobol"))));
    List<String> why = List.of("metadata field 'tests'", "test 0 is not a string", "needs arrays \"inputs\"",
        "1 inputs but 0 outputs", "not JSON", "no tests", "no language 'cobol'");
    for (int i = 0; i < why.size(); i++) {
      assertFalse(out.get(i).isOk(), "request " + i + " fails");
      assertTrue(out.get(i).reason().contains(why.get(i)), out.get(i).reason() + " names " + why.get(i));
    }
  }

  @Test
  void badConfigIsNamed() {
    assertConfig("language = rust", "language");
    assertConfig("scoring = most", "scoring");
    assertConfig("timeout = 0s", "timeout");
    assertConfig("languages.python.program = \"{code}\"", "languages.python.program");
    assertConfig("languages.python.file = \"../x.py\"", "languages.python.file");
    assertConfig("languages.python.command = []", "languages.python.command");
  }

  private void assertConfig(String extra, String key) {
    ConfigException e = assertThrows(ConfigException.class, () -> reward(extra));
    assertTrue(e.getMessage().contains(key), e.getMessage() + " names " + key);
  }

  // ------------------------------------------------------------------------------------------------ hostile

  @Test
  void loopsEndlessOutputAndHugeAllocationsScoreZeroWithinTheirLimits() {
    assumePython();
    assumeSandbox();
    String strict = "sandbox { cpu-time = 1s, memory = 200MiB, output = 100KiB }, timeout = 30s";
    String ok = "[\"assert f() == 1\"]";
    assertEquals(1.0, reward(strict).scoreOne(python("def f():\n    return 1", ok)).reward(), "the control");
    long start = System.nanoTime();
    List<String> hostile = List.of(
        "def f():\n    i = 0\n    while i < 10 ** 12:\n        i += 1\n    return 1", // CPU
        "def f():\n    for _ in range(50000):\n        print('x' * 1000)\n    return 1", // 50 MB of output
        "def f():\n    b = bytearray(400_000_000)\n    return 1"); // 400 MB
    for (String code : hostile) {
      assertEquals(RewardResult.ok(0.0), reward(strict).scoreOne(python(code, ok)), code);
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    assertTrue(seconds < 25, "the limits ended them, not the 30 s timeouts: " + seconds + " s");
  }

  @Test
  void aHangingProgramIsKilledAtItsTimeoutWithEveryChild() {
    assumePython();
    String code = "import subprocess, time\nfor _ in range(3):\n    subprocess.Popen(['sleep', '7.79'])\n"
        + "time.sleep(60)\ndef f():\n    return 1";
    long start = System.nanoTime();
    assertEquals(RewardResult.ok(0.0), reward("timeout = 2s").scoreOne(python(code, "[\"assert f() == 1\"]")));
    assertTrue((System.nanoTime() - start) / 1e9 < 20, "ended at the timeout");
    assertEquals(0, alive("7.79"), "no child of the program is left");
  }

  @Test
  void aForkBombGetsFewProcessesAndNoneOutlivesTheRequest() {
    assumePython();
    assumeSandbox();
    String code = "import subprocess\nfor _ in range(24):\n    subprocess.Popen(['sleep', '7.77'])\ndef f():\n"
        + "    return 1";
    RewardResult r = reward("sandbox.processes = 8").scoreOne(python(code, "[\"assert f() == 1\"]"));
    assertEquals(RewardResult.ok(0.0), r, "the forks fail, and so does the program");
    assertEquals(0, alive("7.77"), "the sleeps it did start die with it");
  }

  @Test
  void noNetworkUnlessAskedFor() throws Exception {
    assumePython();
    assumeSandbox();
    try (java.net.ServerSocket listening = new java.net.ServerSocket(0, 50,
        java.net.InetAddress.getLoopbackAddress())) {
      String code = "import socket\ndef f():\n    socket.create_connection(('127.0.0.1', "
          + listening.getLocalPort() + "), timeout=3).close()\n    return 1";
      String tests = "[\"assert f() == 1\"]";
      assertEquals(0.0, reward("").scoreOne(python(code, tests)).reward(), "no network by default");
      assertEquals(1.0, reward("sandbox.network = true").scoreOne(python(code, tests)).reward());
    }
  }

  @Test
  void aLinkLeftByOneRunDoesNotRedirectTheNextWrite() throws Exception {
    assumePython();
    Path victim = Files.writeString(root.resolve("victim.txt"), "keep");
    // each run replaces its own program file by a link to the victim before the next run writes the program
    String code = "import os\nos.remove('solution.py')\nos.symlink(" + pyString(victim.toString())
        + ", 'solution.py')\ndef f():\n    return 1";
    RewardResult r = reward("scoring = fraction").scoreOne(python(code, "[\"assert f() == 1\", \"assert f() == 1\"]"));
    assertEquals(1.0, r.reward(), "both runs pass");
    assertEquals("keep", Files.readString(victim));
    Files.delete(victim);
  }

  @Test
  void aProgramCannotFindOtherRequestsFolders() {
    assumePython();
    Assumptions.assumeTrue(Sandbox.isRoot() && Sandbox.support().dropRoot(), "programs run as nobody only under root");
    // its own request folder and the folder of all requests are traversable, not listable
    String code = "import os\ndef f():\n    for d in ('..', '../..'):\n        try:\n            os.listdir(d)\n"
        + "            return 0\n        except PermissionError:\n            pass\n    return 1";
    assertEquals(1.0, reward("").scoreOne(python(code, "[\"assert f() == 1\"]")).reward());
  }

  private static String pyString(String s) {
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'";
  }

  private static long alive(String marker) {
    return ProcessHandle.allProcesses().filter(p -> p.info().arguments().map(a -> List.of(a).contains(marker))
        .orElse(false)).count();
  }
}
