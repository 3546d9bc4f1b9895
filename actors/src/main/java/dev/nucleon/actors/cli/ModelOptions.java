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
 * described as {@code random:dim=512,layers=8,vocab=32000[,heads=8,kv-heads=8,ffn=1408,seed=0]}.
 */
final class ModelOptions {

  @Option(names = "--model", required = true, paramLabel = "PATH",
      description = "Hugging Face model folder, llama2.c .bin, or random:dim=D,layers=L,vocab=V[,heads=H,kv-heads=K,ffn=F]")
  String model;

  @Option(names = "--adapter", paramLabel = "DIR",
      description = "a LoRA adapter in PEFT's layout (adapter_config.json + adapter_model.safetensors), merged into "
          + "the model's weights as they load")
  Path adapter;

  @Option(names = "--device", defaultValue = "cpu", description = "cpu, gpu or gpu:N (default: ${DEFAULT-VALUE})")
  String device;

  @Option(names = "--threads", description = "libtorch intra-op threads (default: all cores)")
  Integer threads;

  @Option(names = "--dtype", defaultValue = "f32", paramLabel = "f32|bf16",
      description = "weights and compute: f32 or bf16 (logits and log-probs are float32 either way; bench learn: "
          + "bf16 is mixed precision over float32 master weights) (default: ${DEFAULT-VALUE})")
  String dtype;

  /** The chosen type, checked. */
  DataType type() {
    try {
      return Precision.parseType(dtype);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--dtype: " + e.getMessage(), e);
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
        + " params=" + c.parameterCount() + " dtype=" + Precision.name(type());
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
    for (String k : kv.keySet()) {
      if (!java.util.Set.of("dim", "layers", "vocab", "heads", "kv-heads", "ffn", "seed", "max-positions").contains(k)) {
        throw new IllegalArgumentException("random model spec: unknown key '" + k
            + "' (known: dim, layers, vocab, heads, kv-heads, ffn, seed, max-positions)");
      }
    }
    int dim = Integer.parseInt(kv.getOrDefault("dim", "512"));
    int heads = Integer.parseInt(kv.getOrDefault("heads", String.valueOf(Math.max(1, dim / 64))));
    int kvHeads = Integer.parseInt(kv.getOrDefault("kv-heads", String.valueOf(heads)));
    int ffn = Integer.parseInt(kv.getOrDefault("ffn", String.valueOf((dim * 8 / 3 + 63) / 64 * 64)));
    return LlamaConfig.llama(Integer.parseInt(kv.getOrDefault("vocab", "32000")), dim, ffn,
        Integer.parseInt(kv.getOrDefault("layers", "8")), heads, kvHeads,
        Integer.parseInt(kv.getOrDefault("max-positions", "2048")), true);
  }

  static long randomSeed(String spec) {
    return Long.parseLong(spec(spec).getOrDefault("seed", "0"));
  }
}
