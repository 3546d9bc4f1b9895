package dev.nucleon.model.generate;

import java.util.Arrays;

/**
 * How one request is sampled.
 *
 * @param temperature logits are divided by it; 0 means greedy (argmax)
 * @param topK keep only the K most likely tokens; 0 turns it off
 * @param topP keep the smallest set of most likely tokens whose probability reaches P; 1 turns it off
 * @param maxNewTokens the completion stops after this many tokens (finish reason LENGTH)
 * @param stopTokens ids that end the completion (finish reason STOP); the stop token is part of the completion
 */
public record SamplingParams(float temperature, int topK, float topP, int maxNewTokens, int[] stopTokens) {

  public SamplingParams {
    if (!(temperature >= 0) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
    }
    if (topK < 0) {
      throw new IllegalArgumentException("top-k must be >= 0 (0 = off), got " + topK);
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
    }
    if (maxNewTokens < 1) {
      throw new IllegalArgumentException("max new tokens must be >= 1, got " + maxNewTokens);
    }
    stopTokens = stopTokens == null ? new int[0] : stopTokens.clone();
  }

  /** Plain sampling at temperature 1 (no truncation). */
  public static SamplingParams sample(float temperature, int maxNewTokens, int... stopTokens) {
    return new SamplingParams(temperature, 0, 1f, maxNewTokens, stopTokens);
  }

  /** Greedy decoding. */
  public static SamplingParams greedy(int maxNewTokens, int... stopTokens) {
    return new SamplingParams(0f, 0, 1f, maxNewTokens, stopTokens);
  }

  public boolean isGreedy() {
    return temperature == 0f;
  }

  /** Whether the sampling distribution is the plain softmax at this temperature (no top-k / top-p truncation). */
  public boolean isUntruncated() {
    return topK == 0 && topP == 1f;
  }

  boolean isStop(int token) {
    for (int s : stopTokens) {
      if (s == token) {
        return true;
      }
    }
    return false;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof SamplingParams p && p.temperature == temperature && p.topK == topK && p.topP == topP
        && p.maxNewTokens == maxNewTokens && Arrays.equals(p.stopTokens, stopTokens);
  }

  @Override
  public int hashCode() {
    return Float.hashCode(temperature) * 31 + maxNewTokens;
  }

  @Override
  public String toString() {
    return "SamplingParams{T=" + temperature + ", topK=" + topK + ", topP=" + topP + ", maxNew=" + maxNewTokens
        + ", stop=" + Arrays.toString(stopTokens) + "}";
  }
}
