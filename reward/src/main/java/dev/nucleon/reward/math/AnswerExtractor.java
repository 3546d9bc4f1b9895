package dev.nucleon.reward.math;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds the final answer in a completion.
 *
 * <ol>
 *   <li>The last {@code \boxed{...}} or {@code \fbox{...}} (balanced braces; {@code \boxed 5} too). Boxes right
 *       before it, separated only by a short connector (at most 40 characters, no sentence end, no blank line:
 *       {@code ,}, {@code and}, {@code \quad}, a word), are part of the answer ({@code \boxed{1}, \boxed{2}} is the
 *       list {@code 1, 2}).
 *   <li>Otherwise the configured fallbacks: {@code last-latex} (the last {@code $...$}, {@code $$...$$},
 *       {@code \(...\)} or {@code \[...\]}, preferring the math right after a last "final answer is"; inline math
 *       must not span lines; math spans joined by "and" or "," are one list), {@code last-number} (the last number
 *       in the text, with thousands separators or a decimal comma, or a fraction {@code a/b}); when both are
 *       configured the one that ends later in the text wins.
 *       {@code whole} takes the whole text.
 * </ol>
 */
public final class AnswerExtractor {

  /** Where an answer may come from when there is no box. */
  public enum Fallback {
    LAST_LATEX,
    LAST_NUMBER,
    WHOLE
  }

  /** An extracted answer and whether it came from plain text (a number needing separator rules). */
  public record Answer(String text, boolean plainNumber) {}

  private static final Pattern BOX = Pattern.compile("\\\\(?:boxed|fbox)|(?<=[a-zA-Z])boxed(?=\\s*\\{)");
  private static final Pattern NUMBER = Pattern.compile(
      "(?<![\\w.])(-?(?:\\d{1,3}(?:,\\d{3})+(?:\\.\\d+)?|\\d{1,3}(?: \\d{3})+(?![\\d.,])"
          + "|\\d+(?:[.,]\\d+)?(?:[eE][+-]?\\d+(?![a-zA-Z]))?(?:/\\d+)?"
          + "|\\.\\d+))(?![\\d.,]?\\d)(?!/\\d)");
  /** Words that correct an earlier answer rather than add to it ("\\boxed{4}, but actually \\boxed{5}"). */
  private static final Pattern CORRECTION =
      Pattern.compile("(?i)(?<![a-z])(?:but|actually|instead|wait|rather|correct(?:ion|ed|ing))(?![a-z])");
  /** GSM8K's final line, {@code #### 72}: short, and the last line. */
  private static final Pattern GSM8K_ANSWER = Pattern.compile("####[ \\t]*+([^\\n#]{1,40})\\s*+\\z");
  private static final Pattern MATH_CONNECTOR = Pattern.compile("(?i)(?:,|and|or|,[ \\t]{0,3}and)?");

  private AnswerExtractor() {}

  /** The answer of a completion: the box when there is one, else the fallbacks; empty when none applies. */
  public static Optional<Answer> extract(String text, List<Fallback> fallbacks) {
    Optional<String> boxed = boxed(text);
    if (boxed.isPresent()) {
      // "The final answer is $X$" after the last box states the answer the boxes led to
      Span fin = fallbacks.contains(Fallback.LAST_LATEX) ? finalAnswerLatex(text) : null;
      if (fin != null && fin.start > lastBoxEnd(text)) {
        return Optional.of(new Answer(fin.text, false));
      }
      return Optional.of(new Answer(boxed.get(), false));
    }
    if (fallbacks.contains(Fallback.WHOLE)) {
      return text.isBlank() ? Optional.empty() : Optional.of(new Answer(text, false));
    }
    if (fallbacks.isEmpty()) {
      return Optional.empty();
    }
    // a bare answer (no prose: "-\frac{10}{9}", "(3, \frac{\pi}{2})", "x + 1") is the answer as it is
    if (fallbacks.contains(Fallback.LAST_LATEX) && looksLikeMath(text) && !text.contains("$")) {
      return Optional.of(new Answer(text.strip(), NUMBER.matcher(text.strip()).matches()));
    }
    Span latex = null;
    if (fallbacks.contains(Fallback.LAST_LATEX)) {
      latex = finalAnswerLatex(text);
      if (latex == null) {
        latex = latest(lastLatex(text), bareLatex(text));
        // an answer marker ("Answer: 42", "Réponse : 220 $ ...") names the answer, whatever numbers follow it
        Span marked = answerLine(text);
        if (marked != null && (latex == null || latex.end <= marked.start)) {
          return Optional.of(new Answer(marked.text, NUMBER.matcher(marked.text).matches()));
        }
      }
    }
    Span number = fallbacks.contains(Fallback.LAST_NUMBER) ? lastNumber(text) : null;
    if (latex != null && (number == null || latex.end >= number.end)) {
      return Optional.of(new Answer(latex.text, false));
    }
    if (number != null) {
      return Optional.of(new Answer(number.text, true));
    }
    return Optional.empty();
  }

