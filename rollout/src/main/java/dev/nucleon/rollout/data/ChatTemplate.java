package dev.nucleon.rollout.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.tree.Node;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELResolver;

/**
 * A Hugging Face chat template ({@code chat_template} of {@code tokenizer_config.json}, or a
 * {@code chat_template.jinja} beside it) rendered with Jinjava, HubSpot's maintained Java Jinja engine.
 *
 * <p>The environment follows {@code transformers}' {@code apply_chat_template}: {@code trim_blocks} and
 * {@code lstrip_blocks} on, variables {@code messages} (a list of {@code {role, content}} maps),
 * {@code add_generation_prompt}, {@code bos_token}, {@code eos_token}, plus any extra variables; the functions
 * {@code raise_exception(msg)} (fails the render with that message) and {@code strftime_now(fmt)} (the date of this
 * template's clock in a Python {@code strftime} format; fix the clock for reproducible prompts). Python-like
 * semantics are switched on where Jinjava offers them (natural operator precedence, iterating a dict gives its keys,
 * Python-style rendering of values, recursive macros).
 *
 * <p>Instances are immutable and may be shared between threads.
 */
public final class ChatTemplate {

  /**
   * One chat message.
   *
   * @param toolCalls for an assistant message that calls tools: each call's {@code name} and {@code arguments}
   *     (passed to the template as OpenAI's {@code tool_calls}, {@code {"type": "function", "function": {...}}});
   *     null for other messages
   */
  public record Message(String role, String content, List<ToolCall> toolCalls) {
    public Message {
      Objects.requireNonNull(role, "role");
      Objects.requireNonNull(content, "content");
      toolCalls = toolCalls == null ? null : List.copyOf(toolCalls);
    }

    public Message(String role, String content) {
      this(role, content, null);
    }

    /** An assistant message that calls tools (its content may be empty). */
    public static Message assistantCalling(String content, List<ToolCall> calls) {
      return new Message("assistant", content, calls);
    }

    public static Message system(String content) {
      return new Message("system", content);
    }

    public static Message user(String content) {
      return new Message("user", content);
    }

    public static Message assistant(String content) {
      return new Message("assistant", content);
    }
  }

  /** A tool call in an assistant message: the tool's name and its arguments (a JSON object, or any value). */
  public record ToolCall(String name, Object arguments) {
    public ToolCall {
      Objects.requireNonNull(name, "name");
    }
  }

  /** A template that could not be loaded or rendered; the message says which template and why. */
  public static final class ChatTemplateException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ChatTemplateException(String message) {
      super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String CLOCK_VAR = "__nucleon_clock__";

  private final String source;
  private final String template;
  private final String bosToken;
  private final String eosToken;
  private final Clock clock;
  private final Jinjava jinjava;
  private final Node tree;

  private ChatTemplate(String source, String template, String bosToken, String eosToken, Clock clock) {
    this.source = source;
    this.template = Objects.requireNonNull(template, "template");
    this.bosToken = bosToken == null ? "" : bosToken;
    this.eosToken = eosToken == null ? "" : eosToken;
    this.clock = Objects.requireNonNull(clock, "clock");
    this.jinjava = newJinjava();
    // parsed once (rendering a parsed tree is ~6x faster than Jinjava's render-from-text)
    JinjavaInterpreter parser = jinjava.newInterpreter();
    JinjavaInterpreter.pushCurrent(parser);
    try {
      this.tree = parser.parse(template);
    } catch (RuntimeException e) {
      throw new ChatTemplateException("chat template " + source + " does not parse: " + rootMessage(e), e);
    } finally {
      JinjavaInterpreter.popCurrent();
    }
    failOnFatal(parser.getErrorsCopy(), "does not parse");
  }

  /** A template given as text; {@code source} names it in error messages. */
  public static ChatTemplate of(String source, String template, String bosToken, String eosToken) {
    return new ChatTemplate(source, template, bosToken, eosToken, Clock.systemDefaultZone());
  }

  /**
   * The chat template of a {@code tokenizer_config.json}: its {@code chat_template} (a string, or a list of
   * {@code {name, template}} of which {@code default} is taken), else the {@code chat_template.jinja} file in the same
   * folder; {@code bos_token} and {@code eos_token} from the config (a string or an AddedToken object).
   */
  public static ChatTemplate fromTokenizerConfig(Path tokenizerConfig) {
    String json;
    try {
      json = Files.readString(tokenizerConfig);
    } catch (IOException e) {
      throw new ChatTemplateException("cannot read tokenizer config " + tokenizerConfig + ": " + e, e);
    }
    Path beside = tokenizerConfig.toAbsolutePath().getParent().resolve("chat_template.jinja");
    String jinja = null;
    if (Files.isRegularFile(beside)) {
      try {
        jinja = Files.readString(beside);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read " + beside, e);
      }
    }
    return fromTokenizerConfig(tokenizerConfig.toString(), json, jinja, beside.toString());
  }

