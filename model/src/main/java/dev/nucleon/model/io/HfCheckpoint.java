package dev.nucleon.model.io;

import ai.djl.ndarray.types.DataType;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.WeightLayout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A model folder in the Hugging Face layout: {@code config.json} plus {@code model.safetensors}, or shards listed by
 * {@code model.safetensors.index.json}. What this writes, transformers and vLLM can load.
 */
public final class HfCheckpoint {

  /** Largest shard written (safetensors offsets are read as int by some tools: stay well below 2 GB). */
  public static final long DEFAULT_SHARD_BYTES = 1L << 30;

  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private HfCheckpoint() {}

  /**
   * A checkpoint's config and tensors (Hugging Face names, widened to float32 in memory), and the type its files
   * store: bfloat16 when every tensor is BF16 (a mixture's routers, kept float32, aside), else float32 (what a save in "the input model's type" writes).
   */
  public record Contents(LlamaConfig config, Map<String, HostTensor> tensors, DataType storedType) {}

  /**
   * Refuses weights stored quantized (config.json's {@code quantization_config}): gpt-oss's published experts are
   * MXFP4 ({@code *_blocks} / {@code *_scales}), DeepSeek-V3's and R1's linear layers FP8 with 128 x 128 block
   * scales. Nucleon computes in float32 or bfloat16 and trains every weight it holds, so such a checkpoint has to
   * be dequantized once, offline, into a bfloat16 folder (about twice the bytes of MXFP4 experts / FP8 weights).
   */
  private static void refuseQuantized(Path config) {
    JsonNode quant;
    try {
      quant = new ObjectMapper().readTree(config.toFile()).get("quantization_config");
    } catch (IOException e) {
      throw new ModelFormatException(config + ": not readable JSON: " + e.getMessage(), e);
    }
    if (quant == null || quant.isNull()) {
      return;
    }
    String method = quant.path("quant_method").asText("unknown");
    String how = switch (method) {
      case "mxfp4" -> "load it with transformers' Mxfp4Config(dequantize=True) and save_pretrained in bfloat16";
      case "fp8" -> "convert it with DeepSeek's inference/fp8_cast_bf16.py (or load and save_pretrained in "
          + "bfloat16)";
      default -> "load it in transformers and save_pretrained in bfloat16";
    };
    throw new ModelFormatException(config + ": the weights are quantized (quantization_config.quant_method = "
        + method + "); Nucleon reads unquantized float32 / bfloat16 / float16 weights: dequantize the checkpoint "
        + "first (" + how + ")");
  }

  /** Reads a model folder. */
  public static Contents read(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new ModelFormatException(dir + ": not a model folder (expected config.json and model.safetensors)");
    }
    LlamaConfig config = LlamaConfig.fromHuggingFace(dir.resolve("config.json"));
    refuseQuantized(dir.resolve("config.json"));
    Path single = dir.resolve("model.safetensors");
    Path index = dir.resolve("model.safetensors.index.json");
    Map<String, HostTensor> tensors;
    Map<String, String> stored = new LinkedHashMap<>();
    if (Files.isRegularFile(single)) {
      tensors = Safetensors.read(single, stored);
    } else if (Files.isRegularFile(index)) {
      tensors = readSharded(index, stored);
    } else {
      throw new ModelFormatException(dir + ": neither model.safetensors nor model.safetensors.index.json found");
    }
    // a bfloat16 checkpoint of a mixture of experts keeps its routers in float32 (as the published ones do)
    boolean bf16 = !stored.isEmpty() && stored.entrySet().stream().filter(e -> !WeightLayout.keepsFloat32(e.getKey()))
        .allMatch(e -> e.getValue().equals("BF16"));
    return new Contents(config, tensors, bf16 ? DataType.BFLOAT16 : DataType.FLOAT32);
  }

  private static Map<String, HostTensor> readSharded(Path index, Map<String, String> stored) {
    JsonNode map;
    try {
      map = JSON.readTree(index.toFile()).get("weight_map");
    } catch (IOException e) {
      throw new ModelFormatException(index + ": not valid JSON: " + e.getMessage(), e);
    }
    if (map == null || !map.isObject()) {
      throw new ModelFormatException(index + ": missing 'weight_map'");
    }
    Set<String> shards = new LinkedHashSet<>();
    Map<String, String> where = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
      var e = it.next();
      shards.add(e.getValue().asText());
      where.put(e.getKey(), e.getValue().asText());
    }
    Map<String, HostTensor> all = new LinkedHashMap<>();
    for (String shard : shards) {
      all.putAll(Safetensors.read(index.resolveSibling(shard), stored));
    }
    for (var e : where.entrySet()) {
      if (!all.containsKey(e.getKey())) {
        throw new ModelFormatException(index + ": tensor '" + e.getKey() + "' is listed in shard " + e.getValue()
            + " but that file does not hold it");
      }
    }
    return all;
  }

  /**
   * Writes {@code config.json} and the tensors as float32 (one file, or shards with an index above the shard
   * size).
   */
  public static void write(Path dir, LlamaConfig config, Map<String, HostTensor> tensors) throws IOException {
    write(dir, config, tensors, DataType.FLOAT32, DEFAULT_SHARD_BYTES);
  }

  /** Writes {@code config.json} and the tensors stored as {@code type} (float32 or bfloat16). */
  public static void write(Path dir, LlamaConfig config, Map<String, HostTensor> tensors, DataType type)
      throws IOException {
    write(dir, config, tensors, type, DEFAULT_SHARD_BYTES);
  }

  public static void write(Path dir, LlamaConfig config, Map<String, HostTensor> tensors, DataType type,
      long shardBytes) throws IOException {
    if (type != DataType.FLOAT32 && type != DataType.BFLOAT16) {
      throw new IllegalArgumentException("checkpoints are saved as float32 or bfloat16, not " + type);
    }
    boolean bf16 = type == DataType.BFLOAT16;
    Files.createDirectories(dir);
    config.writeHuggingFace(dir.resolve("config.json"), bf16 ? "bfloat16" : "float32");
    List<List<HostTensor>> shards = new ArrayList<>();
    List<HostTensor> current = new ArrayList<>();
    long bytes = 0;
    long total = 0;
    for (HostTensor t : tensors.values()) {
      // the bytes Safetensors.write stores: routers stay float32 in a bfloat16 file
      long size = (bf16 && !WeightLayout.keepsFloat32(t.name()) ? 2L : 4L) * t.data().length;
      if (!current.isEmpty() && bytes + size > shardBytes) {
        shards.add(current);
        current = new ArrayList<>();
        bytes = 0;
      }
      current.add(t);
      bytes += size;
      total += size;
    }
    shards.add(current);
    if (shards.size() == 1) {
      Safetensors.write(dir.resolve("model.safetensors"), current, Map.of(), bf16, WeightLayout::keepsFloat32);
      Files.deleteIfExists(dir.resolve("model.safetensors.index.json"));
      return;
    }
    ObjectNode index = JSON.createObjectNode();
    index.putObject("metadata").put("total_size", total);
    ObjectNode weightMap = index.putObject("weight_map");
    for (int i = 0; i < shards.size(); i++) {
      String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
      Safetensors.write(dir.resolve(name), shards.get(i), Map.of(), bf16, WeightLayout::keepsFloat32);
      for (HostTensor t : shards.get(i)) {
        weightMap.put(t.name(), name);
      }
    }
    Files.deleteIfExists(dir.resolve("model.safetensors"));
    Files.writeString(dir.resolve("model.safetensors.index.json"), JSON.writeValueAsString(index));
  }
}
