package dev.nucleon.reward.code;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;

/**
 * A dataset row's tests for the {@code code} reward, in one of the forms code datasets ship them:
 *
 * <ul>
 *   <li>test code run after the solution in the same program (MBPP's and HumanEval's asserts, Java statements):
 *       a JSON array of strings, one test each, or plain text, one test;</li>
 *   <li>standard input and the expected standard output (APPS, TACO, CodeContests, LiveCodeBench): a JSON object
 *       {@code {"inputs": [...], "outputs": [...]}} or a JSON array of {@code {"input": ..., "output": ...}}.</li>
 * </ul>
 *
 * @param statements the tests of the first form (empty for the second)
 * @param io the cases of the second form (empty for the first)
 */
public record TestCases(List<String> statements, List<Io> io) {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** One standard-input case. */
  public record Io(String input, String output) {}

  public TestCases {
    statements = List.copyOf(statements);
    io = List.copyOf(io);
  }

  /** How many tests there are. */
  public int size() {
    return statements.size() + io.size();
  }

  /**
   * Reads the tests from the text of a dataset field.
   *
   * @throws IllegalArgumentException naming what is wrong (no tests, JSON of another shape, mismatched lengths)
   */
  public static TestCases parse(String text) {
    String t = text == null ? "" : text.strip();
    if (t.isEmpty()) {
      throw new IllegalArgumentException("no tests (the field is empty)");
    }
    if (!t.startsWith("[") && !t.startsWith("{")) {
      return new TestCases(List.of(t), List.of());
    }
    JsonNode node;
    try {
      node = JSON.readTree(t);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("tests start like JSON but are not JSON (" + e.getOriginalMessage() + ")");
    }
    TestCases cases;
    if (node.isObject()) {
      cases = ioObject(node);
    } else if (node.size() > 0 && node.get(0).isObject()) {
      List<Io> io = new ArrayList<>();
      for (int i = 0; i < node.size(); i++) {
        JsonNode c = node.get(i);
        if (!c.isObject() || !c.has("input") || !c.has("output")) {
          throw new IllegalArgumentException("test " + i + " is not an object with \"input\" and \"output\"");
        }
        io.add(new Io(text(c.get("input"), "test " + i + " input"), text(c.get("output"), "test " + i + " output")));
      }
      cases = new TestCases(List.of(), io);
    } else {
      List<String> statements = new ArrayList<>();
      for (int i = 0; i < node.size(); i++) {
        if (!node.get(i).isTextual()) {
          throw new IllegalArgumentException("test " + i + " is not a string of test code");
        }
        statements.add(node.get(i).asText());
      }
      cases = new TestCases(statements, List.of());
    }
    if (cases.size() == 0) {
      throw new IllegalArgumentException("no tests (an empty list)");
    }
    return cases;
  }

  private static TestCases ioObject(JsonNode node) {
    JsonNode in = node.get("inputs");
    JsonNode out = node.get("outputs");
    if (in == null || out == null || !in.isArray() || !out.isArray()) {
      List<String> keys = new ArrayList<>();
      node.fieldNames().forEachRemaining(keys::add);
      throw new IllegalArgumentException("a tests object needs arrays \"inputs\" and \"outputs\", got the keys "
          + keys);
    }
    if (in.size() != out.size()) {
      throw new IllegalArgumentException(in.size() + " inputs but " + out.size() + " outputs");
    }
    List<Io> io = new ArrayList<>();
    for (int i = 0; i < in.size(); i++) {
      io.add(new Io(text(in.get(i), "inputs[" + i + "]"), text(out.get(i), "outputs[" + i + "]")));
    }
    return new TestCases(List.of(), io);
  }

  /** A string as it is; a list of lines joined by newlines (some datasets split inputs into lines). */
  private static String text(JsonNode v, String what) {
    if (v.isTextual()) {
      return v.asText();
    }
    if (v.isArray()) {
      List<String> lines = new ArrayList<>();
      v.forEach(x -> lines.add(x.isValueNode() ? x.asText() : x.toString()));
      return String.join("\n", lines) + "\n";
    }
    if (v.isValueNode() && !v.isNull()) {
      return v.asText();
    }
    throw new IllegalArgumentException(what + " is neither text nor a list of lines");
  }
}
