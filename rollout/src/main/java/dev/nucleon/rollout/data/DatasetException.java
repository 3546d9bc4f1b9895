package dev.nucleon.rollout.data;

/** A dataset that cannot be read as configured; the message names the file and, for a bad row, its line. */
public final class DatasetException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public DatasetException(String message) {
    super(message);
  }

  public DatasetException(String message, Throwable cause) {
    super(message, cause);
  }
}