  private static Span latest(Span a, Span b) {
    return a == null ? b : b == null ? a : b.end > a.end ? b : a;
  }

  /**
   * The reference answer: its box, else what follows GSM8K's {@code ####} on its last line, else its last math span,
   * else the whole text; a reference written as prose with an answer marker ("the answer is 10000") gives what the
   * marker names.
   */
  public static String reference(String gold) {
    Optional<String> boxed = boxed(gold);
    if (boxed.isPresent()) {
      return boxed.get();
    }
    Matcher gsm8k = GSM8K_ANSWER.matcher(gold); // "... #### 72" on its last line, not a markdown heading
    if (gsm8k.find()) {
      return gsm8k.group(1).strip();
    }
    Span latex = lastLatex(gold);
    if (latex != null) {
      return latex.text;
    }
    if (!looksLikeMath(gold)) { // "the answer is 10000", not "all real numbers greater than 2"
      Span line = answerLine(gold);
      if (line != null) {
        return line.text;
      }
    }
    return gold;
  }

  /** A word of three or more letters that is not a function name or a connective. */
  private static final Pattern PROSE_WORD = Pattern.compile(
      "(?<!\\p{L})(?!(?:sqrt|sin|cos|tan|cot|sec|csc|log|exp|and|infty)(?!\\p{L}))\\p{L}{3,}"
          + "|[\\p{IsHan}\\p{IsHiragana}\\p{IsKatakana}\\p{IsHangul}]");
  private static final Pattern LATEX_WORDS = Pattern.compile(
      "\\\\(?:begin|end|text|mathrm|textbf|mbox|operatorname)\\s*\\{[^{}]*\\}|\\\\[a-zA-Z]+");

  /**
   * Whether a text is an answer rather than prose: short, and without a word of three or more letters outside
   * LaTeX commands and their names ({@code \\begin{pmatrix}}, {@code \\text{cm}}).
   */
  static boolean looksLikeMath(String text) {
    String t = text.strip();
    if (t.isEmpty() || t.length() > 200 || t.contains("\n\n")) {
      return false;
    }
    return !PROSE_WORD.matcher(LATEX_WORDS.matcher(t).replaceAll(" ")).find();
  }

  /** "Answer:", "The final answer is", and the marker in other languages lighteval's tests use. */
  /** An answer marker; where it stands (a line start or after a sentence) is checked in Java, not by the regex. */
  private static final Pattern ANSWER_MARKER = Pattern.compile("(?i)(?:the[ \\t]{1,3})?(?:final[ \\t]{1,3})?"
      + "answer(?:[ \\t]{1,3}is)?|réponse|respuesta|resposta|risposta|antwort|ответ|答案|回答");

  /**
   * The answer on the last line that starts with an answer marker: the rest of the line when it is math, else the
   * number after its last '=' or its first number ("Réponse: Janeth aura encore 220 $ à payer" gives 220).
   */
  static Span answerLine(String text) {
    Matcher m = ANSWER_MARKER.matcher(text);
    Span last = null;
    while (m.find()) {
      // the marker opens a line or follows a sentence's end (white space between)
      int before = m.start() - 1;
      while (before >= 0 && (text.charAt(before) == ' ' || text.charAt(before) == '\t')) {
        before--;
      }
      if (before >= 0 && "\n.!?。".indexOf(text.charAt(before)) < 0) {
        continue;
      }
      if (m.end() < text.length() && Character.isLetter(text.charAt(m.end()))) {
        continue; // "answered", "answers"
      }
      // the rest of its line, without the separator and a final period
      int from = m.end();
      int lineEnd = text.indexOf('\n', from);
      lineEnd = lineEnd < 0 ? text.length() : lineEnd;
      while (from < lineEnd && " \t:：=".indexOf(text.charAt(from)) >= 0) {
        from++;
      }
      int to = lineEnd;
      while (to > from && Character.isWhitespace(text.charAt(to - 1))) {
        to--;
      }
      if (to > from && (text.charAt(to - 1) == '.' || text.charAt(to - 1) == '。')) {
        to--;
      }
      String a = text.substring(from, to).strip();
      if (a.isEmpty() || a.contains("$") && looksLikeMath(a)) {
        continue;
      }
      if (looksLikeMath(a)) {
        last = new Span(from, to, a);
      } else {
        // prose after the marker: the number after its last '=' ("est (35 + 70 = 105)"), else its first number
        int eq = a.lastIndexOf('=') + 1;
        Matcher n = NUMBER.matcher(a);
        if (n.find(eq)) {
          last = withMagnitude(a, new Span(n.start(1), n.end(1), n.group(1)), from);
        }
      }
    }
    return last;
  }

