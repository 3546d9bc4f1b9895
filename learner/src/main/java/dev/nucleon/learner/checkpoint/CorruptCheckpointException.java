package dev.nucleon.learner.checkpoint;

import java.nio.file.Path;

/**
 * A checkpoint directory that must not be loaded: its manifest is missing or unreadable, or a file it lists is
 * missing, truncated, of the wrong size or fails its SHA-256. The message names the directory, the file (when one
 * file is at fault) and the reason, for example {@code checkpoint /runs/a/step-000000120: file
 * model/model.safetensors: checksum mismatch (sha256 ab12..., manifest says 9f3c...)}.
 */
public final class CorruptCheckpointException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  private final transient Path dir;
  private final String file;
  private final String reason;

  /**
   * @param dir the checkpoint directory
   * @param file the file at fault, relative to {@code dir} with '/' separators, or null when the fault is the
   *     directory as a whole
   * @param reason what is wrong, in words
   * @param cause the underlying error, or null
   */
  public CorruptCheckpointException(Path dir, String file, String reason, Throwable cause) {
    super(
        "checkpoint " + dir + (file == null ? "" : ": file " + file) + ": " + reason,
        cause);
    this.dir = dir;
    this.file = file;
    this.reason = reason;
  }

  public CorruptCheckpointException(Path dir, String file, String reason) {
    this(dir, file, reason, null);
  }

  /** The checkpoint directory. */
  public Path dir() {
    return dir;
  }

  /** The file at fault relative to {@link #dir()}, or null when the directory as a whole is at fault. */
  public String file() {
    return file;
  }

  /** What is wrong, without the directory and file. */
  public String reason() {
    return reason;
  }
}
