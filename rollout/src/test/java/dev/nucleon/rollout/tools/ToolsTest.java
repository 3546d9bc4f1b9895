package dev.nucleon.rollout.tools;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import dev.nucleon.rollout.env.ToolEnvironment;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Tool calls as each model family writes them, the exact calculator, and the {@code tools} environment: calls run
 * and come back as tool messages, bad calls come back as errors the model can read (and are counted), a turn
 * without calls is the answer.
 */
class ToolsTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void hermesCallsAreReadWhereverTheyStandAndBrokenOnesSayWhy() throws Exception {
    ToolCallFormat.Parsed p = ToolCallFormat.HERMES.parse("Let me compute.\n<tool_call>\n{\"name\": \"calculator\", "
        + "\"arguments\": {\"expression\": \"2+3\"}}\n</tool_call>\n<tool_call>{\"name\": \"calculator\", "
        + "\"arguments\": \"{\\\"expression\\\": \\\"7*6\\\"}\"}</tool_call>");
    assertEquals(List.of(new ToolCall("calculator", JSON.readTree("{\"expression\": \"2+3\"}")),
        new ToolCall("calculator", JSON.readTree("{\"expression\": \"7*6\"}"))), p.calls);
    assertTrue(p.errors.isEmpty(), p.errors.toString());
    assertTrue(ToolCallFormat.HERMES.parse("The answer is 5.").isAnswer());
    ToolCallFormat.Parsed broken = ToolCallFormat.HERMES.parse("<tool_call>{\"name\": \"calculator\", "
        + "\"arguments\": {\"expression\": \"2+</tool_call><tool_call>{\"arguments\": {}}</tool_call>"
        + "<tool_call>{\"name\": \"calculator\"");
    assertEquals(0, broken.calls.size());
    assertEquals(4, broken.errors.size(), "the last is unclosed and unreadable: " + broken.errors);
    assertTrue(broken.errors.get(0).contains("not valid JSON"), broken.errors.toString());
    assertTrue(broken.errors.get(1).contains("needs a \"name\""), broken.errors.toString());
    assertTrue(broken.errors.stream().anyMatch(e -> e.contains("not closed")), broken.errors.toString());
  }

  @Test
  void llama3CallsAreTheWholeTurnAsJson() throws Exception {
    ToolCallFormat.Parsed p = ToolCallFormat.LLAMA3.parse("<|python_tag|>{\"name\": \"calculator\", \"parameters\": "
        + "{\"expression\": \"1/3\"}}; {\"name\": \"calculator\", \"parameters\": {\"expression\": \"2;3\"}}");
    assertEquals(List.of(new ToolCall("calculator", JSON.readTree("{\"expression\": \"1/3\"}")),
        new ToolCall("calculator", JSON.readTree("{\"expression\": \"2;3\"}"))), p.calls);
    assertTrue(ToolCallFormat.LLAMA3.parse("It is {probably} 5").isAnswer());
    assertEquals(1, ToolCallFormat.LLAMA3.parse("{\"name\": \"calculator\", \"parameters\": [1]}").errors.size());
  }

  @Test
  void harmonyCallsGoToAFunctionOnTheCommentaryChannel() throws Exception {
    String turn = "<|channel|>analysis<|message|>I should add.<|end|><|start|>assistant<|channel|>commentary "
        + "to=functions.calculator <|constrain|>json<|message|>{\"expression\":\"40+2\"}<|call|>";
    ToolCallFormat.Parsed p = ToolCallFormat.HARMONY.parse(turn);
    assertEquals(List.of(new ToolCall("calculator", JSON.readTree("{\"expression\":\"40+2\"}"))), p.calls);
    ToolCallFormat.Parsed before = ToolCallFormat.HARMONY.parse(
        " to=functions.calculator<|channel|>commentary json<|message|>{\"expression\":\"1\"}<|call|>");
    assertEquals(1, before.calls.size(), "the recipient may stand before the channel");
    assertTrue(ToolCallFormat.HARMONY.parse("<|channel|>final<|message|>42").isAnswer());
    assertTrue(ToolCallFormat.HARMONY.parse("<|channel|>commentary to=functions.calculator <|constrain|>json"
        + "<|message|>{oops<|call|>").errors.get(0).contains("not valid JSON"));
    assertThrows(IllegalArgumentException.class, () -> ToolCallFormat.of("xml"));
  }

  @Test
  void theCalculatorIsExactAndSaysWhatIsWrong() {
    assertEquals("1", CalculatorTool.format(CalculatorTool.evaluate("1/3*3")));
    assertEquals("42", CalculatorTool.format(CalculatorTool.evaluate(" (12 + 30) * 7 / 7 ")));
    assertEquals("1/3 = 0.333333333333", CalculatorTool.format(CalculatorTool.evaluate("1/3")));
    assertEquals("0.3", CalculatorTool.format(CalculatorTool.evaluate("0.1+0.2")).split(" = ")[1]);
    assertEquals("-512", CalculatorTool.format(CalculatorTool.evaluate("-2^3^2")), "right-associative, then minus");
    assertEquals("-4", CalculatorTool.format(CalculatorTool.evaluate("-2^2")), "a power binds tighter than a minus");
    assertEquals("4", CalculatorTool.format(CalculatorTool.evaluate("(-2)^2")));
    assertEquals("-6", CalculatorTool.format(CalculatorTool.evaluate("2*-3")));
    assertEquals("-1", CalculatorTool.format(CalculatorTool.evaluate("-".repeat(999) + "1")));
    assertEquals("1/8 = 0.125", CalculatorTool.format(CalculatorTool.evaluate("2^-3")));
    assertEquals("1267650600228229401496703205376", CalculatorTool.format(CalculatorTool.evaluate("2^100")));
    for (String[] bad : new String[][] {{"1/0", "division by zero"}, {"2^0.5", "must be an integer"},
        {"(1+2", "missing ')'"}, {"1+", "ends too early"}, {"2 x 3", "unexpected 'x'"},
        {"10^1000^1000", "must be an integer of at most"}, {"(10^1000)^100", "more than"},
        {"(".repeat(150) + "1" + ")".repeat(150), "nested"}, {"-".repeat(1000) + "1", "longer than"},
        {"(3^1000)^62", "more than"}}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> CalculatorTool.evaluate(bad[0]), bad[0]);
      assertTrue(e.getMessage().contains(bad[1]), bad[0] + ": " + e.getMessage());
    }
  }

  @Test
  void hostileTurnsAreParsedInLinearTime() {
    // runs of text that start a call and never finish it: each parse stays far below a second
    String[] hostile = {"to=functions.x".repeat(20_000), "<tool_call>{".repeat(20_000),
        "<|channel|>commentary to=functions." + "a".repeat(200_000), "{\"name\": " + "[".repeat(100_000)};
    for (String turn : hostile) {
      for (ToolCallFormat f : ToolCallFormat.values()) {
        long start = System.nanoTime();
        f.parse(turn);
        assertTrue((System.nanoTime() - start) / 1e9 < 5, f + " took " + (System.nanoTime() - start) / 1e9 + " s");
      }
    }
  }

  @Test
  void theToolsEnvironmentRunsCallsAnswersErrorsAndEndsOnAnAnswer() {
    ToolEnvironment env = new ToolEnvironment.Factory().create(ConfigFactory.parseString("max-calls = 2"));
    try (env) {
      assertEquals("calculator", ((Map<?, ?>) env.declarations().get(0).get("function")).get("name"));
      Episode e = env.start(new EpisodeStart(1, 0, "What is 12*34?", "408", Map.of()));
      StepResult r = e.step("<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"12*34\"}}"
          + "</tool_call><tool_call>{\"name\": \"search\", \"arguments\": {}}</tool_call>"
          + "<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expr\": \"1\"}}</tool_call>");
      assertEquals(List.of(EnvMessage.tool("calculator", "408"),
          EnvMessage.tool("search", "error: unknown tool 'search'; the tools are [calculator]"),
          EnvMessage.tool("calculator", "error: at most 2 calls per turn; this one was not run")),
          r.observation());
      StepResult bad = e.step("<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expr\": \"1\"}}</tool_call>"
          + "<tool_call>not json</tool_call>");
      assertTrue(bad.observation().get(0).content().startsWith("error: a tool call is not valid JSON"),
          bad.observation().toString());
      assertTrue(bad.observation().get(1).content().startsWith("error: calculator takes {\"expression\""),
          bad.observation().toString());
      assertEquals(StepResult.end(null, "answered"), e.step("12*34 = 408"));
      assertEquals(Map.of("tool_calls", 3L, "tool_errors", 4L), e.counters());
    }
    ConfigException unknown = assertThrows(ConfigException.class, () -> new ToolEnvironment.Factory().create(
        ConfigFactory.parseString("tools = [calculator, browser]")));
    assertTrue(unknown.getMessage().contains("unknown tool 'browser'"), unknown.getMessage());
    assertThrows(ConfigException.class, () -> new ToolEnvironment.Factory().create(
        ConfigFactory.parseString("format = xml")));
  }

  /** A harmony turn ends at {@code <|call|>}: the tools environment adds it to the model's stop tokens. */
  @Test
  void harmonyTurnsStopAtTheirCall() {
    try (var env = new dev.nucleon.rollout.env.GuardedEnvironment(new ToolEnvironment.Factory().create(
        ConfigFactory.parseString("format = harmony")), "tools", java.time.Duration.ofSeconds(5))) {
      assertEquals(List.of("<|call|>"), env.turnStops());
      assertArrayEquals(new int[] {2, 3, 7},
          dev.nucleon.rollout.env.EpisodeRunner.stopTokens(new int[] {2, 3, 2}, env, new Characters(true)));
      // a model whose vocabulary splits <|call|> cannot end a harmony call: refused, naming the text
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> dev.nucleon.rollout.env.EpisodeRunner.stopTokens(new int[] {2}, env, new Characters(false)));
      assertTrue(e.getMessage().contains("'tools' ends turns at '<|call|>'"), e.getMessage());
    }
    try (ToolEnvironment hermes = new ToolEnvironment.Factory().create(ConfigFactory.parseString("format = hermes"))) {
      assertEquals(List.of(), hermes.turnStops());
    }
  }

  /** One token per character; with {@code callToken}, {@code <|call|>} is the single token 7. */
  private record Characters(boolean callToken) implements dev.nucleon.model.tokenizer.TextTokenizer {
    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
      return callToken && text.equals("<|call|>") ? new int[] {7} : text.chars().map(c -> 100 + c).toArray();
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
      throw new UnsupportedOperationException("not needed here");
    }

    @Override
    public int vocabSize() {
      return 300;
    }

    @Override
    public int bosId() {
      return 1;
    }

    @Override
    public int[] eosIds() {
      return new int[] {2};
    }
  }

  @Test
  void thePythonToolRunsProgramsInTheSandboxAndLeavesNothingBehind(@org.junit.jupiter.api.io.TempDir
      java.nio.file.Path root) throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(java.nio.file.Files.isExecutable(java.nio.file.Path.of(
        "/usr/bin/python3")), "no /usr/bin/python3 here");
    dev.nucleon.core.sandbox.Sandbox.Support s = dev.nucleon.core.sandbox.Sandbox.support();
    org.junit.jupiter.api.Assumptions.assumeTrue(s.prlimit() && s.namespaces()
        && (s.dropRoot() || !dev.nucleon.core.sandbox.Sandbox.isRoot()), "the sandbox needs prlimit, namespaces: " + s);
    // a root JVM runs the programs as nobody, who must reach their folder (JUnit makes the folder 0700)
    java.nio.file.Files.setPosixFilePermissions(root, java.nio.file.attribute.PosixFilePermissions.fromString(
        "rwx--x--x"));
    ToolEnvironment env = new ToolEnvironment.Factory().create(ConfigFactory.parseString("tools = [calculator, "
        + "python], call-timeout = 20s, python { timeout = 5s, max-output = 64B, work-dir = \"" + root + "\" }"));
    try (env) {
      assertEquals(List.of("calculator", "python"), env.declarations().stream()
          .map(d -> ((Map<?, ?>) d.get("function")).get("name")).toList());
      Episode e = env.start(new EpisodeStart(1, 0, "", "", Map.of()));
      List<EnvMessage> out = e.step("<tool_call>{\"name\": \"python\", \"arguments\": {\"code\": "
          + "\"print(6 * 7)\"}}</tool_call><tool_call>{\"name\": \"python\", \"arguments\": {\"code\": "
          + "\"print(1 / 0)\"}}</tool_call><tool_call>{\"name\": \"python\", \"arguments\": {\"code\": "
          + "\"while True: pass\"}}</tool_call><tool_call>{\"name\": \"python\", \"arguments\": {\"code\": "
          + "\"print('x' * 10000)\"}}</tool_call>").observation();
      assertEquals("exit status 0\n42\n", out.get(0).content());
      assertTrue(out.get(1).content().startsWith("exit status 1") && out.get(1).content().contains(
          "ZeroDivisionError"), out.get(1).content());
      assertTrue(out.get(2).content().startsWith("error: python: the program ran past 5000 ms"), out.get(2).content());
      assertTrue(out.get(3).content().contains("[output cut at 64 bytes]") && out.get(3).content().length() < 200,
          out.get(3).content());
      assertEquals(Map.of("tool_calls", 4L, "tool_errors", 1L), e.counters());
    }
    try (java.util.stream.Stream<java.nio.file.Path> left = java.nio.file.Files.list(root)) {
      assertEquals(List.of(), left.filter(p -> p.getFileName().toString().startsWith("nucleon-tool-")).toList(),
          "no program folder left");
    }
  }
}
