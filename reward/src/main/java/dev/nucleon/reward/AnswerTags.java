package dev.nucleon.reward;

import java.util.Locale;
import java.util.Optional;

/**
 * The {@code <answer>...</answer>} sections of a completion (the R1 template's answer, after its reasoning).
 * Graders differ on which section counts when a completion writes several: Hendrycks-style string matchers and
 * TinyZero's Countdown read the last, the math graders of forge and ms-swift the first.
 */
public enum AnswerTags {
  /** The first closed section names the answer. */
  FIRST,
  /** The last closed section names the answer (the one the last opening tag before the last closing tag starts). */
  LAST,
  /** Tags are text like any other. */
  IGNORE;

  private static final String OPEN = "<answer>";
  private static final String CLOSE = "</answer>";

  /**
   * The chosen section's content; empty when there is no closed section (an unclosed tag is plain text). A section
   * runs from a closing tag back to the nearest opening tag before it, found by a linear scan (a lazy regular
   * expression would rescan to the end from every unclosed tag).
   */
  public Optional<String> find(String text) {
    if (this == IGNORE) {
      return Optional.empty();
    }
    int open;
    int close;
    if (this == LAST) {
      close = text.lastIndexOf(CLOSE);
      open = close < 0 ? -1 : text.lastIndexOf(OPEN, close - OPEN.length());
      // the section that opening tag starts ends at the first close after it: "<answer>42</answer></answer>" is 42
      close = open < 0 ? -1 : text.indexOf(CLOSE, open + OPEN.length());
    } else {
      open = text.indexOf(OPEN);
      close = open < 0 ? -1 : text.indexOf(CLOSE, open + OPEN.length());
      // the nearest opening tag before that close: "<answer>41 <answer>42</answer>" is 42
      for (int next = close < 0 ? -1 : text.indexOf(OPEN, open + OPEN.length());
          next >= 0 && next + OPEN.length() <= close; next = text.indexOf(OPEN, next + OPEN.length())) {
        open = next;
      }
    }
    return open < 0 || close < 0 ? Optional.empty() : Optional.of(text.substring(open + OPEN.length(), close));
  }

  /** The chosen section's content, or the whole text when it has none. */
  public String answerPart(String text) {
    return find(text).orElse(text);
  }

  /** {@code first}, {@code last} or {@code ignore}, as configs name them. */
  public static AnswerTags of(String name) {
    return valueOf(name.trim().toUpperCase(Locale.ROOT));
  }
}
