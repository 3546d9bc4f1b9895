package dev.nucleon.actors.cli;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.Precision;
import dev.nucleon.model.lora.PeftAdapter;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import picocli.CommandLine.Option;

/**
 * The options that pick a model: a Hugging Face folder, a llama2.c {@code .bin}, or for benchmarks a random model
 * described as {@code random:dim=512,layers=8,vocab=32000[,heads=8,kv-heads=8,ffn=1408,seed=0]}; with
 * {@code experts=E,top-k=K[,expert-ffn=F]} a Qwen3-MoE whose every layer is a mixture of E experts of inner width F
 * (top K, renormalized), and with {@code qk-norm=true} a dense Qwen3 (the same attention, for comparisons).
 */
final class ModelOptions {

  @Option(names = "--model", required = true, paramLabel = "PATH",
      description = "Hugging Face model folder, llama2.c .bin, or random:dim=D,layers=L,vocab=V[,heads=H,kv-heads=K,"
          + "ffn=F,experts=E,top-k=K,expert-ffn=F,qk-norm=true]")
  String model;

  @Option(names = "--adapter", paramLabel = "DIR",
      description = "a LoRA adapter in PEFT's layout (adapter_config.json + adapter_model.safetensors), merged into "
          + "the model's weights as they load")
  Path adapter;

  @Option(names = "--device", defaultValue = "cpu", description = "cpu, gpu or gpu:N (default: ${DEFAULT-VALUE})")
  String device;

  @Option(names = "--threads", description = "libtorch intra-op threads (default: all cores)")
  Integer threads;

  @Option(names = "--dtype", defaultValue = "f32", paramLabel = "f32|bf16|auto",
      description = "weights and compute: f32, bf16, or auto (bf16 where the device has bfloat16 units) (logits and "
          + "log-probs are float32 either way; bench learn: bf16 is mixed precision over float32 master weights) "
          + "(default: ${DEFAULT-VALUE})")
  String dtype;

  /** The chosen type, checked. */
  DataType type() {
    if (dtype.trim().equalsIgnoreCase("auto")) {
      try {
        return Precision.resolveType(dtype, java.util.List.of(device));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("--device: " + e.getMessage(), e);
      }
    }
    try {
      return Precision.parseType(dtype);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--dtype: " + e.getMessage() + " (or auto)", e);
    }
  }

  /** Loads the model on the chosen device for generating or scoring (weights and compute in --dtype). */
  LlamaModel load(NDManager parent) {
    return load(parent, Precision.inference(type()));
  }

  /** Loads the model for training: float32 master weights, compute in --dtype. */
  LlamaModel loadForTraining(NDManager parent) {
    return load(parent, Precision.training(type()));
  }

  LlamaModel load(NDManager parent, Precision precision) {
    if (model.startsWith("random:")) {
      if (adapter != null) {
        throw new IllegalArgumentException("--adapter needs a model folder or file, not a random model");
      }
      return LlamaModel.create(randomConfig(model), parent, LlamaModel.randomWeights(randomConfig(model),
          randomSeed(model)), precision);
    }
    return checkpoint().instantiate(parent, precision);
  }

  /** The model's files as read, with the adapter merged when --adapter names one. */
  ModelFiles.Checkpoint checkpoint() {
    ModelFiles.Checkpoint c = ModelFiles.read(Path.of(model));
    return adapter == null ? c : c.withAdapter(PeftAdapter.read(adapter));
  }

  Device startEngine() {
    if (threads != null) {
      System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(threads));
      System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
    }
    Engines.start();
    return Engines.device(device);
  }

  /** A short description of the model for benchmark output. */
  String describe(LlamaConfig c) {
    return (model.startsWith("random:") ? "random" : Path.of(model).getFileName().toString()) + " d=" + c.hiddenSize()
        + " layers=" + c.numLayers() + " heads=" + c.numHeads() + "/" + c.numKvHeads() + " vocab=" + c.vocabSize()
        + " params=" + c.parameterCount() + (c.moe() == null ? "" : " active=" + c.activeParameterCount() + " experts="
            + c.moe().numExperts() + " top-" + c.moe().topK()) + " dtype=" + Precision.name(type());
  }

  static Map<String, String> spec(String spec) {
    Map<String, String> kv = new HashMap<>();
    String body = spec.substring("random:".length());
    for (String part : body.split(",")) {
      if (part.isBlank()) {
        continue;
      }
      String[] p = part.split("=", 2);
      if (p.length != 2) {
        throw new IllegalArgumentException("random model spec '" + spec + "': expected key=value, got '" + part + "'");
      }
      kv.put(p[0].trim(), p[1].trim());
    }
    return kv;
  }

  static LlamaConfig randomConfig(String spec) {
    Map<String, String> kv = spec(spec);
    java.util.Set<String> known = java.util.Set.of("dim", "layers", "vocab", "heads", "kv-heads", "ffn", "seed",
        "max-positions", "experts", "top-k", "expert-ffn", "qk-norm");
    for (String k : kv.keySet()) {
      if (!known.contains(k)) {
        throw new IllegalArgumentException("random model spec: unknown key '" + k + "' (known: "
            + new java.util.TreeSet<>(known) + ")");
      }
    }
    int dim = Integer.parseInt(kv.getOrDefault("dim", "512"));
    int heads = Integer.parseInt(kv.getOrDefault("heads", String.valueOf(Math.max(1, dim / 64))));
    int kvHeads = Integer.parseInt(kv.getOrDefault("kv-heads", String.valueOf(heads)));
    int ffn = Integer.parseInt(kv.getOrDefault("ffn", String.valueOf((dim * 8 / 3 + 63) / 64 * 64)));
    int layers = Integer.parseInt(kv.getOrDefault("layers", "8"));
    int vocab = Integer.parseInt(kv.getOrDefault("vocab", "32000"));
    int positions = Integer.parseInt(kv.getOrDefault("max-positions", "2048"));
    if (!kv.containsKey("experts")) {
      if (!Boolean.parseBoolean(kv.getOrDefault("qk-norm", "false"))) {
        return LlamaConfig.llama(vocab, dim, ffn, layers, heads, kvHeads, positions, true);
      }
      return new LlamaConfig("Qwen3ForCausalLM", vocab, dim, ffn, layers, heads, kvHeads, dim / heads, 1e6, null,
          1e-6, positions, true, false, -1, new int[0]);
    }
    int experts = Integer.parseInt(kv.get("experts"));
    int topK = Integer.parseInt(kv.getOrDefault("top-k", "2"));
    int expertFfn = Integer.parseInt(kv.getOrDefault("expert-ffn", String.valueOf(ffn / topK)));
    LlamaConfig.Moe moe = new LlamaConfig.Moe(experts, topK, expertFfn, 0, LlamaConfig.Router.softmax(true), false, 0,
        java.util.stream.IntStream.range(0, layers).boxed().toList());
    return new LlamaConfig("Qwen3MoeForCausalLM", vocab, dim, ffn, layers, heads, kvHeads, dim / heads, 1e6, null,
        1e-6, positions, true, false, -1, new int[0], false, null, moe);
  }

  static long randomSeed(String spec) {
    return Long.parseLong(spec(spec).getOrDefault("seed", "0"));
  }
}
