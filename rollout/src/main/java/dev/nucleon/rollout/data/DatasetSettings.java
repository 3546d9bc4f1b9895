package dev.nucleon.rollout.data;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigOrigin;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import java.time.LocalDate;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;

/**
 * The dataset of a run ({@code nucleon.dataset}), read once from config and validated at start. Every key is
 * documented in {@code rollout/src/main/resources/reference.conf}; an unknown key or a bad value is a
 * {@link ConfigException} naming the key and the file and line it came from.
 *
 * @param format the preset: field mapping, ground-truth extraction and default template
 * @param path the training file ("" for {@link Format#ARITHMETIC})
 * @param promptField the field holding the question (the preset's when not set)
 * @param answerField the field holding the reference answer (the preset's when not set)
 * @param metadataFields further fields copied into each row's metadata
 * @param template the prompt template with {@code {field}} placeholders (the preset's when not set)
 * @param chatTemplate whether the rendered template becomes the user message of the model's chat template
 * @param tokenizerConfig the tokenizer_config.json holding that chat template ("" when not used)
 * @param systemPrompt the system message of the chat template ("" = none)
 * @param templateDate the date {@code strftime_now} reports ("" = today)
 * @param shuffle whether each epoch is a seeded permutation (else file order)
 * @param shuffleSeed the seed of the training order
 * @param epochs passes over the training rows (0 = no limit)
 * @param eval the held-out evaluation set
 * @param arithmetic the generated arithmetic task's settings
 */
