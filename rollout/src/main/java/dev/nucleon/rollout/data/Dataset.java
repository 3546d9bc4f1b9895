package dev.nucleon.rollout.data;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.rollout.data.DatasetSettings.Format;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A loaded dataset: the training rows and the held-out evaluation rows, which never overlap.
 *
 * <ol>
 *   <li>Read the file: JSONL (one object a line, blank lines skipped) or one JSON array of objects; a malformed
 *       record is an error naming the file and line.
 *   <li>Map each record with the preset ({@link Format}) and the field overrides: the fields the template may use,
 *       the ground truth, the metadata. A missing field or an unreadable ground truth is an error naming the file and
 *       line; nothing is skipped silently.
 *   <li>Render the prompt: the {@code {field}} template, then, when configured, the model's chat template with the
 *       result as the user message and {@code add_generation_prompt = true}.
 *   <li>Split off the evaluation set: a separate file (optionally a fixed sample of it), or the first
 *       {@code eval.size} rows of a permutation drawn with {@code eval.seed}, held out of the training rows.
 * </ol>
 */
public final class Dataset {

  private static final ObjectMapper JSON =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
  private static final ObjectMapper STREAM = new ObjectMapper(); // reads one element of an array at a time
  private static final Pattern GSM8K_ANSWER = Pattern.compile("####\\s*(.+?)\\s*$");
  private static final Pattern NUMBER = Pattern.compile("[-+]?\\d+(\\.\\d+)?");

  private final DatasetSettings settings;
  private final List<DatasetRow> train;
  private final List<DatasetRow> eval;

  private Dataset(DatasetSettings settings, List<DatasetRow> train, List<DatasetRow> eval) {
    this.settings = settings;
    this.train = List.copyOf(train);
    this.eval = List.copyOf(eval);
  }

  /** Builds a dataset from rows already made (tests, tools); ids must be unique across both lists. */
  public static Dataset of(DatasetSettings settings, List<DatasetRow> train, List<DatasetRow> eval) {
    return new Dataset(settings, train, eval);
  }

  /** Loads the dataset the settings describe. */
  public static Dataset load(DatasetSettings settings) {
    return load(settings, List.of());
  }

  /**
   * Loads the dataset the settings describe; with the chat template, {@code tools} (declarations in OpenAI's
   * function format, a tool-using environment's) go to the template's {@code tools}.
   */
  public static Dataset load(DatasetSettings settings, List<Map<String, Object>> tools) {
    if (settings.format() == Format.ARITHMETIC) {
      ArithmeticTask task = new ArithmeticTask(settings.arithmetic());
      Renderer renderer = new Renderer(settings, tools);
      ArithmeticTask.Split split = task.split(settings.eval().size(), settings.eval().seed());
      return new Dataset(settings, renderer.renderAll(split.train(), task), renderer.renderAll(split.eval(), task));
    }
    Renderer renderer = new Renderer(settings, tools);
    Path trainPath = Path.of(settings.path());
    List<DatasetRow> all = readRows(trainPath, settings, renderer, 0);
    DatasetSettings.Eval ev = settings.eval();
    if (!ev.path().isEmpty()) {
      List<DatasetRow> evalRows = readRows(Path.of(ev.path()), settings, renderer, all.size());
      if (ev.size() > 0 && ev.size() < evalRows.size()) {
        evalRows = sample(evalRows, ev.size(), ev.seed());
      }
      return new Dataset(settings, all, evalRows);
    }
    if (ev.size() == 0) {
      return new Dataset(settings, all, List.of());
    }
    if (ev.size() >= all.size()) {
      throw new DatasetException(trainPath + ": eval.size = " + ev.size() + " would hold out every one of its "
          + all.size() + " rows; set eval.size smaller or give eval.path");
    }
    int[] perm = Shuffle.permutation(all.size(), ev.seed(), Shuffle.HOLD_OUT);
    boolean[] held = new boolean[all.size()];
    for (int i = 0; i < ev.size(); i++) {
      held[perm[i]] = true;
    }
    List<DatasetRow> train = new ArrayList<>();
    List<DatasetRow> evalRows = new ArrayList<>();
    for (int i = 0; i < all.size(); i++) {
      (held[i] ? evalRows : train).add(all.get(i));
    }
    return new Dataset(settings, train, evalRows);
  }

  private static List<DatasetRow> sample(List<DatasetRow> rows, int size, long seed) {
    int[] perm = Shuffle.permutation(rows.size(), seed, Shuffle.HOLD_OUT);
    int[] chosen = Arrays.copyOf(perm, size);
    Arrays.sort(chosen);
    List<DatasetRow> out = new ArrayList<>(size);
    for (int i : chosen) {
      out.add(rows.get(i));
    }
    return out;
  }

  public DatasetSettings settings() {
    return settings;
  }

  /** The training rows in file order (the cursor shuffles them). */
  public List<DatasetRow> train() {
    return train;
  }

