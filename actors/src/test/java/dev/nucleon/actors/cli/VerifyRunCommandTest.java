package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.actors.run.RunDirectory;
import dev.nucleon.model.Engines;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A run's provenance record names the model and dataset files it read with their hashes, its seeds and the machine;
 * {@code nucleon verify-run} finds them unchanged, then names the file that changed and the one that went missing.
 */
class VerifyRunCommandTest {

  @Test
  void verifyRunNamesWhatChangedSinceTheRun(@TempDir Path tmp) throws Exception {
    Engines.start();
    Path model = Files.createDirectories(tmp.resolve("model"));
    for (String f : new String[] {"config.json", "model.safetensors"}) {
      CliRun.copyResource("golden/qwen3-tiny/" + f, model);
    }
    Path data = Files.writeString(tmp.resolve("train.jsonl"), "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n");
    Path run = Files.createDirectories(tmp.resolve("run"));
    Config config = ConfigFactory.parseString("nucleon.model.path = \"" + model + "\"\n"
        + "nucleon.dataset.path = \"" + data + "\"\n"
        + "nucleon.dataset.shuffle-seed = 7\nnucleon.run.seed = 3\nnucleon.cluster.seed-nodes = []\n");
    RunDirectory.writeConfig(run, config);
    Path record = RunDirectory.writeProvenance(run, config);

    JsonNode p = new ObjectMapper().readTree(record.toFile());
    assertEquals(3, p.get("inputs").size(), "config.json, model.safetensors, the dataset: " + p.get("inputs"));
    assertEquals(7, p.at("/seeds/nucleon.dataset.shuffle-seed").asInt());
    assertEquals(3, p.at("/seeds/nucleon.run.seed").asInt());
    assertTrue(p.at("/seeds").size() == 2, "seed-nodes is not a seed: " + p.get("seeds"));
    assertTrue(p.at("/machine/cores").asInt() > 0 && !p.at("/engine/libtorch").asText().isEmpty(), p.toString());
    assertEquals(64, p.get("config_sha256").asText().length());

    CliRun same = CliRun.of("verify-run", run.toString());
    assertEquals(0, same.exitCode(), same.out() + same.err());
    assertTrue(same.out().contains("4 inputs: 4 unchanged, 0 changed, 0 missing"), same.out());

    Files.writeString(data, "{\"prompt\": \"1+1=\", \"answer\": \"3\"}\n");
    Files.delete(model.resolve("config.json"));
    CliRun changed = CliRun.of("verify-run", run.toString());
    assertEquals(1, changed.exitCode(), changed.out());
    assertTrue(changed.out().contains("CHANGED    dataset") && changed.out().contains(data.toString()), changed.out());
    assertTrue(changed.out().contains("MISSING    model") && changed.out().contains("config.json"), changed.out());
    assertTrue(changed.out().contains("4 inputs: 2 unchanged, 1 changed, 1 missing"), changed.out());

    // a resumed start (other settings: config.conf is rewritten) adds its own record and keeps the first; the check
    // compares config.conf with the newest start's hash, and the inputs with what each start read
    Files.writeString(data, "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n");
    CliRun.copyResource("golden/qwen3-tiny/config.json", model);
    Config resumed = ConfigFactory.parseString("nucleon.run.total-steps = 9").withFallback(config);
    RunDirectory.writeConfig(run, resumed);
    assertEquals("provenance-resume-1.json", RunDirectory.writeProvenance(run, resumed).getFileName().toString());
    for (int i = 2; i <= 10; i++) {
      RunDirectory.writeProvenance(run, resumed); // resume-10 must come after resume-2, not after provenance.json
    }
    CliRun again = CliRun.of("verify-run", run.toString());
    assertEquals(0, again.exitCode(), again.out());
    assertTrue(again.out().contains("4 inputs: 4 unchanged, 0 changed, 0 missing"), again.out());

    // a model folder given through a symbolic link is hashed file by file; hidden folders (.git) are left out
    Path link = Files.createSymbolicLink(tmp.resolve("model-link"), model);
    Files.createDirectories(model.resolve(".git")).resolve("HEAD").toFile().createNewFile();
    Path other = Files.createDirectories(tmp.resolve("run2"));
    JsonNode linked = new ObjectMapper().readTree(RunDirectory.writeProvenance(other,
        ConfigFactory.parseString("nucleon.model.path = \"" + link + "\"")).toFile());
    assertEquals(2, linked.get("inputs").size(), linked.get("inputs").toString());
  }
}
