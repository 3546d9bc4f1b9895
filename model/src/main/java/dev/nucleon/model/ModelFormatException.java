package dev.nucleon.model;

/**
 * A checkpoint, config or tokenizer file that Nucleon cannot use. The message names the file and the tensor or key
 * that was wrong, so a user can fix the input instead of reading a stack trace.
 */
public class ModelFormatException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ModelFormatException(String message) {
    super(message);
  }

  public ModelFormatException(String message, Throwable cause) {
    super(message, cause);
  }
}
