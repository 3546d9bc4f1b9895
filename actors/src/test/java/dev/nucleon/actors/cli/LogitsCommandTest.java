package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code nucleon logits} prints, per position, the logits the golden reference has for that model and sequence. */
class LogitsCommandTest {

  @Test
  void printsTheReferenceLogitsOfAQwen3Checkpoint(@TempDir Path dir) throws Exception {
    Path model = Files.createDirectories(dir.resolve("qwen3-tiny"));
    for (String f : List.of("config.json", "model.safetensors", "golden.jsonl")) {
      CliRun.copyResource("golden/qwen3-tiny/" + f, model);
    }
    ObjectMapper json = new ObjectMapper();
    JsonNode golden = json.readTree(Files.readAllLines(model.resolve("golden.jsonl")).get(0));
    List<String> ids = new ArrayList<>();
    golden.get("input_ids").forEach(n -> ids.add(n.asText()));

    CliRun run = CliRun.of("logits", "--model", model.toString(), "--ids", String.join(",", ids));
    assertEquals(0, run.exitCode(), run.err());
    List<String> lines = run.out().strip().lines().toList();
    assertEquals(ids.size(), lines.size(), "one line per position");
    double worst = 0;
    for (int p = 0; p < lines.size(); p++) {
      JsonNode line = json.readTree(lines.get(p));
      assertEquals(p, line.get("pos").asInt());
      assertEquals(Long.parseLong(ids.get(p)), line.get("id").asLong());
      JsonNode want = golden.get("logits").get(p);
      assertEquals(want.size(), line.get("logits").size(), "vocabulary-size rows");
      for (int k = 0; k < want.size(); k++) {
        worst = Math.max(worst, Math.abs(want.get(k).asDouble() - line.get("logits").get(k).asDouble()));
      }
    }
    assertTrue(worst < 1e-4, "max |logit - reference| " + worst);

    CliRun bad = CliRun.of("logits", "--model", model.toString(), "--ids", "5,384");
    assertNotEquals(0, bad.exitCode());
    assertTrue(bad.err().contains("token 384 at position 1") && bad.err().contains("[0, 384)"), bad.err());
  }
}
