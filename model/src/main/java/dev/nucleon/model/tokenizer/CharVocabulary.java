package dev.nucleon.model.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes a character-level tokenizer as a Hugging Face {@code tokenizer.json} (a WordLevel model over single
 * characters, a pre-tokenizer that isolates every character, a Fuse decoder, BOS added by a template
 * post-processor) and its {@code tokenizer_config.json}. Small models built from scratch (the quickstart's
 * arithmetic model) use it; being a standard file, transformers and {@link HfTokenizer} load it alike.
 *
 * <p>Ids: 0 {@code <unk>}, 1 {@code <s>} (BOS), then the characters in the given order. The end-of-sequence
 * character (for example {@code $}) is one of them, named as {@code eos_token} so generation stops on it.
 */
public final class CharVocabulary {

  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private CharVocabulary() {}

  /**
   * @param dir the model folder to write {@code tokenizer.json} and {@code tokenizer_config.json} into
   * @param characters every character the texts use, each once
   * @param eos the character that ends a completion; must be among {@code characters}
   * @return the vocabulary size (characters + 2)
   */
  public static int write(Path dir, String characters, char eos) throws IOException {
    if (characters.indexOf(eos) < 0) {
      throw new IllegalArgumentException("end-of-sequence character '" + eos + "' is not in the vocabulary");
    }
    if (characters.chars().distinct().count() != characters.length()) {
      throw new IllegalArgumentException("characters repeat in '" + characters + "'");
    }
    ObjectNode root = JSON.createObjectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    ArrayNode added = root.putArray("added_tokens");
    addSpecial(added, 0, "<unk>");
    addSpecial(added, 1, "<s>");
    root.putNull("normalizer");
    ObjectNode pre = root.putObject("pre_tokenizer");
    pre.put("type", "Split");
    pre.putObject("pattern").put("Regex", ".");
    pre.put("behavior", "Isolated");
    pre.put("invert", false);
    ObjectNode post = root.putObject("post_processor");
    post.put("type", "TemplateProcessing");
    ArrayNode single = post.putArray("single");
    single.addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
    single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    ArrayNode pair = post.putArray("pair");
    pair.addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
    pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
    ObjectNode bos = post.putObject("special_tokens").putObject("<s>");
    bos.put("id", "<s>");
    bos.putArray("ids").add(1);
    bos.putArray("tokens").add("<s>");
    root.putObject("decoder").put("type", "Fuse");
    ObjectNode model = root.putObject("model");
    model.put("type", "WordLevel");
    ObjectNode vocab = model.putObject("vocab");
    vocab.put("<unk>", 0);
    vocab.put("<s>", 1);
    for (int i = 0; i < characters.length(); i++) {
      vocab.put(String.valueOf(characters.charAt(i)), i + 2);
    }
    model.put("unk_token", "<unk>");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("tokenizer.json"), JSON.writeValueAsString(root));
    ObjectNode config = JSON.createObjectNode();
    config.put("bos_token", "<s>");
    config.put("eos_token", String.valueOf(eos));
    config.put("unk_token", "<unk>");
    config.put("tokenizer_class", "PreTrainedTokenizerFast");
    config.put("clean_up_tokenization_spaces", false);
    Files.writeString(dir.resolve("tokenizer_config.json"), JSON.writeValueAsString(config));
    return characters.length() + 2;
  }

  private static void addSpecial(ArrayNode added, int id, String content) {
    ObjectNode t = added.addObject();
    t.put("id", id);
    t.put("content", content);
    t.put("single_word", false);
    t.put("lstrip", false);
    t.put("rstrip", false);
    t.put("normalized", false);
    t.put("special", true);
  }
}
