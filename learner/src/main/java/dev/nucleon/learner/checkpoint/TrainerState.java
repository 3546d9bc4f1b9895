package dev.nucleon.learner.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.Iterator;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The small, engine-free part of a checkpoint, stored as one JSON file (typically {@code trainer-state.json}
 * inside the checkpoint directory):
 *
 * <pre>
 * {"format":1,"step":120,"samplesSeen":7680,
 *  "rng":{"sampling":"12,-3,77","init":"42"},
 *  "blob":"base64..."}
 * </pre>
 *
 * The LR-schedule position is the step (schedules are functions of the optimizer step); anything else the
 * caller needs goes into {@code rng} (named strings) or {@code blob}.
 *
 * @param step optimizer steps taken
 * @param samplesSeen trajectories (or samples) consumed so far
 * @param rng named RNG seeds or states as strings, e.g. {@link #encodeLongs(long[])} of a generator's state
 * @param blob opaque bytes handed in by the caller (e.g. the coordinator's dataset cursor and accounting), stored
 *     base64-encoded; empty when there are none
 */
public record TrainerState(long step, long samplesSeen, Map<String, String> rng, byte[] blob) {

  /** The JSON format written and read. */
  public static final int FORMAT = 1;

  private static final ObjectMapper JSON = new ObjectMapper();

  public TrainerState {
    if (step < 0) {
      throw new IllegalArgumentException("step must be >= 0, got " + step);
    }
    if (samplesSeen < 0) {
      throw new IllegalArgumentException("samplesSeen must be >= 0, got " + samplesSeen);
    }
    TreeMap<String, String> copy = new TreeMap<>();
    if (rng != null) {
      rng.forEach(
          (k, v) -> copy.put(Objects.requireNonNull(k, "rng key"), Objects.requireNonNull(v, "rng value of " + k)));
    }
    rng = Collections.unmodifiableMap(copy);
    blob = blob == null ? new byte[0] : blob.clone();
  }

  /** A copy of the opaque bytes. */
  @Override
  public byte[] blob() {
    return blob.clone();
  }

  /**
   * Writes the state as JSON, atomically: a temp file next to {@code file}, fsync, {@code ATOMIC_MOVE} over
   * {@code file}, fsync of the folder.
   */
  public void write(Path file) throws IOException {
    Path abs = file.toAbsolutePath();
    Path parent = abs.getParent();
    ObjectNode node = JSON.createObjectNode();
    node.put("format", FORMAT);
    node.put("step", step);
    node.put("samplesSeen", samplesSeen);
    ObjectNode rngNode = node.putObject("rng");
    rng.forEach(rngNode::put);
    node.put("blob", Base64.getEncoder().encodeToString(blob));
    byte[] bytes = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(node);
    String suffix = Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE);
    Path tmp = parent.resolve("." + abs.getFileName() + ".tmp-" + suffix);
    try {
      CheckpointStore.writeAndSync(tmp, bytes);
      Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
    CheckpointStore.fsyncDir(parent);
  }

  /**
   * Reads a state written by {@link #write(Path)}.
   *
   * @throws IOException when the file cannot be read, or is not a trainer state of format 1 (the message names
   *     the file and the field)
   */
  public static TrainerState read(Path file) throws IOException {
    JsonNode node;
    try {
      node = JSON.readTree(Files.readAllBytes(file));
    } catch (JsonProcessingException e) {
      throw new IOException(
          "trainer state " + file + ": unreadable: not valid JSON (" + e.getOriginalMessage() + ")", e);
    }
    if (node == null || !node.isObject()) {
      throw new IOException("trainer state " + file + ": not a JSON object");
    }
    long format = integer(file, node, "format");
    if (format != FORMAT) {
      throw new IOException("trainer state " + file + ": format " + format + "; this version reads " + FORMAT);
    }
    long step = integer(file, node, "step");
    long samples = integer(file, node, "samplesSeen");
    Map<String, String> rng = new TreeMap<>();
    JsonNode rngNode = node.get("rng");
    if (rngNode == null || !rngNode.isObject()) {
      throw new IOException("trainer state " + file + ": \"rng\" missing or not an object");
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = rngNode.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().isTextual()) {
        throw new IOException("trainer state " + file + ": rng \"" + e.getKey() + "\" is not a string");
      }
      rng.put(e.getKey(), e.getValue().asText());
    }
    JsonNode blobNode = node.get("blob");
    if (blobNode == null || !blobNode.isTextual()) {
      throw new IOException("trainer state " + file + ": \"blob\" missing or not a base64 string");
    }
    byte[] blob;
    try {
      blob = Base64.getDecoder().decode(blobNode.asText());
    } catch (IllegalArgumentException e) {
      throw new IOException("trainer state " + file + ": \"blob\" is not valid base64: " + e.getMessage(), e);
    }
    try {
      return new TrainerState(step, samples, rng, blob);
    } catch (IllegalArgumentException e) {
      throw new IOException("trainer state " + file + ": " + e.getMessage(), e);
    }
  }

  private static long integer(Path file, JsonNode node, String field) throws IOException {
    JsonNode v = node.get(field);
    if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) {
      throw new IOException("trainer state " + file + ": \"" + field + "\" missing or not an integer");
    }
    return v.asLong();
  }

  /** Encodes a long array (e.g. an RNG's internal state) as comma-separated decimals, for {@link #rng()}. */
  public static String encodeLongs(long[] values) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < values.length; i++) {
      if (i > 0) {
        sb.append(',');
      }
      sb.append(values[i]);
    }
    return sb.toString();
  }

  /** Inverse of {@link #encodeLongs(long[])}. */
  public static long[] decodeLongs(String text) {
    if (text.isEmpty()) {
      return new long[0];
    }
    String[] parts = text.split(",", -1);
    long[] out = new long[parts.length];
    for (int i = 0; i < parts.length; i++) {
      try {
        out[i] = Long.parseLong(parts[i].trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("not a comma-separated list of longs: \"" + text + "\"", e);
      }
    }
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TrainerState t
        && step == t.step
        && samplesSeen == t.samplesSeen
        && rng.equals(t.rng)
        && Arrays.equals(blob, t.blob);
  }

  @Override
  public int hashCode() {
    return Objects.hash(step, samplesSeen, rng, Arrays.hashCode(blob));
  }

  @Override
  public String toString() {
    return "TrainerState[step=" + step + ", samplesSeen=" + samplesSeen + ", rng=" + rng + ", blob=" + blob.length
        + " bytes]";
  }
}
