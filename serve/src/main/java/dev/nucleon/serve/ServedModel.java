package dev.nucleon.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.rollout.data.ChatTemplate;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What the server answers with: a checkpoint's tokenizer and chat template, and the generator behind the batcher.
 *
 * @param name the model id clients name ({@code /v1/models}); a request naming another model is refused
 * @param tokenizer encodes prompts and decodes completions
 * @param chatTemplate renders chat messages into a prompt, or null (the model has none: chat is refused)
 * @param stopIds token ids that end a completion (the tokenizer's and the checkpoint's end-of-sequence ids)
 * @param vocabSize token ids the model takes (a prompt of ids is checked against it)
 * @param maxPositions prompt plus completion tokens the model takes
 * @param defaultMaxTokens new tokens when a request gives no limit (less when the context has less room)
 */
public record ServedModel(String name, TextTokenizer tokenizer, ChatTemplate chatTemplate, int[] stopIds,
    int vocabSize, int maxPositions, int defaultMaxTokens) {

  public ServedModel {
    if (name == null || name.isBlank()) {
      throw new IllegalArgumentException("the served model needs a name");
    }
    if (defaultMaxTokens < 1) {
      throw new IllegalArgumentException("default max tokens must be >= 1, got " + defaultMaxTokens);
    }
  }

  /**
   * The model of a checkpoint folder: its chat template from {@code tokenizer_config.json} (or
   * {@code chat_template.jinja} beside it) when it has one.
   *
   * @param folder the checkpoint folder, or null (a llama2.c file: no chat template)
   * @param stopIds the ids that end a completion ({@code ModelFiles.stopIds})
   */
  public static ServedModel of(String name, Path folder, TextTokenizer tokenizer, int[] stopIds,
      int vocabSize, int maxPositions, int defaultMaxTokens) {
    ChatTemplate template = null;
    if (folder != null) {
      Path config = folder.resolve("tokenizer_config.json");
      boolean jinja = Files.isRegularFile(folder.resolve("chat_template.jinja"));
      try {
        boolean inConfig = Files.isRegularFile(config)
            && new ObjectMapper().readTree(config.toFile()).hasNonNull("chat_template");
        if (inConfig || (jinja && Files.isRegularFile(config))) {
          template = ChatTemplate.fromTokenizerConfig(config);
        } else if (jinja) {
          template = ChatTemplate.of(folder.resolve("chat_template.jinja").toString(),
              Files.readString(folder.resolve("chat_template.jinja")), "", "");
        }
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read the chat template of " + folder + ": " + e.getMessage(), e);
      }
    }
    return new ServedModel(name, tokenizer, template, stopIds, vocabSize, maxPositions, defaultMaxTokens);
  }
}
