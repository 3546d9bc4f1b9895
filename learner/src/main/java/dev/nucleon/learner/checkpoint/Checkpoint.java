package dev.nucleon.learner.checkpoint;

import java.nio.file.Path;
import java.time.Instant;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * A checkpoint that passed {@link CheckpointStore#verify(Path)}: every file its manifest lists was present with
 * the listed size and SHA-256 when it was verified.
 *
 * @param step the training step recorded in the manifest
 * @param dir the checkpoint directory
 * @param created when the checkpoint was written (manifest time)
 * @param files the listed files by relative path ('/' separators), sorted; {@code manifest.json} itself is not
 *     listed
 */
public record Checkpoint(long step, Path dir, Instant created, Map<String, FileEntry> files) {

  /**
   * One file of a checkpoint.
   *
   * @param sha256 lower-case hex SHA-256 of the content
   * @param bytes size in bytes
   */
  public record FileEntry(String sha256, long bytes) {
    public FileEntry {
      Objects.requireNonNull(sha256, "sha256");
      if (bytes < 0) {
        throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
      }
    }
  }

  public Checkpoint {
    Objects.requireNonNull(dir, "dir");
    Objects.requireNonNull(created, "created");
    files = Collections.unmodifiableMap(new TreeMap<>(files));
  }

  /** The absolute location of a listed file, e.g. {@code resolve("model/model.safetensors")}. */
  public Path resolve(String relative) {
    if (!files.containsKey(relative)) {
      throw new IllegalArgumentException(
          "checkpoint " + dir + " has no file " + relative + " (it has " + files.keySet() + ")");
    }
    return dir.resolve(relative);
  }

  /** Whether the manifest lists this relative path. */
  public boolean has(String relative) {
    return files.containsKey(relative);
  }

  /** SHA-256 (hex) by relative path. */
  public Map<String, String> sha256() {
    Map<String, String> out = new LinkedHashMap<>();
    files.forEach((k, v) -> out.put(k, v.sha256()));
    return Collections.unmodifiableMap(out);
  }

  /** Total size of the listed files in bytes. */
  public long totalBytes() {
    return files.values().stream().mapToLong(FileEntry::bytes).sum();
  }
}
