package dev.nucleon.actors.cli;

import ai.djl.ndarray.types.DataType;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.Precision;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.lora.PeftAdapter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code nucleon merge --model BASE --adapter DIR --out DIR}: a LoRA adapter (PEFT's layout) merged into its base
 * model's weights, written as a Hugging Face checkpoint with the base's tokenizer and template files, so that any
 * tool that loads the base loads the result.
 */
@Command(name = "merge", mixinStandardHelpOptions = true,
    description = {"Merges a LoRA adapter (PEFT layout) into its base model and writes a Hugging Face checkpoint: "
        + "W + (lora_alpha / r) * B @ A for every adapted layer."})
final class MergeCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Option(names = "--model", required = true, paramLabel = "PATH",
      description = "the base model: Hugging Face folder or llama2.c .bin")
  Path model;

  @Option(names = "--adapter", required = true, paramLabel = "DIR",
      description = "the adapter folder (adapter_config.json + adapter_model.safetensors)")
  Path adapter;

  @Option(names = "--out", required = true, paramLabel = "DIR", description = "the folder to write (new or empty)")
  Path out;

  @Option(names = "--dtype", paramLabel = "f32|bf16",
      description = "the type the weights are stored in (default: the base model's)")
  String dtype;

  @Override
  public Integer call() throws IOException {
    if (Files.exists(out) && (!Files.isDirectory(out) || hasEntries(out))) {
      throw new IllegalArgumentException("--out " + out + " exists and is not an empty folder");
    }
    ModelFiles.Checkpoint base = ModelFiles.read(model);
    PeftAdapter a = PeftAdapter.read(adapter);
    DataType type = dtype == null ? base.storedType() : Precision.parseType(dtype);
    ModelFiles.Checkpoint merged = base.withAdapter(a);
    // written beside the target and moved into place when complete: a failure leaves no half-written --out
    Path parent = out.toAbsolutePath().getParent();
    Files.createDirectories(parent);
    Path partial = Files.createTempDirectory(parent, out.getFileName() + ".partial-");
    try {
      HfCheckpoint.write(partial, merged.config(), merged.huggingFace(), type);
      if (Files.isDirectory(model) && type == base.storedType()) {
        // the base's own config.json keeps the fields this project does not model (the weights' layout is the same)
        Files.copy(model.resolve("config.json"), partial.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING);
      }
      for (Path f : ModelFiles.companionFiles(model)) {
        Files.copy(f, partial.resolve(f.getFileName().toString()));
      }
      Files.deleteIfExists(out);
      Files.move(partial, out, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException | RuntimeException e) {
      deleteTree(partial);
      throw e;
    }
    spec.commandLine().getOut().printf("merged %d LoRA modules into %s: %s%n", a.modules().size(), model, out);
    return 0;
  }

  /** Deletes a folder and everything in it (nothing where it does not exist). */
  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (var paths = Files.walk(dir)) {
      for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  private static boolean hasEntries(Path dir) throws IOException {
    try (var entries = Files.list(dir)) {
      return entries.findAny().isPresent();
    }
  }
}
