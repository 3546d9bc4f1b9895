package dev.nucleon.rollout;

import dev.nucleon.model.tokenizer.TextTokenizer;

/**
 * Why a prompt cannot be sampled: empty, undecodable (the text holds U+FFFD or a lone surrogate, i.e. it was not
 * valid UTF-8, or the tokenizer refuses it), or too long for the model's context together with
 * {@code max-new-tokens}. The coordinator checks prompts as it reads them (when its node can read the model's
 * tokenizer and config) and every rollout worker checks what it is given, so a bad prompt is dropped with its reason
 * instead of failing a whole batch again and again.
 */
public final class PromptCheck {

  public static final String EMPTY = "empty-prompt";
  public static final String UNDECODABLE = "undecodable";
  public static final String TOO_LONG = "too-long";

  private final TextTokenizer tokenizer;
  private final boolean addBos;
  private final int maxPositions;
  private final int maxNewTokens;

  /**
   * @param tokenizer the model's tokenizer, or null to check only emptiness and decoding
   * @param maxPositions the model's context (max_position_embeddings)
   */
  public PromptCheck(TextTokenizer tokenizer, int maxPositions, int maxNewTokens) {
    this.tokenizer = tokenizer;
    this.addBos = tokenizer != null && tokenizer.bosId() >= 0;
    this.maxPositions = maxPositions;
    this.maxNewTokens = maxNewTokens;
  }

  /** The reason {@code prompt} cannot be sampled ({@link #EMPTY}, ...), or null when it can. */
  public String problem(String prompt) {
    if (prompt == null || prompt.isBlank()) {
      return EMPTY;
    }
    if (!wellFormed(prompt)) {
      return UNDECODABLE;
    }
    if (tokenizer == null) {
      return null;
    }
    int tokens;
    try {
      tokens = tokenizer.encode(prompt, addBos).length;
    } catch (RuntimeException e) {
      return UNDECODABLE;
    }
    if (tokens == 0) {
      return EMPTY;
    }
    return tokens + maxNewTokens > maxPositions ? TOO_LONG : null;
  }

  /** A longer description of the problem, for a log line. */
  public String describe(String prompt) {
    String p = problem(prompt);
    if (p == null) {
      return "fine";
    }
    return switch (p) {
      case TOO_LONG -> "too long: " + tokenizer.encode(prompt, addBos).length + " prompt tokens + max-new-tokens "
          + maxNewTokens + " > the model's context of " + maxPositions;
      case UNDECODABLE -> "undecodable (not valid UTF-8 text, or refused by the tokenizer)";
      default -> "empty";
    };
  }

  private static boolean wellFormed(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\uFFFD') {
        return false;
      }
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
          return false;
        }
        i++;
      } else if (Character.isLowSurrogate(c)) {
        return false;
      }
    }
    return true;
  }
}
