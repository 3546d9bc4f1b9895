package dev.nucleon.actors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.actors.run.RunConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Run settings for tests: the real quickstart file with small overrides. Tests run in actors/, the repo is ../ */
final class TestRuns {
  private TestRuns() {}

  static final Path REPO = Path.of("..").toAbsolutePath().normalize();

  static Map<String, String> small() {
    Map<String, String> o = new LinkedHashMap<>();
    o.put("nucleon.model.path", "\"" + REPO.resolve("conf/models/quickstart-base") + "\"");
    o.put("nucleon.run.total-steps", "4");
    o.put("nucleon.run.eval.size", "20");
    o.put("nucleon.run.eval.every-steps", "0");
    o.put("nucleon.algorithm.group-size", "4");
    o.put("nucleon.algorithm.batch-groups", "4");
    o.put("nucleon.rollout.groups-per-batch", "4");
    o.put("nucleon.monitor.dashboard.enabled", "false");
    o.put("nucleon.monitor.progress.mode", "off");
    // the quickstart's auto is bf16 on machines with bfloat16 units: tests compute the same on every machine, and
    // the sampler-learner log-prob agreement they check is float32's
    o.put("nucleon.learner.dtype", "f32");
    return o;
  }

  static RunSettings settings(Map<String, String> overrides) {
    return RunSettings.from(RunConfig.load(REPO.resolve("conf/quickstart.conf"), overrides));
  }

  /**
   * Checks that on every step row with a log-prob gap (tokens the learner's current weights sampled) the sampler's
   * log-probs lie within 1e-3 of the learner's, and that at least {@code atLeast} rows had one.
   */
  static void assertSamplerMatchesLearner(Path runDir, int atLeast) throws IOException {
    int checked = 0;
    for (JsonNode row : rows(runDir, "step")) {
      if (row.has("logprob_gap_max")) {
        checked++;
        org.junit.jupiter.api.Assertions.assertTrue(row.get("logprob_gap_max").asDouble() < 1e-3, "step "
            + row.get("step") + ": sampler vs learner log-prob gap " + row.get("logprob_gap_max"));
      }
    }
    org.junit.jupiter.api.Assertions.assertTrue(checked >= atLeast, "steps with a log-prob gap: " + checked);
  }

  static List<JsonNode> rows(Path runDir, String type) throws IOException {
    ObjectMapper json = new ObjectMapper();
    List<JsonNode> out = new ArrayList<>();
    for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
      JsonNode n = json.readTree(line);
      if (n.get("type").asText().equals(type)) {
        out.add(n);
      }
    }
    return out;
  }
}
