package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ScoreCommandTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path dir;

  /** Exit code, stdout and stderr of one {@code nucleon ...} call. */
  record Run(int exit, String out, String err) {
    List<JsonNode> lines() throws Exception {
      List<JsonNode> out = new ArrayList<>();
      for (String l : this.out.split("\n")) {
        if (!l.isBlank()) {
          out.add(JSON.readTree(l));
        }
      }
      return out;
    }
  }

  private static Run nucleon(String... args) {
    CliRun run = CliRun.of(args);
    return new Run(run.exitCode(), run.out(), run.err());
  }

  private Path file(String name, String text) throws Exception {
    Path p = dir.resolve(name);
    Files.writeString(p, text);
    return p;
  }

  @Test
  void scoresEachLineAndReportsMalformedOnesByNumber() throws Exception {
    Path in = file("in.jsonl", String.join("\n",
        "{\"response\": \"so the answer is 42\", \"gold\": \"42\"}",
        "{\"response\": \"I think 41.\", \"gold\": 42, \"prompt\": \"q\"}",
        "{\"response\": oops}",
        "",
        "{\"gold\": \"1\"}",
        "{\"response\": \"5\", \"gold\": \"five\"}",
        "{\"response\": \"#### 7\", \"gold\": \"#### 7\"}"));
    Run run = nucleon("score", "--reward", "gsm8k", "--in", in.toString());
    assertEquals(1, run.exit(), run.err());
    List<JsonNode> lines = run.lines();
    assertEquals(4, lines.size(), run.out());
    assertEquals(1, lines.get(0).get("line").asInt());
    assertEquals(1.0, lines.get(0).get("reward").asDouble());
    assertEquals(1.0, lines.get(0).get("components").get("correct").asDouble());
    assertEquals("ok", lines.get(0).get("outcome").asText());
    assertTrue(lines.get(0).get("reason").isNull());
    assertEquals(0.0, lines.get(1).get("reward").asDouble());
    // a ground truth without a number fails that line, with the reason, and the next line is still scored
    assertEquals(6, lines.get(2).get("line").asInt());
    assertEquals("failed", lines.get(2).get("outcome").asText());
    assertTrue(lines.get(2).get("reward").isNull());
    assertTrue(lines.get(2).get("reason").asText().contains("no number"), lines.get(2).toString());
    assertEquals(7, lines.get(3).get("line").asInt());
    assertEquals(1.0, lines.get(3).get("reward").asDouble());
    assertTrue(run.err().contains("line 3: not JSON"), run.err());
    assertTrue(run.err().contains("line 5: missing string field \"response\""), run.err());
  }

  @Test
  void readsRewardSettingsFromTheConfigFileAndMetadataFromExtraFields() throws Exception {
    Path conf = file("reward.conf", "nucleon.reward.countdown.format-reward = 0.1\n");
    Path in = file("cd.jsonl", String.join("\n",
        "{\"response\": \"<answer>30 - (100 - 93)</answer>\", \"gold\": \"23\", \"numbers\": [30, 100, 93]}",
        "{\"response\": \"<answer>30 + 100 - 93</answer>\", \"gold\": \"23\", \"numbers\": \"30,100,93\"}"));
    Run run = nucleon("score", "--reward", "countdown", "--config", conf.toString(), "--in", in.toString());
    assertEquals(0, run.exit(), run.err());
    List<JsonNode> lines = run.lines();
    assertEquals(1.0, lines.get(0).get("reward").asDouble());
    assertEquals(0.1, lines.get(1).get("reward").asDouble(), 1e-12);
  }

  @Test
  void unknownRewardsAndBadConfigAreClearErrors() throws Exception {
    Path in = file("in.jsonl", "{\"response\": \"1\", \"gold\": \"1\"}\n");
    Run unknown = nucleon("score", "--reward", "gsm9k", "--in", in.toString());
    assertEquals(1, unknown.exit());
    assertTrue(unknown.err().contains("unknown reward 'gsm9k'") && unknown.err().contains("gsm8k"), unknown.err());
    Path conf = file("bad.conf", "nucleon.reward.gsm8k.mode = loose\n");
    Run bad = nucleon("score", "--reward", "gsm8k", "--config", conf.toString(), "--in", in.toString());
    assertEquals(1, bad.exit());
    assertTrue(bad.err().contains("bad.conf") && bad.err().contains("mode") && bad.err().contains("loose"),
        bad.err());
    Run missing = nucleon("score", "--reward", "gsm8k", "--in", dir.resolve("nope.jsonl").toString());
    assertEquals(1, missing.exit());
    assertTrue(missing.err().contains("nope.jsonl: no such file"), missing.err());
  }
}