public record DatasetSettings(
    Format format,
    String path,
    String promptField,
    String answerField,
    List<String> metadataFields,
    String template,
    boolean chatTemplate,
    String tokenizerConfig,
    String systemPrompt,
    String templateDate,
    boolean shuffle,
    long shuffleSeed,
    int epochs,
    Eval eval,
    Arithmetic arithmetic) {

  /** The config block these settings are read from. */
  public static final String PATH = "nucleon.dataset";

  /** Dataset presets. */
  public enum Format {
    GSM8K("gsm8k", "question", "answer", "Question: {question}\nAnswer:"),
    MATH500("math500", "problem", "answer", "Problem: {problem}\nPut the final answer in \\boxed{{}}.\nSolution:"),
    COUNTDOWN("countdown", "input", "output",
        "Using the numbers [{numbers}], create an equation that equals {target}. You can use basic arithmetic "
            + "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> "
            + "tags. And return the final answer in <answer> </answer> tags, for example "
            + "<answer> (1 + 2) / 3 </answer>."),
    GENERIC("generic", "prompt", "answer", "{prompt}"),
    ARITHMETIC("arithmetic", "prompt", "answer", "{prompt}");

    private final String id;
    private final String promptField;
    private final String answerField;
    private final String template;

    Format(String id, String promptField, String answerField, String template) {
      this.id = id;
      this.promptField = promptField;
      this.answerField = answerField;
      this.template = template;
    }

    /** The name used in config. */
    public String id() {
      return id;
    }

    public String defaultPromptField() {
      return promptField;
    }

    public String defaultAnswerField() {
      return answerField;
    }

    public String defaultTemplate() {
      return template;
    }

    public static Format parse(String raw) {
      for (Format f : values()) {
        if (f.id.equals(raw.trim().toLowerCase(Locale.ROOT))) {
          return f;
        }
      }
      throw new IllegalArgumentException(raw);
    }
  }

  /**
   * The held-out set.
   *
   * @param path a separate file ("" = hold rows out of the training data)
   * @param size rows to use from {@code path} (0 = all), or rows to hold out of the training data (0 = none)
   * @param seed seed of the fixed sample
   */
  public record Eval(String path, int size, long seed) {}

  /**
   * The generated arithmetic task.
   *
   * @param maxOperand operands are 0..maxOperand, zero-padded to its width
   * @param ops the operators, each one of {@code + - *}
   * @param stop the stop marker that ends an answer
   */
  public record Arithmetic(int maxOperand, List<String> ops, String stop) {
    public Arithmetic {
      ops = List.copyOf(ops);
    }
  }

  public DatasetSettings {
    Objects.requireNonNull(format, "format");
    metadataFields = List.copyOf(metadataFields);
  }

  /**
   * Reads {@code nucleon.dataset} of {@code config} (a whole run config; the defaults of reference.conf fill keys it
   * leaves out).
   */
  public static DatasetSettings from(Config config) {
    Config reference = ConfigFactory.defaultReference(DatasetSettings.class.getClassLoader());
    Config c = config.withFallback(reference).resolve();
    checkKnownKeys(c, reference);
    String p = PATH + ".";
    Format format = choice(c, p + "format");
    String path = string(c, p + "path").trim();
    if (format != Format.ARITHMETIC && path.isEmpty()) {
      throw bad(c, p + "path", "a data file is required for format " + format.id());
    }
    String promptField = orDefault(string(c, p + "prompt-field"), format.defaultPromptField());
    String answerField = orDefault(string(c, p + "answer-field"), format.defaultAnswerField());
    List<String> metadataFields = stringList(c, p + "metadata-fields");
    String template = string(c, p + "template");
    if (template.isEmpty()) {
      template = format.defaultTemplate();
    }
    try {
      PromptTemplate.parse(template);
    } catch (IllegalArgumentException e) {
      throw bad(c, p + "template", e.getMessage());
    }
    boolean chat = bool(c, p + "chat-template");
    String tokenizerConfig = string(c, p + "tokenizer-config").trim();
    if (chat && tokenizerConfig.isEmpty()) {
      throw bad(c, p + "tokenizer-config", "required when chat-template = true (the model's tokenizer_config.json)");
    }
    String systemPrompt = string(c, p + "system-prompt");
    String templateDate = string(c, p + "template-date").trim();
    if (!templateDate.isEmpty()) {
      try {
        LocalDate.parse(templateDate);
      } catch (DateTimeParseException e) {
        throw bad(c, p + "template-date", "expected a date YYYY-MM-DD or \"\", got '" + templateDate + "'");
      }
    }
    boolean shuffle = bool(c, p + "shuffle");
    long shuffleSeed = longValue(c, p + "shuffle-seed");
    int epochs = intAtLeast(c, p + "epochs", 0);
    Eval eval = new Eval(string(c, p + "eval.path").trim(), intAtLeast(c, p + "eval.size", 0),
        longValue(c, p + "eval.seed"));
    int maxOperand = intAtLeast(c, p + "arithmetic.max-operand", 1);
    if (maxOperand > 99_999) {
      throw bad(c, p + "arithmetic.max-operand", "must be at most 99999, got " + maxOperand);
    }
    List<String> ops = stringList(c, p + "arithmetic.ops");
    if (ops.isEmpty()) {
      throw bad(c, p + "arithmetic.ops", "expected at least one of \"+\", \"-\", \"*\"");
    }
    for (String op : ops) {
      if (!List.of("+", "-", "*").contains(op)) {
        throw bad(c, p + "arithmetic.ops", "expected operators among \"+\", \"-\", \"*\", got '" + op + "'");
      }
    }
    if (ops.size() != new TreeSet<>(ops).size()) {
      throw bad(c, p + "arithmetic.ops", "an operator is listed twice: " + ops);
    }
    String stop = string(c, p + "arithmetic.stop");
    if (stop.isEmpty() || stop.chars().anyMatch(ch -> Character.isDigit(ch) || "+-*=".indexOf(ch) >= 0)) {
      throw bad(c, p + "arithmetic.stop", "expected a non-empty marker without digits or + - * =, got '"
          + stop + "'");
    }
    Arithmetic arithmetic = new Arithmetic(maxOperand, ops, stop);
    if (format == Format.ARITHMETIC) {
      long pairs = ArithmeticTask.rowCount(arithmetic);
      if (eval.size() >= pairs) {
        throw bad(c, p + "eval.size", "must be smaller than the " + pairs + " arithmetic problems, got "
            + eval.size());
      }
    }
    return new DatasetSettings(format, path, promptField, answerField, metadataFields, template, chat,
        tokenizerConfig, systemPrompt, templateDate, shuffle, shuffleSeed, epochs, eval, arithmetic);
  }

  /** Settings from {@code nucleon.dataset} of the given HOCON text over the defaults (for tests and tools). */
  public static DatasetSettings parse(String hocon) {
    return from(ConfigFactory.parseString(hocon));
  }

  private static void checkKnownKeys(Config c, Config reference) {
    if (!c.hasPathOrNull(PATH)) {
      return;
    }
    ConfigValue block = c.getValue(PATH);
    if (block.valueType() != ConfigValueType.OBJECT) {
      throw new ConfigException.WrongType(block.origin(), PATH, "an object", block.valueType().name());
    }
    for (Map.Entry<String, ConfigValue> e : c.getConfig(PATH).entrySet()) {
      String key = PATH + "." + e.getKey();
      if (!reference.hasPathOrNull(key)) {
        List<String> known = new ArrayList<>();
        for (Map.Entry<String, ConfigValue> r : reference.getConfig(PATH).entrySet()) {
          known.add(r.getKey());
        }
        known.sort(null);
        throw new ConfigException.BadPath(e.getValue().origin(), key, "unknown key; the keys of " + PATH
            + " are " + known);
      }
    }
  }

  private static String orDefault(String value, String fallback) {
    return value.isBlank() ? fallback : value.trim();
  }

  static ConfigException bad(Config config, String key, String message) {
    ConfigOrigin origin = config.hasPathOrNull(key) ? config.getValue(key).origin() : config.origin();
    return new ConfigException.BadValue(origin, key, message);
  }

  private static Format choice(Config c, String key) {
    String raw = string(c, key);
    try {
      return Format.parse(raw);
    } catch (IllegalArgumentException e) {
      throw bad(c, key, "expected one of gsm8k, math500, countdown, generic, arithmetic, got '" + raw + "'");
    }
  }

  private static String string(Config c, String key) {
    ConfigValue v = c.getValue(key);
    if (v.valueType() == ConfigValueType.OBJECT || v.valueType() == ConfigValueType.LIST) {
      throw bad(c, key, "expected a string, got " + v.valueType().name().toLowerCase(Locale.ROOT));
    }
    return c.getString(key);
  }

  private static List<String> stringList(Config c, String key) {
    try {
      return c.getStringList(key);
    } catch (ConfigException.WrongType e) {
      throw bad(c, key, "expected a list of strings such as [\"a\", \"b\"]");
    }
  }

  private static boolean bool(Config c, String key) {
    try {
      return c.getBoolean(key);
    } catch (ConfigException.WrongType e) {
      throw bad(c, key, "expected true or false");
    }
  }

  private static long longValue(Config c, String key) {
    try {
      return c.getLong(key);
    } catch (ConfigException.WrongType e) {
      throw bad(c, key, "expected an integer");
    }
  }

  private static int intAtLeast(Config c, String key, int min) {
    int v;
    try {
      v = c.getInt(key);
    } catch (ConfigException.WrongType e) {
      throw bad(c, key, "expected an integer");
    }
    if (v < min) {
      throw bad(c, key, "must be at least " + min + ", got " + v);
    }
    return v;
  }
}