  /**
   * As {@link #fromTokenizerConfig(Path)} from text: {@code json} is the tokenizer config, {@code jinja} the content
   * of a {@code chat_template.jinja} beside it (null when there is none), used only when the config has no
   * {@code chat_template}.
   */
  public static ChatTemplate fromTokenizerConfig(String source, String json, String jinja, String jinjaSource) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (IOException e) {
      throw new ChatTemplateException("tokenizer config " + source + " is not JSON: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new ChatTemplateException(source + " is not a JSON object");
    }
    String template = null;
    String from = source;
    JsonNode chat = root.get("chat_template");
    if (chat != null && chat.isTextual()) {
      template = chat.asText();
    } else if (chat != null && chat.isArray()) {
      for (JsonNode named : chat) {
        if ("default".equals(named.path("name").asText())) {
          template = named.path("template").asText(null);
        }
      }
      if (template == null) {
        throw new ChatTemplateException(source + ": chat_template is a list without a 'default' entry");
      }
    } else if (jinja != null) {
      template = jinja;
      from = jinjaSource;
    } else {
      throw new ChatTemplateException(source + " has no chat_template and there is no " + jinjaSource);
    }
    return new ChatTemplate(from, template, token(root.get("bos_token")), token(root.get("eos_token")),
        Clock.systemDefaultZone());
  }

  private static String token(JsonNode node) {
    if (node == null || node.isNull()) {
      return "";
    }
    if (node.isTextual()) {
      return node.asText();
    }
    return node.path("content").asText("");
  }

  /** The same template with {@code strftime_now} reading {@code clock}. */
  public ChatTemplate withClock(Clock clock) {
    return new ChatTemplate(source, template, bosToken, eosToken, clock);
  }

  public String source() {
    return source;
  }

  public String template() {
    return template;
  }

  public String bosToken() {
    return bosToken;
  }

  public String eosToken() {
    return eosToken;
  }

  /** Renders {@code messages}; with {@code addGenerationPrompt} the text ends where the assistant's reply begins. */
  public String render(List<Message> messages, boolean addGenerationPrompt) {
    return render(messages, addGenerationPrompt, Map.of());
  }

  /** As {@link #render(List, boolean)} with extra template variables (e.g. {@code reasoning_effort}). */
  public String render(List<Message> messages, boolean addGenerationPrompt, Map<String, ?> extra) {
    List<Map<String, Object>> msgs = new ArrayList<>();
    for (Message m : messages) {
      Map<String, Object> map = new LinkedHashMap<>();
      map.put("role", m.role());
      map.put("content", m.content());
      if (m.toolCalls() != null) {
        List<Map<String, Object>> calls = new ArrayList<>();
        for (ToolCall c : m.toolCalls()) {
          Map<String, Object> function = new LinkedHashMap<>();
          function.put("name", c.name());
          function.put("arguments", c.arguments());
          Map<String, Object> call = new LinkedHashMap<>();
          call.put("type", "function");
          call.put("function", function);
          calls.add(call);
        }
        map.put("tool_calls", calls);
      }
      msgs.add(map);
    }
    Map<String, Object> bindings = new HashMap<>(extra);
    bindings.put("messages", msgs);
    bindings.put("add_generation_prompt", addGenerationPrompt);
    bindings.put("bos_token", bosToken);
    bindings.put("eos_token", eosToken);
    bindings.put(CLOCK_VAR, clock);
    Context context = new Context(jinjava.getGlobalContext(), bindings, jinjava.getGlobalConfig().getDisabled());
    JinjavaInterpreter interpreter = new JinjavaInterpreter(jinjava, context, jinjava.getGlobalConfig());
    String output;
    synchronized (tree) { // the parsed tree is shared; Jinjava does not promise that rendering it is thread safe
      JinjavaInterpreter.pushCurrent(interpreter);
      try {
        output = interpreter.render(tree, true);
      } catch (RuntimeException e) {
        throw new ChatTemplateException("chat template " + source + " failed: " + rootMessage(e), e);
      } finally {
        JinjavaInterpreter.popCurrent();
      }
    }
    failOnFatal(interpreter.getErrorsCopy(), "failed");
    return output;
  }

