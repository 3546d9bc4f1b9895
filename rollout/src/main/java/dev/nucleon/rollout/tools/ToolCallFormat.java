package dev.nucleon.rollout.tools;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a model family writes tool calls in its turn, as its chat template teaches it. A turn is parsed into its calls
 * and the calls that could not be read (each with what was wrong, for the model to read back); a turn with neither
 * is an answer.
 */
public enum ToolCallFormat {

  /**
   * Hermes / Qwen 2.5 / Qwen 3: {@code <tool_call>{"name": ..., "arguments": {...}}</tool_call>}, any number per
   * turn.
   */
  HERMES("hermes") {
    private final Pattern block = Pattern.compile("<tool_call>(.*?)(?:</tool_call>|\\z)", Pattern.DOTALL);

    @Override
    public Parsed parse(String turn) {
      Parsed out = new Parsed();
      Matcher m = block.matcher(turn);
      while (m.find()) {
        if (m.end() == turn.length() && !turn.endsWith("</tool_call>")) {
          out.errors.add("a <tool_call> is not closed with </tool_call>");
        }
        out.add(json(m.group(1).strip(), "arguments"));
      }
      return out;
    }
  },

  /**
   * Llama 3.1 / 3.2 / 3.3 JSON calls: the whole turn is one JSON object {@code {"name": ..., "parameters": {...}}}
   * (or {@code "arguments"}), optionally after {@code <|python_tag|>}; several calls separated by {@code ;}.
   */
  LLAMA3("llama3") {
    @Override
    public Parsed parse(String turn) {
      Parsed out = new Parsed();
      String t = turn.strip();
      if (t.startsWith("<|python_tag|>")) {
        t = t.substring("<|python_tag|>".length()).strip();
      }
      if (!t.startsWith("{")) {
        return out; // an answer
      }
      for (String part : splitTopLevel(t)) {
        out.add(json(part.strip(), "parameters"));
      }
      return out;
    }
  },

  /**
   * gpt-oss (harmony): a message on the commentary channel addressed to a function,
   * {@code <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>}; the recipient may
   * also stand before the channel ({@code to=functions.NAME<|channel|>commentary ...}).
   */
  HARMONY("harmony") {
    @Override
    public Parsed parse(String turn) {
      // scanned with indexOf, not a pattern: a run of recipients without messages must not cost quadratic time
      Parsed out = new Parsed();
      String to = "to=functions.";
      String message = "<|message|>";
      int i = turn.indexOf(to);
      while (i >= 0) {
        int nameStart = i + to.length();
        int nameEnd = nameStart;
        while (nameEnd < turn.length() && (Character.isLetterOrDigit(turn.charAt(nameEnd))
            || "_.-".indexOf(turn.charAt(nameEnd)) >= 0)) {
          nameEnd++;
        }
        int msg = turn.indexOf(message, nameEnd);
        if (msg < 0) {
          break; // no message follows: no call
        }
        int next = turn.indexOf(to, nameEnd);
        if (next >= 0 && next < msg) {
          i = next; // this recipient has no message of its own
          continue;
        }
        String name = turn.substring(nameStart, nameEnd);
        int bodyStart = msg + message.length();
        int end = firstOf(turn, bodyStart, "<|call|>", "<|end|>");
        String body = turn.substring(bodyStart, end).strip();
        if (name.isEmpty()) {
          out.errors.add("a call to functions. without a name");
        } else {
          try {
            JsonNode args = body.isEmpty() ? MAPPER.createObjectNode() : MAPPER.readTree(body);
            if (!args.isObject()) {
              out.errors.add("the arguments of " + name + " are not a JSON object: " + abbreviate(body));
            } else {
              out.calls.add(new ToolCall(name, args));
            }
          } catch (JsonProcessingException e) {
            out.errors.add("the arguments of " + name + " are not valid JSON: " + abbreviate(body));
          }
        }
        i = turn.indexOf(to, end);
      }
      return out;
    }

    private int firstOf(String text, int from, String a, String b) {
      int x = text.indexOf(a, from);
      int y = text.indexOf(b, from);
      if (x < 0) {
        return y < 0 ? text.length() : y;
      }
      return y < 0 ? x : Math.min(x, y);
    }
  };