  private static final Pattern BARE_FRAC = Pattern.compile("-?\\d*\\\\[dt]?frac\\s*\\{");

  /** The last {@code \frac{..}{..}} written outside math delimiters ("(\frac{2}{5}) 吨"), or null. */
  static Span bareLatex(String text) {
    Matcher m = BARE_FRAC.matcher(text);
    Span last = null;
    while (m.find()) {
      int open = m.end() - 1;
      int close = MathNormalizer.matchingBrace(text, open);
      if (close < 0 || close + 1 >= text.length() || text.charAt(close + 1) != '{') {
        continue;
      }
      int end = MathNormalizer.matchingBrace(text, close + 1);
      if (end > 0 && !insideDollars(text, m.start())) {
        last = new Span(m.start(), end + 1, text.substring(m.start(), end + 1));
      }
    }
    return last;
  }

  private static boolean insideDollars(String text, int at) {
    int count = 0;
    for (int i = 0; i < at; i++) {
      if (text.charAt(i) == '\\') {
        i++;
      } else if (text.charAt(i) == '$') {
        count++;
      }
    }
    return count % 2 == 1;
  }

  record Span(int start, int end, String text) {}

  private static int lastBoxEnd(String text) {
    Matcher m = BOX.matcher(text);
    int end = -1;
    while (m.find()) {
      end = m.end();
    }
    return end;
  }

  /** The last box's content, joined with boxes just before it; empty when there is none. */
  public static Optional<String> boxed(String text) {
    List<Span> boxes = new ArrayList<>();
    Matcher m = BOX.matcher(text);
    while (m.find()) {
      int i = m.end();
      while (i < text.length() && text.charAt(i) == ' ' && i + 1 < text.length() && text.charAt(i + 1) == '{') {
        i++;
      }
      if (i < text.length() && text.charAt(i) == '{') {
        int close = MathNormalizer.matchingBrace(text, i);
        if (close < 0) { // unbalanced: take the rest, as a lenient grader would
          boxes.add(new Span(m.start(), text.length(), text.substring(i + 1)));
          break;
        }
        boxes.add(new Span(m.start(), close + 1, text.substring(i + 1, close)));
      } else if (i < text.length() && text.charAt(i) == ' ') { // "\boxed 5" up to the end of the math
        int end = i + 1;
        while (end < text.length() && text.charAt(end) != '$' && text.charAt(end) != '\n') {
          end++;
        }
        boxes.add(new Span(m.start(), end, text.substring(i + 1, end).trim()));
      }
    }
    if (boxes.isEmpty()) {
      return Optional.empty();
    }
    int k = boxes.size() - 1;
    List<String> parts = new ArrayList<>();
    parts.add(0, boxes.get(k).text);
    while (k > 0) {
      String gap = text.substring(boxes.get(k - 1).end, boxes.get(k).start);
      String words = MathNormalizer.unwrapText(gap.replaceAll("\\$|\\\\[()\\[\\]]|\\\\q?quad|\\\\[,;]", " ")).strip();
      // a few words at most ("and", "papers and", "for part (a) and"): more ("no no no no no") separate answers
      if (gap.length() > 40 || gap.contains("\n\n") || gap.matches("(?s).*[.!?]\\s.*")
          || words.split("\\s+").length > 4 || CORRECTION.matcher(words).find()) {
        break;
      }
      k--;
      parts.add(0, boxes.get(k).text);
    }
    return Optional.of(String.join(", ", parts));
  }

