package dev.nucleon.reward;

import java.util.regex.Pattern;

/** The reasoning sections of a completion, which rewards judge apart from its answer. */
public final class Thinking {

  private static final Pattern SECTION = Pattern.compile("(?s)<think>.*?</think>");
  /** Everything up to a closing tag whose opening tag was in the prompt (R1-style templates open it there). */
  private static final Pattern OPENED_BEFORE = Pattern.compile("(?s)^.*?</think>");
  private static final Pattern UNCLOSED = Pattern.compile("(?s)<think>.*$");

  private Thinking() {}

  /**
   * The completion without its {@code <think>...</think>} sections, without what precedes a lone
   * {@code </think>}, and without an unclosed {@code <think>} and all after it (a completion cut off while
   * thinking has no answer).
   */
  public static String strip(String text) {
    String s = SECTION.matcher(text).replaceAll("");
    s = OPENED_BEFORE.matcher(s).replaceAll("");
    return UNCLOSED.matcher(s).replaceAll("");
  }
}
