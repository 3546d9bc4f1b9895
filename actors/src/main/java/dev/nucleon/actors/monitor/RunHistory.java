package dev.nucleon.actors.monitor;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a run's per-step metrics ({@code RUN_DIR/metrics.jsonl}: one JSON object per learner step), incrementally:
 * {@link #read(Path, long, int)} returns the complete lines from a byte offset and the offset to continue from, so
 * the dashboard polls only what is new and never sees a line half written. Any keys are kept; nothing is assumed
 * about them except that a row is a JSON object.
 */
public final class RunHistory {

  /** The file name of the per-step metrics in a run directory. */
  public static final String FILE = "metrics.jsonl";

  private static final ObjectMapper JSON = new ObjectMapper();

  private RunHistory() {}

  /**
   * Rows read from {@code offset}.
   *
   * @param rows the rows (objects only; a malformed or non-object line is skipped and counted)
   * @param next the byte offset after the last complete line read
   * @param skipped lines that were not JSON objects
   */
  public record Chunk(List<ObjectNode> rows, long next, int skipped) {}

  /** Reads at most {@code maxRows} complete lines of {@code file} from byte {@code offset}; a missing file is empty. */
  public static Chunk read(Path file, long offset, int maxRows) {
    if (offset < 0) {
      offset = 0;
    }
    List<ObjectNode> rows = new ArrayList<>();
    int skipped = 0;
    long next = offset;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (offset > size) { // the file was replaced: start again
        offset = 0;
        next = 0;
      }
      ByteBuffer buf = ByteBuffer.allocate((int) Math.min(Math.max(size - offset, 0), 64L << 20));
      ch.read(buf, offset);
      byte[] bytes = buf.array();
      int len = buf.position();
      int start = 0;
      for (int i = 0; i < len && rows.size() + skipped < maxRows; i++) {
        if (bytes[i] == '\n') {
          String line = new String(bytes, start, i - start, StandardCharsets.UTF_8).trim();
          start = i + 1;
          next = offset + start;
          if (line.isEmpty()) {
            continue;
          }
          try {
            JsonNode node = JSON.readTree(line);
            if (node instanceof ObjectNode o) {
              rows.add(o);
            } else {
              skipped++;
            }
          } catch (IOException e) {
            skipped++;
          }
        }
      }
    } catch (NoSuchFileException e) {
      return new Chunk(List.of(), 0, 0);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
    }
    return new Chunk(rows, next, skipped);
  }

  /** All complete rows of {@code file}. */
  public static List<ObjectNode> readAll(Path file) {
    if (!Files.exists(file)) {
      throw new UncheckedIOException(new NoSuchFileException(file.toString(), null, "no per-step metrics file"));
    }
    return read(file, 0, Integer.MAX_VALUE).rows();
  }

  /**
   * The numeric fields of a row, flattened: top-level numbers as they are, numbers inside nested objects as
   * {@code parent.child} (e.g. per-actor maps {@code tokens_per_s.rollout-0}). Booleans, strings and arrays are
   * left out. A nested {@link NodeSnapshot} (an object with an {@code actors} array, as the run reporter writes under
   * {@code node}) gives per-actor figures only: {@code actor_tokens_per_s.<actor>} for rollout workers that
   * generated tokens and {@code actor_busy_ratio.<actor>} for actors with a busy tracker.
   */
  public static Map<String, Double> numbers(JsonNode row) {
    Map<String, Double> out = new LinkedHashMap<>();
    flatten("", row, out, 0);
    return out;
  }

  private static void flatten(String prefix, JsonNode node, Map<String, Double> out, int depth) {
    if (node.isNumber()) {
      out.put(prefix, node.asDouble());
    } else if (node.isObject() && node.path("actors").isArray() && depth > 0) {
      for (JsonNode a : node.path("actors")) {
        String actor = a.path("actor").asText(null);
        if (actor == null) {
          continue;
        }
        // generated tokens (the rollout workers'; the learner's row counts tokens it trained on)
        if (a.path("role").asText().equals(NucleonMetrics.ROLE_ROLLOUT) && a.path("tokens").asLong() > 0
            && a.path("tokensPerSecond").isNumber()) {
          out.put("actor_tokens_per_s." + actor, a.path("tokensPerSecond").asDouble());
        }
        if (a.path("busyRatio").isNumber() && a.path("busyRatio").asDouble() >= 0) {
          out.put("actor_busy_ratio." + actor, a.path("busyRatio").asDouble());
        }
      }
    } else if (node.isObject() && depth < 3) {
      Iterator<Map.Entry<String, JsonNode>> it = node.fields();
      while (it.hasNext()) {
        Map.Entry<String, JsonNode> e = it.next();
        flatten(prefix.isEmpty() ? e.getKey() : prefix + "." + e.getKey(), e.getValue(), out, depth + 1);
      }
    }
  }
}
