package dev.nucleon.reward;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Reads the third-party test data copied under src/test/resources/data. */
public final class TestData {

  private static final ObjectMapper JSON = new ObjectMapper();

  private TestData() {}

  /** The JSON lines of {@code data/<path>}. */
  public static List<JsonNode> jsonl(String path) {
    List<JsonNode> out = new ArrayList<>();
    try (InputStream in = TestData.class.getResourceAsStream("/data/" + path)) {
      if (in == null) {
        throw new IllegalStateException("missing test resource data/" + path);
      }
      BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
      String line;
      while ((line = reader.readLine()) != null) {
        if (!line.isBlank()) {
          out.add(JSON.readTree(line));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out;
  }

  /** The text of {@code data/<path>}. */
  public static String text(String path) {
    try (InputStream in = TestData.class.getResourceAsStream("/data/" + path)) {
      if (in == null) {
        throw new IllegalStateException("missing test resource data/" + path);
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A string field, or "" when absent or null. */
  public static String str(JsonNode node, String field) {
    JsonNode v = node.get(field);
    return v == null || v.isNull() ? "" : v.asText();
  }
}
