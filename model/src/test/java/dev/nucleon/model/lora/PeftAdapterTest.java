package dev.nucleon.model.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.TinyModels;
import dev.nucleon.model.WeightLayout;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.io.Safetensors;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** LoRA adapters in PEFT's layout: read as PEFT writes them, merged as PEFT merges them, written back alike. */
class PeftAdapterTest {

  /** An adapter_config.json as PEFT's LoraConfig saves one (field names and values from PEFT's documentation). */
  private static final String PEFT_CONFIG = """
      {
        "alpha_pattern": {"down_proj": 16},
        "auto_mapping": null,
        "base_model_name_or_path": "tiny-qwen",
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": 8,
        "lora_dropout": 0.05,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": 4,
        "rank_pattern": {},
        "revision": null,
        "target_modules": ["q_proj", "v_proj", "down_proj"],
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false
      }
      """;

  @TempDir
  Path tmp;

  @Test
  void aHandWrittenPeftAdapterLoadsAndGivesTheMergedModelsLogits() throws IOException {
    LlamaConfig c = TinyModels.qwenLike();
    Map<String, HostTensor> base = WeightLayout.toHuggingFace(c, LlamaModel.randomWeights(c, 5));
    Path baseDir = tmp.resolve("base");
    HfCheckpoint.write(baseDir, c, base);
    Path adapterDir = tmp.resolve("adapter");
    Files.createDirectories(adapterDir);
    Files.writeString(adapterDir.resolve("adapter_config.json"), PEFT_CONFIG);
    SplittableRandom rng = new SplittableRandom(9);
    List<HostTensor> tensors = new ArrayList<>();
    Map<String, HostTensor> expected = new LinkedHashMap<>(base);
    for (int layer = 0; layer < c.numLayers(); layer++) {
      for (String module : List.of("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj")) {
        String name = "model.layers." + layer + "." + module;
        HostTensor w = base.get(name + ".weight");
        int out = (int) w.shape()[0];
        int in = (int) w.shape()[1];
        HostTensor a = random("base_model.model." + name + ".lora_A.weight", new long[] {4, in}, rng);
        HostTensor b = random("base_model.model." + name + ".lora_B.weight", new long[] {out, 4}, rng);
        tensors.add(a);
        tensors.add(b);
        double scaling = module.endsWith("down_proj") ? 16.0 / 4 : 8.0 / 4; // lora_alpha (or alpha_pattern) / r
        float[] merged = w.data().clone();
        for (int o = 0; o < out; o++) {
          for (int i = 0; i < in; i++) {
            double sum = 0;
            for (int k = 0; k < 4; k++) {
              sum += (double) b.data()[o * 4 + k] * a.data()[k * in + i];
            }
            merged[o * in + i] += (float) (scaling * sum);
          }
        }
        expected.put(name + ".weight", new HostTensor(name + ".weight", w.shape(), merged));
      }
    }
    Safetensors.write(adapterDir.resolve("adapter_model.safetensors"), tensors, Map.of("format", "pt"));

    PeftAdapter adapter = PeftAdapter.read(adapterDir);
    assertEquals(6, adapter.modules().size());
    assertEquals(4.0, adapter.modules().get("model.layers.1.mlp.down_proj").scaling());
    assertEquals(2.0, adapter.modules().get("model.layers.1.self_attn.q_proj").scaling());
    Map<String, HostTensor> merged = adapter.mergeInto(c, base);
    for (var e : expected.entrySet()) {
      float[] got = merged.get(e.getKey()).data();
      for (int i = 0; i < got.length; i++) {
        assertEquals(e.getValue().data()[i], got[i], 1e-6, e.getKey() + "[" + i + "]");
      }
    }
    String untouched = "model.layers.0.self_attn.k_proj.weight";
    assertTrue(merged.get(untouched) == base.get(untouched), "an untouched weight is passed through");

    Engines.start();
    JniUtils.setGradMode(false);
    long[] ids = {3, 14, 15, 9, 2, 6};
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel withAdapter = ModelFiles.read(baseDir).withAdapter(adapter).instantiate(m);
        LlamaModel byHand = LlamaModel.create(c, m, WeightLayout.fromHuggingFace(c, expected, "test"));
        LlamaModel plain = ModelFiles.read(baseDir).instantiate(m)) {
      float[] got = withAdapter.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      float[] want = byHand.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      float[] before = plain.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      double err = 0;
      double moved = 0;
      for (int i = 0; i < got.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]));
        moved = Math.max(moved, Math.abs(got[i] - before[i]));
      }
      assertTrue(err < 1e-5, "base + adapter vs merged by hand: max abs difference " + err);
      assertTrue(moved > 1e-3, "the adapter changes the logits (max change " + moved + ")");
    }
  }

  @Test
  void writtenAdaptersReadBackTheSame() throws IOException {
    LlamaConfig c = TinyModels.qwen3Like();
    PeftAdapter.Settings s = new PeftAdapter.Settings(2, 6, 0.1, true, List.of("all-linear"), true,
        Map.of("gate_proj", 3), Map.of(), "base");
    List<String> names = s.modules(c);
    assertEquals(7 * c.numLayers(), names.size());
    assertEquals("model.layers.0.self_attn.q_proj", names.get(0));
    assertEquals("model.layers.1.mlp.down_proj", names.get(names.size() - 1));
    Map<String, HostTensor> hf = WeightLayout.toHuggingFace(c, LlamaModel.randomWeights(c, 2));
    SplittableRandom rng = new SplittableRandom(4);
    List<PeftAdapter.Module> modules = new ArrayList<>();
    for (String n : names) {
      long[] w = hf.get(n + ".weight").shape();
      int r = s.rankOf(n);
      modules.add(new PeftAdapter.Module(n, random("a", new long[] {r, w[1]}, rng),
          random("b", new long[] {w[0], r}, rng), s.scalingOf(n)));
    }
    assertEquals(6 / Math.sqrt(3), s.scalingOf("model.layers.0.mlp.gate_proj"), 1e-12); // rsLoRA, rank_pattern
    assertEquals(6 / Math.sqrt(2), s.scalingOf("model.layers.0.mlp.up_proj"), 1e-12);
    new PeftAdapter(s, modules).write(tmp.resolve("out"));
    // PEFT expands all-linear only as a plain string, not inside a list
    String written = Files.readString(tmp.resolve("out/adapter_config.json"));
    assertTrue(written.contains("\"target_modules\" : \"all-linear\""), written);
    PeftAdapter back = PeftAdapter.read(tmp.resolve("out"));
    assertEquals(s, back.settings());
    for (PeftAdapter.Module m : modules) {
      PeftAdapter.Module r = back.modules().get(m.name());
      assertArrayEquals(m.a().data(), r.a().data());
      assertArrayEquals(m.b().data(), r.b().data());
      assertEquals(m.scaling(), r.scaling(), 1e-12);
    }
  }

  @Test
  void whatCannotBeAppliedIsRefusedByName() throws IOException {
    LlamaConfig c = TinyModels.qwenLike();
    Map<String, HostTensor> base = WeightLayout.toHuggingFace(c, LlamaModel.randomWeights(c, 5));
    SplittableRandom rng = new SplittableRandom(1);
    HostTensor a = random("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", new long[] {4, 32}, rng);
    HostTensor b = random("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", new long[] {32, 4}, rng);

    assertRefused(PEFT_CONFIG.replace("\"use_dora\": false", "\"use_dora\": true"), List.of(a, b), "use_dora");
    assertRefused(PEFT_CONFIG.replace("\"bias\": \"none\"", "\"bias\": \"all\""), List.of(a, b), "bias is 'all'");
    assertRefused(PEFT_CONFIG.replace("\"modules_to_save\": null", "\"modules_to_save\": [\"lm_head\"]"),
        List.of(a, b), "modules_to_save");
    assertRefused(PEFT_CONFIG.replace("\"LORA\"", "\"IA3\""), List.of(a, b), "only LORA adapters");
    assertRefused(PEFT_CONFIG, List.of(a), "has lora_A but no lora_B");
    assertRefused(PEFT_CONFIG, List.of(a, b, random("base_model.model.model.embed_tokens.lora_embedding_A",
        new long[] {4, 61}, rng)), "is not a LoRA matrix");
    assertRefused(PEFT_CONFIG.replace("\"rank_pattern\": {}", "\"rank_pattern\": {\"q_proj\": 2}"), List.of(a, b),
        "has rank 4 but the config gives it r = 2");

    Path wrongShape = adapter("shape", PEFT_CONFIG, List.of(a.renamed(a.name().replace("q_proj", "v_proj")),
        b.renamed(b.name().replace("q_proj", "v_proj"))));
    ModelFormatException e = assertThrows(ModelFormatException.class,
        () -> PeftAdapter.read(wrongShape).mergeInto(c, base));
    assertTrue(e.getMessage().contains("B @ A is [32, 32] but the weight is [16, 32]"), e.getMessage());
    Path elsewhere = adapter("layer", PEFT_CONFIG, List.of(a.renamed(a.name().replace("layers.0", "layers.7")),
        b.renamed(b.name().replace("layers.0", "layers.7"))));
    e = assertThrows(ModelFormatException.class, () -> PeftAdapter.read(elsewhere).mergeInto(c, base));
    assertTrue(e.getMessage().contains("has no weight 'model.layers.7.self_attn.q_proj.weight'"), e.getMessage());
    IllegalArgumentException t = assertThrows(IllegalArgumentException.class,
        () -> PeftAdapter.Settings.of(4, 8, 0, List.of("qkv")).modules(c));
    assertTrue(t.getMessage().contains("unknown LoRA target 'qkv'"), t.getMessage());
  }

  @Test
  void patternKeysMatchWholeNameSegmentsAsPeftDoes() {
    List<String> keys = List.of("layers.0.self_attn.q_proj", "q_proj", "proj");
    assertEquals("layers.0.self_attn.q_proj", PeftAdapter.patternKey(keys, "model.layers.0.self_attn.q_proj"));
    assertEquals("q_proj", PeftAdapter.patternKey(keys, "model.layers.1.self_attn.q_proj"));
    assertEquals(null, PeftAdapter.patternKey(List.of("proj"), "model.layers.1.self_attn.q_proj"));
    assertEquals(null, PeftAdapter.patternKey(List.of("layers.1.mlp.up_proj"), "model.layers.11.mlp.up_proj"));
    ModelFormatException e = assertThrows(ModelFormatException.class,
        () -> PeftAdapter.patternKey(List.of("(?P<x>q)_proj"), "model.layers.0.self_attn.q_proj"));
    assertTrue(e.getMessage().contains("'(?P<x>q)_proj'"), e.getMessage());
  }

  @Test
  void bf16AdaptersWithoutThePrefixLoadAndTiedHeadsAreRefused() throws IOException {
    LlamaConfig c = TinyModels.llamaTied();
    Map<String, HostTensor> base = WeightLayout.toHuggingFace(c, LlamaModel.randomWeights(c, 5));
    SplittableRandom rng = new SplittableRandom(2);
    HostTensor a = random("model.layers.1.mlp.up_proj.lora_A.weight", new long[] {4, 24}, rng);
    HostTensor b = random("model.layers.1.mlp.up_proj.lora_B.weight", new long[] {40, 4}, rng);
    Path dir = tmp.resolve("bf16");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("adapter_config.json"), PEFT_CONFIG);
    Safetensors.write(dir.resolve("adapter_model.safetensors"), List.of(a, b), Map.of(), true);
    PeftAdapter adapter = PeftAdapter.read(dir);
    PeftAdapter.Module m = adapter.modules().get("model.layers.1.mlp.up_proj");
    for (int i = 0; i < a.data().length; i++) {
      assertEquals(a.data()[i], m.a().data()[i], Math.abs(a.data()[i]) / 128, "bf16 lora_A[" + i + "]");
    }
    assertEquals(40 * 24, adapter.mergeInto(c, base).get("model.layers.1.mlp.up_proj.weight").data().length);

    HostTensor ha = random("base_model.model.lm_head.lora_A.weight", new long[] {4, 24}, rng);
    HostTensor hb = random("base_model.model.lm_head.lora_B.weight", new long[] {37, 4}, rng);
    Path head = adapter("head", PEFT_CONFIG, List.of(ha, hb));
    Map<String, HostTensor> withHead = new LinkedHashMap<>(base);
    withHead.put("lm_head.weight", new HostTensor("lm_head.weight", new long[] {37, 24}, new float[37 * 24]));
    ModelFormatException e = assertThrows(ModelFormatException.class,
        () -> PeftAdapter.read(head).mergeInto(c, withHead));
    assertTrue(e.getMessage().contains("ties its output head to its embedding"), e.getMessage());
    assertRefused(PEFT_CONFIG.replace("\"init_lora_weights\": true", "\"init_lora_weights\": \"pissa_niter_4\""),
        List.of(a, b), "init_lora_weights is 'pissa_niter_4'");
  }

  private void assertRefused(String config, List<HostTensor> tensors, String message) throws IOException {
    Path dir = adapter("case" + Math.abs(config.hashCode() + tensors.size() * 31), config, tensors);
    ModelFormatException e = assertThrows(ModelFormatException.class, () -> PeftAdapter.read(dir));
    assertTrue(e.getMessage().contains(message), e.getMessage());
  }

  private Path adapter(String name, String config, List<HostTensor> tensors) throws IOException {
    Path dir = tmp.resolve(name);
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("adapter_config.json"), config);
    Safetensors.write(dir.resolve("adapter_model.safetensors"), tensors, Map.of());
    return dir;
  }

  private static HostTensor random(String name, long[] shape, SplittableRandom rng) {
    return TinyModels.randomTensor(name, shape, rng, 0.2f);
  }
}
