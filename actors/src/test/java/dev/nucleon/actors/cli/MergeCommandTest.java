package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.TinyModels;
import dev.nucleon.model.WeightLayout;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.lora.PeftAdapter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code nucleon merge} writes base + adapter as a checkpoint that loads like the base, and {@code --adapter} on a
 * model-loading command gives what the merged checkpoint gives.
 */
class MergeCommandTest {

  @Test
  void mergedCheckpointEqualsTheAdapterAppliedAtLoad(@TempDir Path dir) throws Exception {
    LlamaConfig c = TinyModels.qwenLike();
    Map<String, HostTensor> base = WeightLayout.toHuggingFace(c, LlamaModel.randomWeights(c, 8));
    Path baseDir = dir.resolve("base");
    HfCheckpoint.write(baseDir, c, base);
    Files.writeString(baseDir.resolve("generation_config.json"), "{\"max_new_tokens\": 4}");
    PeftAdapter.Settings s = PeftAdapter.Settings.of(2, 16, 0, List.of("q_proj", "down_proj"));
    SplittableRandom rng = new SplittableRandom(3);
    List<PeftAdapter.Module> modules = new ArrayList<>();
    for (String n : s.modules(c)) {
      long[] w = base.get(n + ".weight").shape();
      modules.add(new PeftAdapter.Module(n, random(new long[] {2, w[1]}, rng), random(new long[] {w[0], 2}, rng),
          s.scalingOf(n)));
    }
    PeftAdapter adapter = new PeftAdapter(s, modules);
    Path adapterDir = dir.resolve("adapter");
    adapter.write(adapterDir);
    Path out = dir.resolve("merged");

    CliRun run = CliRun.of("merge", "--model", baseDir.toString(), "--adapter", adapterDir.toString(), "--out",
        out.toString());
    assertEquals(0, run.exitCode(), run.err());
    assertTrue(run.out().contains("merged 4 LoRA modules"), run.out());
    assertEquals(Files.readString(baseDir.resolve("config.json")), Files.readString(out.resolve("config.json")));
    assertTrue(Files.isRegularFile(out.resolve("generation_config.json")), "the base's companion files come along");
    Map<String, HostTensor> want = adapter.mergeInto(c, base);
    Map<String, HostTensor> got = ModelFiles.read(out).huggingFace();
    assertEquals(want.keySet(), got.keySet());
    for (String name : want.keySet()) {
      assertArrayEquals(want.get(name).data(), got.get(name).data(), name);
    }

    CliRun applied = CliRun.of("logits", "--model", baseDir.toString(), "--adapter", adapterDir.toString(),
        "--ids", "1,5,9,13");
    CliRun merged = CliRun.of("logits", "--model", out.toString(), "--ids", "1,5,9,13");
    CliRun plain = CliRun.of("logits", "--model", baseDir.toString(), "--ids", "1,5,9,13");
    assertEquals(0, applied.exitCode(), applied.err());
    assertEquals(merged.out(), applied.out());
    assertNotEquals(plain.out(), applied.out());

    CliRun again = CliRun.of("merge", "--model", baseDir.toString(), "--adapter", adapterDir.toString(), "--out",
        out.toString());
    assertNotEquals(0, again.exitCode());
    assertTrue(again.err().contains("exists and is not an empty folder"), again.err());
  }

  private static HostTensor random(long[] shape, SplittableRandom rng) {
    return TinyModels.randomTensor("t", shape, rng, 0.2f);
  }
}
