package dev.nucleon.model.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.model.Engines;
import dev.nucleon.model.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json} run by the Rust tokenizers library through DJL (offline: the native library
 * ships inside the jar). Special tokens come from {@code tokenizer.json}'s {@code added_tokens} and, when present,
 * {@code tokenizer_config.json} beside it ({@code bos_token}, {@code eos_token}).
 */
public final class HfTokenizer implements TextTokenizer {

  private static final ObjectMapper JSON = new ObjectMapper();

  private final HuggingFaceTokenizer tokenizer;
  private final int vocabSize;
  private final int bos;
  private final int[] eos;

  private HfTokenizer(HuggingFaceTokenizer tokenizer, int vocabSize, int bos, int[] eos) {
    this.tokenizer = tokenizer;
    this.vocabSize = vocabSize;
    this.bos = bos;
    this.eos = eos;
  }

  /** Loads {@code tokenizer.json} (a file, or a folder that holds one). */
  public static HfTokenizer load(Path path) {
    Path file = Files.isDirectory(path) ? path.resolve("tokenizer.json") : path;
    if (!Files.isRegularFile(file)) {
      throw new ModelFormatException(file + ": tokenizer.json not found");
    }
    Engines.start();
    JsonNode root;
    try {
      root = JSON.readTree(file.toFile());
    } catch (IOException e) {
      throw new ModelFormatException(file + ": not a valid tokenizer.json: " + e.getMessage(), e);
    }
    Map<String, Integer> added = new HashMap<>();
    int maxId = -1;
    for (JsonNode t : root.path("added_tokens")) {
      added.put(t.path("content").asText(), t.path("id").asInt());
      maxId = Math.max(maxId, t.path("id").asInt());
    }
    JsonNode vocab = root.path("model").path("vocab");
    if (vocab.isObject()) {
      for (JsonNode id : vocab) {
        maxId = Math.max(maxId, id.asInt());
      }
    } else if (vocab.isArray()) {
      maxId = Math.max(maxId, vocab.size() - 1);
    }
    String bosText = null;
    String eosText = null;
    Path config = file.resolveSibling("tokenizer_config.json");
    if (Files.isRegularFile(config)) {
      try {
        JsonNode c = JSON.readTree(config.toFile());
        bosText = tokenText(c.get("bos_token"));
        eosText = tokenText(c.get("eos_token"));
      } catch (IOException e) {
        throw new ModelFormatException(config + ": not valid JSON: " + e.getMessage(), e);
      }
    }
    int bos = idOf(bosText, added, vocab);
    int eosId = idOf(eosText, added, vocab);
    int[] eos = eosId >= 0 ? new int[] {eosId} : new int[0];
    try {
      String json = normalizedMerges(file, root) ? JSON.writeValueAsString(root) : Files.readString(file);
      HuggingFaceTokenizer tok = HuggingFaceTokenizer.newInstance(
          new java.io.ByteArrayInputStream(json.getBytes(java.nio.charset.StandardCharsets.UTF_8)),
          Map.of("addSpecialTokens", "true", "truncation", "false", "padding", "false"));
      return new HfTokenizer(tok, maxId + 1, bos, eos);
    } catch (IOException | RuntimeException e) {
      throw new ModelFormatException(file + ": the tokenizers library refused it: " + e.getMessage(), e);
    }
  }

  /**
   * BPE merges in the legacy {@code "left right"} string form are ambiguous when a token contains a space (the
   * Llama 2 vocabulary has runs of raw spaces): the tokenizers library splits on every space and refuses the file.
   * Such merges are rewritten in the {@code ["left", "right"]} form, choosing the one split whose two sides are both
   * in the vocabulary.
   *
   * @return whether any merge was rewritten
   */
  static boolean normalizedMerges(Path file, JsonNode root) {
    JsonNode model = root.path("model");
    JsonNode merges = model.path("merges");
    JsonNode vocab = model.path("vocab");
    if (!merges.isArray() || !vocab.isObject()) {
      return false;
    }
    boolean ambiguous = false;
    for (JsonNode m : merges) {
      if (m.isTextual() && m.asText().split(" ", -1).length != 2) {
        ambiguous = true;
        break;
      }
    }
    if (!ambiguous) {
      return false;
    }
    com.fasterxml.jackson.databind.node.ArrayNode fixed = JSON.createArrayNode();
    int line = 0;
    for (JsonNode m : merges) {
      line++;
      if (!m.isTextual()) {
        fixed.add(m);
        continue;
      }
      String s = m.asText();
      String left = null;
      String right = null;
      for (int i = 0; i < s.length(); i++) {
        if (s.charAt(i) == ' ' && vocab.has(s.substring(0, i)) && vocab.has(s.substring(i + 1))) {
          if (left != null) {
            throw new ModelFormatException(file + ": merge " + line + " '" + s + "' can be split in two ways");
          }
          left = s.substring(0, i);
          right = s.substring(i + 1);
        }
      }
      if (left == null) {
        throw new ModelFormatException(file + ": merge " + line + " '" + s + "' does not join two vocabulary tokens");
      }
      fixed.addArray().add(left).add(right);
    }
    ((com.fasterxml.jackson.databind.node.ObjectNode) model).set("merges", fixed);
    return true;
  }

  private static int idOf(String text, Map<String, Integer> added, JsonNode vocab) {
    if (text == null) {
      return -1;
    }
    if (added.containsKey(text)) {
      return added.get(text);
    }
    return vocab.isObject() && vocab.has(text) ? vocab.get(text).asInt() : -1;
  }

  private static String tokenText(JsonNode n) {
    if (n == null || n.isNull()) {
      return null;
    }
    return n.isTextual() ? n.asText() : n.path("content").asText(null);
  }

  @Override
  public int[] encode(String text, boolean addSpecialTokens) {
    long[] ids = tokenizer.encode(text, addSpecialTokens, false).getIds();
    return Arrays.stream(ids).mapToInt(l -> (int) l).toArray();
  }

  @Override
  public String decode(int[] ids, boolean skipSpecialTokens) {
    return tokenizer.decode(Arrays.stream(ids).mapToLong(i -> i).toArray(), skipSpecialTokens);
  }

  @Override
  public int vocabSize() {
    return vocabSize;
  }

  @Override
  public int bosId() {
    return bos;
  }

  @Override
  public int[] eosIds() {
    return eos.clone();
  }

  @Override
  public void close() {
    tokenizer.close();
  }
}