  /** The last math span (joined with spans right before it when only "and" or "," separates them). */
  static Span lastLatex(String text) {
    List<Span> spans = new ArrayList<>();
    int i = 0;
    int n = text.length();
    while (i < n) {
      char c = text.charAt(i);
      if (c == '\\' && i + 1 < n && (text.charAt(i + 1) == '(' || text.charAt(i + 1) == '[')) {
        String close = text.charAt(i + 1) == '(' ? "\\)" : "\\]";
        int end = text.indexOf(close, i + 2);
        if (end < 0) {
          break;
        }
        String inner = text.substring(i + 2, end);
        if (close.equals("\\]") || !inner.contains("\n")) {
          spans.add(new Span(i, end + 2, inner));
        }
        i = end + 2;
      } else if (c == '\\') {
        i += 2;
      } else if (c == '$') {
        boolean display = i + 1 < n && text.charAt(i + 1) == '$';
        int from = i + (display ? 2 : 1);
        int end = display ? text.indexOf("$$", from) : unescapedDollar(text, from);
        if (end < 0) {
          break;
        }
        String inner = text.substring(from, end);
        if ((display || !inner.contains("\n")) && !inner.isBlank()) {
          spans.add(new Span(i, end + (display ? 2 : 1), inner));
        }
        i = end + (display ? 2 : 1);
      } else {
        i++;
      }
    }
    if (spans.isEmpty()) {
      return null;
    }
    int k = spans.size() - 1;
    List<String> parts = new ArrayList<>();
    parts.add(spans.get(k).text);
    while (k > 0 && !text.substring(spans.get(k - 1).end, spans.get(k).start).isEmpty()
        && MATH_CONNECTOR.matcher(text.substring(spans.get(k - 1).end, spans.get(k).start).strip()).matches()) {
      k--;
      parts.add(0, spans.get(k).text);
    }
    return new Span(spans.get(k).start, spans.get(spans.size() - 1).end, String.join(", ", parts));
  }

  private static final Pattern FINAL_ANSWER = Pattern.compile(
      "(?i)final answer(?: is)?\\s*:?\\s*(?:the final answer is\\s*)?(?=\\$|\\\\\\()");

  /** The math right after the last "final answer is" (Minerva / Math-Verify style), or null. */
  static Span finalAnswerLatex(String text) {
    Matcher m = FINAL_ANSWER.matcher(text);
    int at = -1;
    while (m.find()) {
      at = m.end();
    }
    if (at < 0) {
      return null;
    }
    Span first = lastLatex(text.substring(at, Math.min(text.length(), at + 1 + firstSpanEnd(text, at))));
    return first == null ? null : new Span(at + first.start, at + first.end, first.text);
  }

  private static int firstSpanEnd(String text, int at) {
    boolean display = text.startsWith("$$", at);
    int end = text.startsWith("\\(", at) ? text.indexOf("\\)", at + 2) + 1
        : display ? text.indexOf("$$", at + 2) + 1 : text.startsWith("$", at) ? unescapedDollar(text, at + 1) : -1;
    return end < 0 ? 0 : end - at + 1;
  }

  private static int unescapedDollar(String text, int from) {
    for (int i = from; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '\\') {
        i++;
      } else if (c == '$') {
        return i;
      }
    }
    return -1;
  }

  private static final Pattern PERCENT_AFTER = Pattern.compile("(?i)\\s*(?:\\\\?%|percentage|percent|pct)(?![a-z])");

  /** The last number in plain text, with a percent sign or word right after it kept ("33.5 percent"). */
  static Span lastNumber(String text) {
    Matcher m = NUMBER.matcher(text);
    Span last = null;
    while (m.find()) {
      last = new Span(m.start(1), m.end(1), m.group(1));
    }
    if (last != null) {
      Matcher p = PERCENT_AFTER.matcher(text).region(last.end, text.length());
      if (p.lookingAt()) {
        last = new Span(last.start, p.end(), text.substring(last.start, p.end()));
      }
      last = withMagnitude(text, last, 0);
    }
    return last;
  }

  private static final Pattern MAGNITUDE = Pattern.compile(
      "(?i)[ \\t]?(?:hundred|thousand|million|billion|trillion|dozen)s?(?![a-z])");

  /** A number with a magnitude word after it ("5 million") kept whole, so it is not read as 5; shifted by base. */
  private static Span withMagnitude(String text, Span number, int base) {
    Matcher m = MAGNITUDE.matcher(text).region(number.end, text.length());
    if (m.lookingAt()) {
      return new Span(base + number.start, base + m.end(), text.substring(number.start, m.end()));
    }
    return new Span(base + number.start, base + number.end, number.text);
  }

  /** A plain-text number in canonical form: thousands separators dropped, a decimal comma made a point. */
  public static String plainNumber(String raw) {
    String s = raw.strip();
    if (s.matches("-?[1-9]\\d{0,2}(?:,\\d{3})+(?:\\.\\d+)?") || s.matches("-?[1-9]\\d{0,2}(?: \\d{3})+")) {
      return s.replace(",", "").replace(" ", "");
    }
    if (s.matches("-?\\d+,\\d+")) {
      return s.replace(',', '.');
    }
    return s;
  }
}
