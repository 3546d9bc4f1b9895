package dev.nucleon.rollout.data;

import static dev.nucleon.rollout.data.TestData.q;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DatasetTest {

  @TempDir Path dir;

  private Path resource(String name) {
    return TestData.copy("data/" + name, dir.resolve(name.substring(0, name.lastIndexOf('/'))));
  }

  private static Dataset load(String hocon) {
    return Dataset.load(DatasetSettings.parse("nucleon.dataset { " + hocon + " }"));
  }

  private static List<String> truths(List<DatasetRow> rows) {
    return rows.stream().map(DatasetRow::groundTruth).collect(Collectors.toList());
  }

  @Test
  void gsm8kGroundTruthIsTheNumberAfterTheHashes() {
    Dataset d = load("format = gsm8k, path = " + q(resource("gsm8k/sample.jsonl")) + ", eval.size = 0");
    assertEquals(List.of("72", "10", "5", "1080", "850000", "-7"), truths(d.train()));
    assertEquals(List.of(), d.eval());
    DatasetRow first = d.train().get(0);
    assertEquals(0L, first.id());
    assertEquals("Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
        + "May. How many clips did Natalia sell altogether in April and May?\nAnswer:", first.prompt());
    assertEquals(Map.of(), first.metadata());
  }

  @Test
  void gsm8kAnswerExtraction() {
    assertEquals("72", Dataset.gsm8kAnswer("Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"));
    assertEquals("1080", Dataset.gsm8kAnswer("so 1,080\n#### 1,080"));
    assertEquals("-7", Dataset.gsm8kAnswer("#### -7 "));
    assertThrows(IllegalArgumentException.class, () -> Dataset.gsm8kAnswer("The answer is 5."));
    assertThrows(IllegalArgumentException.class, () -> Dataset.gsm8kAnswer("#### five"));
  }

  @Test
  void copiedGsm8kFilesLoadCompletely() {
    Path data = TestData.repoRoot().resolve("conf/data/gsm8k");
    assertTrue(Files.isRegularFile(data.resolve("LICENSE")), "the license travels with the data");
    Dataset d = load("format = gsm8k, path = " + q(data.resolve("train.jsonl")) + ", eval.path = "
        + q(data.resolve("test.jsonl")) + ", eval.size = 0");
    assertEquals(7473, d.train().size());
    assertEquals(1319, d.eval().size());
    assertEquals("72", d.train().get(0).groundTruth());
    Set<Long> ids = new HashSet<>();
    for (DatasetRow r : d.train()) {
      assertTrue(r.groundTruth().matches("-?\\d+"), r.id() + ": " + r.groundTruth());
      ids.add(r.id());
    }
    for (DatasetRow r : d.eval()) {
      ids.add(r.id());
    }
    assertEquals(7473 + 1319, ids.size(), "ids are unique across train and eval");
    assertEquals(7473L, d.eval().get(0).id(), "the eval file's ids continue after the training file's");
  }

  @Test
  void math500JsonArray() {
    Dataset d = load("format = math500, path = " + q(resource("math500/sample.json"))
        + ", metadata-fields = [unique_id, difficulty], eval.size = 0");
    assertEquals(List.of("\\left( 3, \\frac{\\pi}{2} \\right)", "p - q", "\\frac{14}{3}", "9"), truths(d.train()));
    DatasetRow r = d.train().get(0);
    assertEquals(Map.of("unique_id", "test/precalculus/807.json", "difficulty", "2.0"), r.metadata());
    assertTrue(r.prompt().startsWith("Problem: Convert the point $(0,3)$"), r.prompt());
    assertTrue(r.prompt().endsWith("\nPut the final answer in \\boxed{}.\nSolution:"), r.prompt());
  }

  @Test
  void countdownUsesAllInputNumbersToReachTheOutput() {
    Dataset d = load("format = countdown, path = " + q(resource("countdown/sample.jsonl")) + ", eval.size = 0");
    DatasetRow r = d.train().get(0); // {"input": "30,100,93", "output": "23"}: 100 - 93 = 7, 30 - 7 = 23
    assertEquals("23", r.groundTruth());
    assertEquals(Map.of("numbers", "30,100,93", "target", "23"), r.metadata());
    assertTrue(r.prompt().startsWith("Using the numbers [30,100,93], create an equation that equals 23."),
        r.prompt());
    assertEquals(List.of("23", "10", "24", "43", "58"), truths(d.train()));
  }

  @Test
  void countdownNumbersMayBeAJsonArray() throws IOException {
    Path f = dir.resolve("tinyzero.jsonl");
    Files.writeString(f, "{\"nums\": [44, 19, 35], \"target\": 98}\n");
    Dataset d = load("format = countdown, path = " + q(f) + ", prompt-field = nums, answer-field = target,"
        + " template = \"{numbers} -> {target}\", eval.size = 0");
    assertEquals(Map.of("numbers", "44,19,35", "target", "98"), d.train().get(0).metadata());
    assertEquals("44,19,35 -> 98", d.train().get(0).prompt());
  }

  @Test
  void genericMappingAndTemplate() {
    Dataset d = load("format = generic, path = " + q(resource("generic/sample.jsonl"))
        + ", template = \"[{topic}] {prompt}\", metadata-fields = [topic, level], eval.size = 0");
    assertEquals(2, d.train().size(), "a blank line is skipped");
    assertEquals("[greeting] Say hi.", d.train().get(0).prompt());
    assertEquals("hi", d.train().get(0).groundTruth());
    assertEquals(Map.of("topic", "geography", "level", "2"), d.train().get(1).metadata());
    assertEquals(List.of(0L, 1L), d.train().stream().map(DatasetRow::id).collect(Collectors.toList()));

    Dataset mapped = load("format = generic, path = " + q(resource("generic/mapped.jsonl"))
        + ", prompt-field = text, answer-field = label, template = \"Q: {text}\\nA:\", eval.size = 0");
    assertEquals("Q: Name a primary colour.\nA:", mapped.train().get(0).prompt());
    assertEquals("red", mapped.train().get(0).groundTruth());
  }

  private String loadError(String name, String content, String hocon) throws IOException {
    Path f = dir.resolve(name);
    Files.writeString(f, content);
    return assertThrows(DatasetException.class,
        () -> load("path = " + q(f) + ", eval.size = 0, " + hocon)).getMessage();
  }

  @Test
  void malformedLineNamesFileAndLine() throws IOException {
    String good = "{\"prompt\": \"a\", \"answer\": \"b\"}\n";
    String e = loadError("bad.jsonl", good + "\n" + good + "{\"prompt\": \"a\", \"answer\": }\n" + good,
        "format = generic");
    assertTrue(e.contains("bad.jsonl:4:") && e.contains("malformed JSON"), e);

    String notObject = loadError("list.jsonl", good + "[1, 2]\n", "format = generic");
    assertTrue(notObject.contains("list.jsonl:2:") && notObject.contains("object"), notObject);

    String trailing = loadError("trail.jsonl", good + good.trim() + " {}\n", "format = generic");
    assertTrue(trailing.contains("trail.jsonl:2:"), trailing);

    String missing = loadError("missing.jsonl", good + good + "{\"prompt\": \"a\"}\n", "format = generic");
    assertTrue(missing.contains("missing.jsonl:3:") && missing.contains("'answer'"), missing);

    String noHashes = loadError("gsm.jsonl", "{\"question\": \"q\", \"answer\": \"#### 4\"}\n"
        + "{\"question\": \"q\", \"answer\": \"it is 4\"}\n", "format = gsm8k");
    assertTrue(noHashes.contains("gsm.jsonl:2:") && noHashes.contains("####"), noHashes);

    String placeholder = loadError("tpl.jsonl", good, "format = generic, template = \"{question}\"");
    assertTrue(placeholder.contains("tpl.jsonl:1:") && placeholder.contains("{question}"), placeholder);

    String meta = loadError("meta.jsonl", good, "format = generic, metadata-fields = [source]");
    assertTrue(meta.contains("meta.jsonl:1:") && meta.contains("'source'"), meta);

    String countdown = loadError("cd.jsonl", "{\"input\": \"3,x\", \"output\": \"1\"}\n", "format = countdown");
    assertTrue(countdown.contains("cd.jsonl:1:"), countdown);

    String array = loadError("arr.json", "[\n  {\"prompt\": \"a\", \"answer\": \"b\"},\n  {\"prompt\": \"c\",,}\n]\n",
        "format = generic");
    assertTrue(array.contains("arr.json:3:") && array.contains("malformed JSON"), array);

    String arrayMissing = loadError("arr2.json", "[\n  {\"prompt\": \"a\", \"answer\": \"b\"},\n\n  {\"prompt\": \"c\"}\n]",
        "format = generic");
    assertTrue(arrayMissing.contains("arr2.json:4:") && arrayMissing.contains("'answer'"), arrayMissing);

    String empty = loadError("empty.jsonl", "\n\n", "format = generic");
    assertTrue(empty.contains("empty.jsonl") && empty.contains("no rows"), empty);

    DatasetException absent = assertThrows(DatasetException.class,
        () -> load("format = generic, path = " + q(dir.resolve("nope.jsonl"))));
    assertTrue(absent.getMessage().contains("nope.jsonl"), absent.getMessage());
  }

  @Test
  void heldOutRowsComeOutOfTheTrainingFileAndStayPut() {
    Path data = TestData.repoRoot().resolve("conf/data/gsm8k/test.jsonl");
    Dataset d = load("format = gsm8k, path = " + q(data) + ", eval.size = 100");
    assertEquals(100, d.eval().size());
    assertEquals(1219, d.train().size());
    Set<Long> trainIds = d.train().stream().map(DatasetRow::id).collect(Collectors.toSet());
    Set<String> trainPrompts = d.train().stream().map(DatasetRow::prompt).collect(Collectors.toSet());
    for (DatasetRow r : d.eval()) {
      assertTrue(!trainIds.contains(r.id()) && !trainPrompts.contains(r.prompt()), "held out row in train: " + r);
    }
    // the held-out set depends on eval.seed only, not on the training order
    Dataset other = load("format = gsm8k, path = " + q(data) + ", eval.size = 100, shuffle-seed = 99");
    assertEquals(d.eval(), other.eval());
    Dataset reseeded = load("format = gsm8k, path = " + q(data) + ", eval.size = 100, eval.seed = 7");
    assertTrue(!d.eval().equals(reseeded.eval()));

    // no held-out row is ever handed out in training, in any epoch
    DatasetCursor cursor = Dataset.load(DatasetSettings.parse("nucleon.dataset { format = gsm8k, path = " + q(data)
        + ", eval.size = 100, epochs = 3 }")).cursor();
    Set<Long> evalIds = d.eval().stream().map(DatasetRow::id).collect(Collectors.toSet());
    int n = 0;
    while (cursor.hasNext()) {
      assertTrue(!evalIds.contains(cursor.next().id()));
      n++;
    }
    assertEquals(3 * 1219, n);
  }

  @Test
  void evalFileSample() {
    Path data = TestData.repoRoot().resolve("conf/data/gsm8k");
    String base = "format = gsm8k, path = " + q(data.resolve("test.jsonl")) + ", eval.path = "
        + q(resource("gsm8k/sample.jsonl"));
    Dataset d = load(base + ", eval.size = 4");
    assertEquals(4, d.eval().size());
    assertEquals(1319, d.train().size());
    assertEquals(d.eval(), load(base + ", eval.size = 4").eval());
    assertTrue(d.eval().get(0).id() >= 1319);
  }
}
