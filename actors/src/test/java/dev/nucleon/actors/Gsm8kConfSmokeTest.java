package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.actors.cli.NucleonCli;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.io.HfCheckpoint;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * CI smoke test of the shipped GPU run file {@code conf/gsm8k-grpo.conf}: the real file, through the real
 * {@code nucleon train} command, on a tiny random Hugging Face model with the real TinyLlama tokenizer and chat
 * template, for two steps on the CPU. Only what a CPU CI needs is overridden (model path, devices, sizes, run
 * directory, the dataset files as absolute paths); the reward (composite gsm8k + format), chat template, loss and
 * optimizer settings are the file's own. Asserts two learner steps, two step rows in metrics.jsonl and a final
 * checkpoint whose model is in the Hugging Face layout.
 */
class Gsm8kConfSmokeTest {

  private static final String TOKENIZER = "hf-real/tokenizers/TinyLlama-1.1B-Chat-v1.0/";
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  @Timeout(180)
  void gsm8kGrpoConfRunsTwoStepsOnATinyRandomModel(@TempDir Path tmp) throws Exception {
    // Maven runs the tests in the module folder (actors/): the repository root is its parent
    Path root = Path.of("..").toAbsolutePath().normalize();
    Path conf = root.resolve("conf/gsm8k-grpo.conf");
    assumeTrue(Files.isRegularFile(conf), "needs the repository's conf/ (run from the actors module)");
    Path data = root.resolve("conf/data/gsm8k");

    // a tiny random model in HF layout: TinyLlama's vocabulary and special tokens (bos 1, eos 2), d = 16, 1 layer
    Path model = Files.createDirectories(tmp.resolve("model"));
    LlamaConfig config = LlamaConfig.llama(32000, 16, 32, 1, 2, 1, 1024, false)
        .withSpecialTokens(1, new int[] {2});
    Engines.start();
    try (NDManager manager = NDManager.newBaseManager()) {
      LlamaModel random = LlamaModel.random(config, manager, 7);
      HfCheckpoint.write(model, config, random.toHuggingFace());
      random.close();
    }
    copyResource(TOKENIZER + "tokenizer.json", model);
    copyResource(TOKENIZER + "tokenizer_config.json", model);

    Path runDir = tmp.resolve("run");
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cli = NucleonCli.commandLine();
    cli.setOut(new PrintWriter(out, true));
    cli.setErr(new PrintWriter(err, true));
    long start = System.nanoTime();
    int code = cli.execute("train", conf.toString(),
        "-Dnucleon.model.path=" + model,
        "-Dnucleon.run.dir=" + tmp.resolve("runs"),
        "-Dnucleon.run.total-steps=2",
        "-Dnucleon.run.eval.size=4",
        "-Dnucleon.dataset.path=" + data.resolve("train.jsonl"),
        "-Dnucleon.dataset.eval.path=" + data.resolve("test.jsonl"),
        "-Dnucleon.dataset.eval.size=4",
        "-Dnucleon.rollout.devices=[cpu]",
        "-Dnucleon.learner.device=cpu",
        "-Dnucleon.rollout.threads=1",
        "-Dnucleon.rollout.groups-per-batch=2",
        "-Dnucleon.rollout.max-new-tokens=8",
        "-Dnucleon.algorithm.group-size=2",
        "-Dnucleon.algorithm.batch-groups=2",
        "-Dnucleon.monitor.dashboard.enabled=false",
        "--run-dir", runDir.toString());
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.printf("gsm8k-grpo.conf smoke run: exit %d in %.1f s%n%s", code, seconds, out);
    assertEquals(0, code, "nucleon train failed:\n" + out + err);
    assertTrue(out.toString().contains("done: 2 steps"), out.toString());

    // the file's own settings reached the run (the resolved config is written into the run directory)
    String resolved = Files.readString(runDir.resolve("config.conf"));
    assertTrue(resolved.contains("composite"), "composite reward in the resolved config");
    assertTrue(resolved.contains(model.resolve("tokenizer_config.json").toString()),
        "tokenizer-config follows nucleon.model.path");

    // two step rows in metrics.jsonl, steps 1 and 2
    List<JsonNode> steps = new ArrayList<>();
    for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
      if (!line.isBlank()) {
        JsonNode row = JSON.readTree(line);
        if (row.path("type").asText().equals("step")) {
          steps.add(row);
        }
      }
    }
    assertEquals(2, steps.size(), "step rows in metrics.jsonl");

    // the final checkpoint: its model folder loads as a Hugging Face model of the run's shape
    Path checkpoint;
    try (Stream<Path> dirs = Files.list(runDir.resolve("checkpoints"))) {
      checkpoint = dirs.filter(d -> d.getFileName().toString().startsWith("step-")).sorted()
          .reduce((a, b) -> b).orElseThrow(() -> new AssertionError("no checkpoint in " + runDir));
    }
    Path hf = checkpoint.resolve("model");
    assertTrue(Files.isRegularFile(hf.resolve("config.json")), "config.json in " + hf);
    assertTrue(Files.isRegularFile(hf.resolve("model.safetensors")), "model.safetensors in " + hf);
    assertEquals(config.vocabSize(), LlamaConfig.fromHuggingFace(hf.resolve("config.json")).vocabSize());
    assertEquals(config.hiddenSize(), LlamaConfig.fromHuggingFace(hf.resolve("config.json")).hiddenSize());
  }

  private static void copyResource(String resource, Path dir) throws IOException {
    try (InputStream in = Gsm8kConfSmokeTest.class.getResourceAsStream("/" + resource)) {
      if (in == null) {
        throw new IllegalStateException("missing test resource " + resource + " (nucleon-model test jar)");
      }
      Files.copy(in, dir.resolve(Path.of(resource).getFileName().toString()), StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