  private static final ObjectMapper MAPPER = new ObjectMapper();

  private final String id;

  ToolCallFormat(String id) {
    this.id = id;
  }

  /** The name config uses: {@code hermes}, {@code llama3} or {@code harmony}. */
  public String id() {
    return id;
  }

  /** The format named {@code id}; throws IllegalArgumentException listing the names. */
  public static ToolCallFormat of(String id) {
    for (ToolCallFormat f : values()) {
      if (f.id.equals(id)) {
        return f;
      }
    }
    throw new IllegalArgumentException("unknown tool call format '" + id + "'; formats are hermes, llama3, harmony");
  }

  /** The calls in a model's turn and the ones that could not be read. */
  public abstract Parsed parse(String turn);

  /** Special tokens that end a turn making calls, where the model's stop tokens do not (harmony's {@code <|call|>}). */
  public List<String> turnStops() {
    return this == HARMONY ? List.of("<|call|>") : List.of();
  }

  /** What a turn holds: calls to run, and for each unreadable one what was wrong. */
  public static final class Parsed {
    public final List<ToolCall> calls = new ArrayList<>();
    public final List<String> errors = new ArrayList<>();

    /** Whether the turn holds no call at all (it is the model's answer). */
    public boolean isAnswer() {
      return calls.isEmpty() && errors.isEmpty();
    }

    void add(Object callOrError) {
      if (callOrError instanceof ToolCall c) {
        calls.add(c);
      } else {
        errors.add((String) callOrError);
      }
    }
  }

  /** A call read from {@code {"name": ..., argsKey: {...}}}, or what is wrong with it. */
  static Object json(String text, String argsKey) {
    JsonNode node;
    try {
      node = MAPPER.readTree(text);
    } catch (JsonProcessingException e) {
      return "a tool call is not valid JSON: " + abbreviate(text);
    }
    if (node == null || !node.isObject()) {
      return "a tool call must be a JSON object, got: " + abbreviate(text);
    }
    JsonNode name = node.get("name");
    if (name == null || !name.isTextual() || name.asText().isBlank()) {
      return "a tool call needs a \"name\": " + abbreviate(text);
    }
    // each object's own key: Llama 3 writes "parameters", others (and some Llama fine-tunes) "arguments"
    JsonNode args = node.has(argsKey) ? node.get(argsKey) : node.has("arguments") ? node.get("arguments")
        : node.get("parameters");
    if (args == null || args.isNull()) {
      args = MAPPER.createObjectNode();
    } else if (args.isTextual()) {
      // some models write the arguments as a JSON string
      try {
        args = MAPPER.readTree(args.asText());
      } catch (JsonProcessingException e) {
        return "the arguments of " + name.asText() + " are not valid JSON: " + abbreviate(args.asText());
      }
    }
    if (!args.isObject()) {
      return "the arguments of " + name.asText() + " must be a JSON object, got: " + abbreviate(args.toString());
    }
    return new ToolCall(name.asText(), args);
  }

  /** Top-level pieces of {@code a; b} outside strings and braces. */
  static List<String> splitTopLevel(String text) {
    List<String> parts = new ArrayList<>();
    int depth = 0;
    boolean string = false;
    int start = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (string) {
        if (c == '\\') {
          i++;
        } else if (c == '"') {
          string = false;
        }
      } else if (c == '"') {
        string = true;
      } else if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        depth--;
      } else if (c == ';' && depth == 0) {
        parts.add(text.substring(start, i));
        start = i + 1;
      }
    }
    parts.add(text.substring(start));
    parts.removeIf(p -> p.isBlank());
    return parts;
  }

  static String abbreviate(String text) {
    return text.length() <= 200 ? text : text.substring(0, 200) + "...";
  }
}