  /** The held-out rows; empty when there is no evaluation set. */
  public List<DatasetRow> eval() {
    return eval;
  }

  /** A cursor over the training rows with the settings' order, seed and epochs, at the start. */
  public DatasetCursor cursor() {
    return new DatasetCursor(train, settings.shuffle(), settings.shuffleSeed(), settings.epochs());
  }

  /** One record of a data file with the line it starts on (1-based). */
  public record Record(JsonNode node, int line) {}

  /** Reads the records of a JSONL file or a JSON-array file; errors name the file and line. */
  public static List<Record> readRecords(Path file) {
    String text;
    try {
      text = Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new DatasetException("cannot read dataset file " + file + ": " + e, e);
    }
    if (text.startsWith("\uFEFF")) {
      text = text.substring(1);
    }
    String trimmed = text.stripLeading();
    return trimmed.startsWith("[") ? readArray(file, text) : readJsonLines(file, text);
  }

  private static List<Record> readJsonLines(Path file, String text) {
    List<Record> out = new ArrayList<>();
    try (BufferedReader reader = new BufferedReader(new StringReader(text))) {
      String line;
      int lineNo = 0;
      while ((line = reader.readLine()) != null) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        JsonNode node;
        try {
          node = JSON.readTree(line);
        } catch (JsonProcessingException e) {
          throw new DatasetException(file + ":" + lineNo + ": malformed JSON: " + e.getOriginalMessage(), e);
        }
        if (node == null || !node.isObject()) {
          throw new DatasetException(file + ":" + lineNo + ": expected a JSON object, got "
              + (node == null ? "nothing" : node.getNodeType().name().toLowerCase()));
        }
        out.add(new Record(node, lineNo));
      }
    } catch (IOException e) {
      throw new DatasetException("cannot read dataset file " + file + ": " + e, e);
    }
    return out;
  }

  private static List<Record> readArray(Path file, String text) {
    List<Record> out = new ArrayList<>();
    try (JsonParser parser = STREAM.getFactory().createParser(text)) {
      parser.nextToken(); // START_ARRAY
      JsonToken token;
      while ((token = parser.nextToken()) != JsonToken.END_ARRAY) {
        if (token == null) {
          throw new DatasetException(file + ":" + parser.currentLocation().getLineNr()
              + ": the JSON array is not closed");
        }
        int line = parser.currentTokenLocation().getLineNr();
        JsonNode node = STREAM.readTree(parser);
        if (node == null || !node.isObject()) {
          throw new DatasetException(file + ":" + line + ": expected a JSON object in the array, got "
              + (node == null ? "nothing" : node.getNodeType().name().toLowerCase()));
        }
        out.add(new Record(node, line));
      }
      if (parser.nextToken() != null) {
        throw new DatasetException(file + ":" + parser.currentTokenLocation().getLineNr()
            + ": unexpected content after the JSON array");
      }
    } catch (JsonProcessingException e) {
      JsonLocation at = e.getLocation();
      throw new DatasetException(file + ":" + (at == null ? "?" : at.getLineNr()) + ": malformed JSON: "
          + e.getOriginalMessage(), e);
    } catch (IOException e) {
      throw new DatasetException("cannot read dataset file " + file + ": " + e, e);
    }
    return out;
  }

  private static List<DatasetRow> readRows(Path file, DatasetSettings s, Renderer renderer, long firstId) {
    List<Record> records = readRecords(file);
    if (records.isEmpty()) {
      throw new DatasetException(file + ": no rows");
    }
    List<DatasetRow> rows = new ArrayList<>(records.size());
    long id = firstId;
    for (Record r : records) {
      String where = file + ":" + r.line();
      try {
        Mapped m = map(r.node(), s);
        rows.add(renderer.render(id++, m));
      } catch (IllegalArgumentException | ChatTemplate.ChatTemplateException e) {
        throw new DatasetException(where + ": " + e.getMessage(), e);
      }
    }
    return rows;
  }

  /** A record mapped by the preset: the template's fields, the ground truth and the metadata. */
  record Mapped(Map<String, String> fields, String groundTruth, Map<String, String> metadata) {}

  static Mapped map(JsonNode node, DatasetSettings s) {
    Map<String, String> fields = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().isNull()) {
        fields.put(e.getKey(), text(e.getValue()));
      }
    }
    String prompt = required(node, s.promptField(), "prompt");
    String answer = required(node, s.answerField(), "answer");
    fields.put("prompt", prompt);
    Map<String, String> metadata = new LinkedHashMap<>();
    String groundTruth;
    switch (s.format()) {
      case GSM8K -> groundTruth = gsm8kAnswer(answer);
      case COUNTDOWN -> {
        String numbers = countdownNumbers(node.get(s.promptField()));
        String target = answer.trim();
        if (!target.matches("-?\\d+")) {
          throw new IllegalArgumentException("countdown target (field '" + s.answerField()
              + "') is not an integer: '" + answer + "'");
        }
        fields.put("numbers", numbers);
        fields.put("target", target);
        metadata.put("numbers", numbers);
        metadata.put("target", target);
        groundTruth = target;
      }
      default -> groundTruth = answer.trim();
    }
    for (String key : s.metadataFields()) {
      metadata.put(key, required(node, key, "metadata"));
    }
    return new Mapped(fields, groundTruth, metadata);
  }

  /** GSM8K's final answer: the text after the last {@code ####}, thousands commas removed. */
  public static String gsm8kAnswer(String solution) {
    String last = null;
    for (String line : solution.split("\\R")) {
      Matcher m = GSM8K_ANSWER.matcher(line);
      if (m.find()) {
        last = m.group(1);
      }
    }
    if (last == null) {
      throw new IllegalArgumentException("the GSM8K answer has no '#### N' line");
    }
    String n = last.replace(",", "").trim();
    if (!NUMBER.matcher(n).matches()) {
      throw new IllegalArgumentException("the GSM8K answer after '####' is not a number: '" + last + "'");
    }
    return n;
  }

  private static String countdownNumbers(JsonNode value) {
    List<String> out = new ArrayList<>();
    if (value.isArray()) {
      for (JsonNode n : value) {
        out.add(n.asText().trim());
      }
    } else {
      for (String part : value.asText().replaceAll("[\\[\\]]", " ").trim().split("[,\\s]+")) {
        out.add(part.trim());
      }
    }
    for (String n : out) {
      if (!n.matches("-?\\d+")) {
        throw new IllegalArgumentException("countdown numbers are not a list of integers: '" + text(value) + "'");
      }
    }
    if (out.size() < 2) {
      throw new IllegalArgumentException("countdown needs at least two numbers, got '" + text(value) + "'");
    }
    return String.join(",", out);
  }

  private static String required(JsonNode node, String field, String role) {
    JsonNode v = node.get(field);
    if (v == null || v.isNull()) {
      List<String> names = new ArrayList<>();
      node.fieldNames().forEachRemaining(names::add);
      throw new IllegalArgumentException("no " + role + " field '" + field + "' (the row has " + names + ")");
    }
    return text(v);
  }

  private static String text(JsonNode v) {
    return v.isValueNode() ? v.asText() : v.toString();
  }

  /** Renders prompts: the {field} template, then the chat template when configured. */
  static final class Renderer {
    private final PromptTemplate template;
    private final ChatTemplate chat;
    private final String systemPrompt;
    private final List<Map<String, Object>> tools;

    Renderer(DatasetSettings s, List<Map<String, Object>> tools) {
      this.tools = List.copyOf(tools);
      if (!tools.isEmpty() && !s.chatTemplate()) {
        throw new DatasetException("tools are declared to the model through its chat template: set "
            + "nucleon.dataset.chat-template = true");
      }
      this.template = PromptTemplate.parse(s.template());
      this.systemPrompt = s.systemPrompt();
      if (s.chatTemplate()) {
        Path config = Path.of(s.tokenizerConfig());
        ChatTemplate t;
        try {
          t = ChatTemplate.fromTokenizerConfig(config);
        } catch (ChatTemplate.ChatTemplateException e) {
          throw new DatasetException(e.getMessage(), e);
        }
        if (!s.templateDate().isEmpty()) {
          t = t.withClock(Clock.fixed(LocalDate.parse(s.templateDate()).atStartOfDay(ZoneOffset.UTC).toInstant(),
              ZoneOffset.UTC));
        }
        this.chat = t;
      } else {
        this.chat = null;
      }
    }

    /** The full prompt for a user text. */
    String prompt(String user) {
      if (chat == null) {
        return user;
      }
      List<ChatTemplate.Message> messages = new ArrayList<>(2);
      if (!systemPrompt.isEmpty()) {
        messages.add(ChatTemplate.Message.system(systemPrompt));
      }
      messages.add(ChatTemplate.Message.user(user));
      return tools.isEmpty() ? chat.render(messages, true) : chat.render(messages, true, Map.of("tools", tools));
    }

    DatasetRow render(long id, Mapped m) {
      return new DatasetRow(id, prompt(template.render(m.fields())), m.groundTruth(), m.metadata());
    }

    List<DatasetRow> renderAll(List<ArithmeticTask.Problem> problems, ArithmeticTask task) {
      List<DatasetRow> out = new ArrayList<>(problems.size());
      for (ArithmeticTask.Problem p : problems) {
        try {
          out.add(render(p.id(), new Mapped(p.fields(), p.answer(), task.metadata(p))));
        } catch (IllegalArgumentException e) {
          throw new DatasetException("arithmetic problem " + p.prompt() + ": " + e.getMessage(), e);
        }
      }
      return out;
    }
  }
}