  private void failOnFatal(List<TemplateError> errors, String what) {
    for (TemplateError error : errors) {
      if (error.getSeverity() == TemplateError.ErrorType.FATAL) {
        String message = error.getException() != null ? rootMessage(error.getException()) : error.getMessage();
        throw new ChatTemplateException("chat template " + source + " " + what
            + (error.getLineno() > 0 ? " at line " + error.getLineno() : "") + ": " + message,
            error.getException());
      }
    }
  }

  private static String rootMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      if (t instanceof RaisedException) {
        break;
      }
      t = t.getCause();
    }
    return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
  }

  private static Jinjava newJinjava() {
    JinjavaConfig config = JinjavaConfig.newBuilder()
        .withTrimBlocks(true)
        .withLstripBlocks(true)
        .withEnableRecursiveMacroCalls(true)
        .withMaxMacroRecursionDepth(64)
        .withFailOnUnknownTokens(false)
        .withElResolver(resolver())
        .withLegacyOverrides(LegacyOverrides.newBuilder()
            .withUseNaturalOperatorPrecedence(false).withUseTrimmingForNotesAndExpressions(true)
            .withIterateOverMapKeys(true)
            .withEvaluateMapKeys(true)
            .withUsePyishObjectMapper(true)
            .withParseWhitespaceControlStrictly(true)
            .withKeepNullableLoopValues(true)
            .build())
        .build();
    Jinjava jinjava = new Jinjava(config);
    jinjava.getGlobalContext().registerFunction(
        new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raiseException", String.class));
    jinjava.getGlobalContext().registerFunction(
        new ELFunctionDefinition("", "strftime_now", ChatTemplate.class, "strftimeNow", String.class));
    return jinjava;
  }

  private static ELResolver resolver() {
    CompositeELResolver resolver = new CompositeELResolver();
    resolver.add(new PythonMethods());
    resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_WRITE);
    return resolver;
  }

  /** The exception {@code raise_exception} throws. */
  static final class RaisedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    RaisedException(String message) {
      super(message);
    }
  }

  /** {@code raise_exception(message)}: fails the render. */
  public static String raiseException(String message) {
    throw new RaisedException("raise_exception: " + message);
  }

  /** {@code strftime_now(format)}: the current date and time of the rendering template's clock. */
  public static String strftimeNow(String format) {
    Clock clock = Clock.systemDefaultZone();
    JinjavaInterpreter interpreter = JinjavaInterpreter.getCurrent();
    if (interpreter != null && interpreter.getContext().get(CLOCK_VAR) instanceof Clock c) {
      clock = c;
    }
    return strftime(format, ZonedDateTime.now(clock));
  }

  /** Python {@code strftime} for the common directives (%Y %y %m %d %e %H %I %M %S %p %B %b %A %a %j %Z %z %%). */
  static String strftime(String format, ZonedDateTime t) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < format.length(); i++) {
      char c = format.charAt(i);
      if (c != '%' || i + 1 >= format.length()) {
        out.append(c);
        continue;
      }
      char d = format.charAt(++i);
      switch (d) {
        case 'Y' -> out.append(t.getYear());
        case 'y' -> out.append(String.format(Locale.ROOT, "%02d", t.getYear() % 100));
        case 'm' -> out.append(String.format(Locale.ROOT, "%02d", t.getMonthValue()));
        case 'd' -> out.append(String.format(Locale.ROOT, "%02d", t.getDayOfMonth()));
        case 'e' -> out.append(String.format(Locale.ROOT, "%2d", t.getDayOfMonth()));
        case 'H' -> out.append(String.format(Locale.ROOT, "%02d", t.getHour()));
        case 'I' -> out.append(String.format(Locale.ROOT, "%02d", (t.getHour() + 11) % 12 + 1));
        case 'M' -> out.append(String.format(Locale.ROOT, "%02d", t.getMinute()));
        case 'S' -> out.append(String.format(Locale.ROOT, "%02d", t.getSecond()));
        case 'p' -> out.append(t.getHour() < 12 ? "AM" : "PM");
        case 'B' -> out.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
        case 'b' -> out.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
        case 'A' -> out.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
        case 'a' -> out.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
        case 'j' -> out.append(String.format(Locale.ROOT, "%03d", t.getDayOfYear()));
        case 'Z' -> out.append(t.getZone().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
        case 'z' -> out.append(t.getOffset().getId().equals("Z") ? "+0000" : t.getOffset().getId().replace(":", ""));
        case '%' -> out.append('%');
        default -> out.append('%').append(d);
      }
    }
    return out.toString();
  }
}
