package dev.nucleon.model.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.ModelFormatException;
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

  /** A checkpoint's config and tensors (Hugging Face names). */
  public record Contents(LlamaConfig config, Map<String, HostTensor> tensors) {}

  /** Reads a model folder. */
  public static Contents read(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new ModelFormatException(dir + ": not a model folder (expected config.json and model.safetensors)");
    }
    LlamaConfig config = LlamaConfig.fromHuggingFace(dir.resolve("config.json"));
    Path single = dir.resolve("model.safetensors");
    Path index = dir.resolve("model.safetensors.index.json");
    Map<String, HostTensor> tensors;
    if (Files.isRegularFile(single)) {
      tensors = Safetensors.read(single);
    } else if (Files.isRegularFile(index)) {
      tensors = readSharded(index);
    } else {
      throw new ModelFormatException(dir + ": neither model.safetensors nor model.safetensors.index.json found");
    }
    return new Contents(config, tensors);
  }

  private static Map<String, HostTensor> readSharded(Path index) {
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
      all.putAll(Safetensors.read(index.resolveSibling(shard)));
    }
    for (var e : where.entrySet()) {
      if (!all.containsKey(e.getKey())) {
        throw new ModelFormatException(index + ": tensor '" + e.getKey() + "' is listed in shard " + e.getValue()
            + " but that file does not hold it");
      }
    }
    return all;
  }

  /** Writes {@code config.json} and the tensors (one file, or shards with an index above the shard size). */
  public static void write(Path dir, LlamaConfig config, Map<String, HostTensor> tensors) throws IOException {
    write(dir, config, tensors, DEFAULT_SHARD_BYTES);
  }

  public static void write(Path dir, LlamaConfig config, Map<String, HostTensor> tensors, long shardBytes)
      throws IOException {
    Files.createDirectories(dir);
    config.writeHuggingFace(dir.resolve("config.json"));
    List<List<HostTensor>> shards = new ArrayList<>();
    List<HostTensor> current = new ArrayList<>();
    long bytes = 0;
    long total = 0;
    for (HostTensor t : tensors.values()) {
      if (!current.isEmpty() && bytes + t.byteSize() > shardBytes) {
        shards.add(current);
        current = new ArrayList<>();
        bytes = 0;
      }
      current.add(t);
      bytes += t.byteSize();
      total += t.byteSize();
    }
    shards.add(current);
    if (shards.size() == 1) {
      Safetensors.write(dir.resolve("model.safetensors"), current, Map.of());
      Files.deleteIfExists(dir.resolve("model.safetensors.index.json"));
      return;
    }
    ObjectNode index = JSON.createObjectNode();
    index.putObject("metadata").put("total_size", total);
    ObjectNode weightMap = index.putObject("weight_map");
    for (int i = 0; i < shards.size(); i++) {
      String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
      Safetensors.write(dir.resolve(name), shards.get(i), Map.of());
      for (HostTensor t : shards.get(i)) {
        weightMap.put(t.name(), name);
      }
    }
    Files.deleteIfExists(dir.resolve("model.safetensors"));
    Files.writeString(dir.resolve("model.safetensors.index.json"), JSON.writeValueAsString(index));
  }
}
