package dev.nucleon.reward;

import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code <answer>...</answer>} sections of a completion (the R1 template's answer, after its reasoning).
 * Graders differ on which section counts when a completion writes several: Hendrycks-style string matchers and
 * TinyZero's Countdown read the last, the math graders of forge and ms-swift the first.
 */
public enum AnswerTags {
  /** The first closed section names the answer. */
  FIRST,
  /** The last closed section names the answer. */
  LAST,
  /** Tags are text like any other. */
  IGNORE;

  private static final Pattern SECTION = Pattern.compile("(?s)<answer>(.*?)</answer>");

  /** The chosen section's content; empty when there is no closed section (an unclosed tag is plain text). */
  public Optional<String> find(String text) {
    if (this == IGNORE || !text.contains("<answer>")) {
      return Optional.empty();
    }
    Matcher m = SECTION.matcher(text);
    String found = null;
    while (m.find()) {
      found = m.group(1);
      if (this == FIRST) {
        break;
      }
    }
    return Optional.ofNullable(found);
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
