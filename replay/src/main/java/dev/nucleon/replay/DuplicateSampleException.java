package dev.nucleon.replay;

/**
 * A sample index arrived twice for the same pending group of a prompt. Thrown before the buffer changes anything,
 * so the buffer stays usable; the trajectory is never counted twice.
 */
public final class DuplicateSampleException extends IllegalArgumentException {
  private final long promptId;
  private final int sampleIndex;

  public DuplicateSampleException(long promptId, int sampleIndex) {
    super("prompt " + promptId + ": sample index " + sampleIndex + " arrived twice for the same group");
    this.promptId = promptId;
    this.sampleIndex = sampleIndex;
  }

  public long promptId() {
    return promptId;
  }

  public int sampleIndex() {
    return sampleIndex;
  }
}
