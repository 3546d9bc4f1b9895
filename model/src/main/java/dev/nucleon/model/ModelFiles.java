package dev.nucleon.model;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.io.Llama2cCheckpoint;
import dev.nucleon.model.lora.PeftAdapter;
import dev.nucleon.model.tokenizer.HfTokenizer;
import dev.nucleon.model.tokenizer.Llama2cTokenizer;
import dev.nucleon.model.tokenizer.TextTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Finds and reads a model given by path: a Hugging Face folder ({@code config.json} + safetensors) or a llama2.c
 * {@code .bin}; and its tokenizer: {@code tokenizer.json} in the folder, or a llama2.c {@code tokenizer.bin}.
 */
public final class ModelFiles {

  private ModelFiles() {}

  /**
   * A model's config and weights in Hugging Face naming, and the type its files store them in (float32 or
   * bfloat16; a save "in the input model's type" writes that).
   */
  public record Checkpoint(LlamaConfig config, Map<String, HostTensor> huggingFace, Path source,
      DataType storedType) {

    /** Builds the float32 model on the device of {@code manager}. */
    public LlamaModel instantiate(NDManager manager) {
      return instantiate(manager, Precision.FP32);
    }

    /** Builds the model on the device of {@code manager} in {@code precision}. */
    public LlamaModel instantiate(NDManager manager, Precision precision) {
      return LlamaModel.create(config, manager,
          WeightLayout.fromHuggingFace(config, huggingFace, source.toString()), precision);
    }

    /** This checkpoint with a LoRA adapter merged into its weights (see {@link PeftAdapter#mergeInto}). */
    public Checkpoint withAdapter(PeftAdapter adapter) {
      return new Checkpoint(config, adapter.mergeInto(config, huggingFace), source, storedType);
    }
  }

  /**
   * The tokenizer, chat-template and generation files of a model that exist (for a llama2.c file, a
   * {@code tokenizer.bin} beside it): what a folder derived from the model (a checkpoint, a merged adapter) copies
   * so that it loads as the original does.
   */
  public static List<Path> companionFiles(Path model) {
    List<Path> files = new ArrayList<>();
    if (Files.isDirectory(model)) {
      for (String name : List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja",
          "generation_config.json")) {
        if (Files.isRegularFile(model.resolve(name))) {
          files.add(model.resolve(name));
        }
      }
    } else if (Files.isRegularFile(model.resolveSibling("tokenizer.bin"))) {
      files.add(model.resolveSibling("tokenizer.bin"));
    }
    return files;
  }

  /** Reads a model folder or llama2.c file. */
  public static Checkpoint read(Path path) {
    if (Files.isDirectory(path)) {
      HfCheckpoint.Contents c = HfCheckpoint.read(path);
      return new Checkpoint(c.config(), c.tensors(), path, c.storedType());
    }
    if (!Files.exists(path)) {
      throw new ModelFormatException(path + ": model not found (expected a Hugging Face folder or a llama2.c .bin)");
    }
    Llama2cCheckpoint.Imported imported = Llama2cCheckpoint.read(path);
    return new Checkpoint(imported.config(), imported.weights(), path, DataType.FLOAT32);
  }

  /**
   * The token ids that end a completion: the tokenizer's end-of-sequence ids and the checkpoint's
   * ({@code eos_token_id} of config.json and generation_config.json), each once.
   */
  public static int[] stopIds(TextTokenizer tokenizer, LlamaConfig config) {
    return java.util.stream.IntStream.concat(java.util.Arrays.stream(tokenizer.eosIds()),
        java.util.Arrays.stream(config.eosTokenIds())).distinct().toArray();
  }

  /**
   * The tokenizer for a model: the explicit path when given (a {@code tokenizer.json}, a folder with one, or a
   * llama2.c tokenizer {@code .bin}), else {@code tokenizer.json} in the model folder, else a
   * {@code tokenizer.bin} beside a llama2.c model.
   */
  public static TextTokenizer tokenizer(Path modelPath, Path tokenizerPath, LlamaConfig config) {
    Path p = tokenizerPath;
    if (p == null) {
      if (Files.isDirectory(modelPath)) {
        p = modelPath.resolve("tokenizer.json");
      } else {
        Path sibling = modelPath.resolveSibling("tokenizer.bin");
        p = Files.exists(sibling) ? sibling : null;
      }
    }
    if (p == null || !Files.exists(p)) {
      throw new ModelFormatException(modelPath + ": no tokenizer found; pass one with --tokenizer "
          + "(a tokenizer.json or a llama2.c tokenizer .bin)");
    }
    boolean hf = Files.isDirectory(p) || p.getFileName().toString().endsWith(".json");
    return hf ? HfTokenizer.load(p) : Llama2cTokenizer.load(p, config.vocabSize());
  }
}
