package dev.nucleon.reward.math;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * LaTeX answer normalization.
 *
 * <p>{@link #hendrycks(String)} is the {@code strip_string} of Hendrycks' MATH {@code is_equiv} (also used by
 * open-instruct), step for step. {@link #canonical(String)} goes further for the semantic comparison: it unwraps
 * {@code \text{}}-style blocks (dropping them as units after a number), removes degrees, percent signs and words,
 * dollar signs and LaTeX spacing, maps {@code \le}/{@code \ge}/{@code \neq}/{@code \lt}/{@code \gt} to ASCII
 * relations, merges thousands separators, and undoes doubled backslashes.
 */
public final class MathNormalizer {

  private MathNormalizer() {}

  // ---------------------------------------------------------------- Hendrycks strip_string

  /** Hendrycks' {@code strip_string}: the reference normalizer of MATH's {@code is_equiv}. */
  public static String hendrycks(String input) {
    String s = input.replace("\n", "");
    s = s.replace("\\!", "");
    s = s.replace("\\\\", "\\");
    s = s.replace("tfrac", "frac").replace("dfrac", "frac");
    s = s.replace("\\left", "").replace("\\right", "");
    s = s.replace("^{\\circ}", "").replace("^\\circ", "");
    s = s.replace("\\$", "");
    s = removeRightUnits(s);
    s = s.replace("\\%", "");
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    if (s.isEmpty()) {
      return s;
    }
    if (s.charAt(0) == '.') {
      s = "0" + s;
    }
    List<String> eq = split(s, "=");
    if (eq.size() == 2 && eq.get(0).length() <= 2) {
      s = eq.get(1);
    }
    s = fixSqrt(s);
    s = s.replace(" ", "");
    s = fixFracs(s);
    if (s.equals("0.5")) {
      s = "\\frac{1}{2}";
    }
    s = fixSlash(s);
    return s;
  }

  /** Python's {@code str.split(sep)}: keeps empty pieces, including trailing ones. */
  static List<String> split(String s, String sep) {
    List<String> out = new ArrayList<>();
    int from = 0;
    while (true) {
      int i = s.indexOf(sep, from);
      if (i < 0) {
        out.add(s.substring(from));
        return out;
      }
      out.add(s.substring(from, i));
      from = i + sep.length();
    }
  }

  private static String removeRightUnits(String s) {
    if (s.contains("\\text{ ")) {
      return split(s, "\\text{ ").get(0);
    }
    return s;
  }

  /** {@code \sqrt3} to {@code \sqrt{3}} (one character, as the reference does). */
  static String fixSqrt(String s) {
    if (!s.contains("\\sqrt")) {
      return s;
    }
    List<String> parts = split(s, "\\sqrt");
    StringBuilder out = new StringBuilder(parts.get(0));
    for (int i = 1; i < parts.size(); i++) {
      String p = parts.get(i);
      if (!p.isEmpty() && p.charAt(0) != '{' && p.charAt(0) != '[') {
        out.append("\\sqrt{").append(p.charAt(0)).append('}').append(p.substring(1));
      } else {
        out.append("\\sqrt").append(p);
      }
    }
    return out.toString();
  }

  /** {@code \frac12} to {@code \frac{1}{2}}, {@code \frac1{72}} to {@code \frac{1}{72}}. */
  static String fixFracs(String s) {
    List<String> parts = split(s, "\\frac");
    StringBuilder out = new StringBuilder(parts.get(0));
    for (int i = 1; i < parts.size(); i++) {
      String p = parts.get(i);
      out.append("\\frac");
      if (!p.isEmpty() && p.charAt(0) == '{') {
        out.append(p);
      } else {
        if (p.length() < 2) {
          return s;
        }
        char a = p.charAt(0);
        char b = p.charAt(1);
        if (b != '{') {
          out.append('{').append(a).append("}{").append(b).append('}').append(p.substring(2));
        } else {
          out.append('{').append(a).append('}').append(p.substring(1));
        }
      }
    }
    return out.toString();
  }

  private static final Pattern INT = Pattern.compile("-?\\d+");

  /** {@code a/b} with integers a and b (the whole string) to {@code \frac{a}{b}}. */
  static String fixSlash(String s) {
    List<String> parts = split(s, "/");
    if (parts.size() != 2) {
      return s;
    }
    String a = parts.get(0);
    String b = parts.get(1);
    if (INT.matcher(a).matches() && INT.matcher(b).matches() && !a.startsWith("-0") && !b.startsWith("-")) {
      return "\\frac{" + a + "}{" + b + "}";
    }
    return s;
  }

  // ---------------------------------------------------------------- canonical form for comparison

  private static final Pattern DOUBLE_BACKSLASH_COMMAND = Pattern.compile("\\\\\\\\(?=[a-zA-Z{}$%!,;:()])");
  private static final Pattern TEXT_BLOCK = Pattern.compile(
      "\\\\(?:text|textbf|textit|textrm|textnormal|mathrm|mbox|mathit|textsf|operatorname)\\s*\\{");
  private static final Pattern SPACING = Pattern.compile("(?<!\\\\)\\\\[,;:! ]|\\\\q?quad(?![a-zA-Z])|~");
  private static final Pattern PERCENT_WORD = Pattern.compile("(?i)\\s*(?:percentage|percent|pct)\\b\\.?");
  private static final Pattern THOUSANDS_BRACE = Pattern.compile("(\\d)\\s*\\{\\s*,\\s*\\}\\s*(\\d{3})");
  private static final Pattern THOUSANDS = Pattern.compile("-?\\d{1,3}(?:,\\d{3})+(?:\\.\\d+)?");
  private static final Pattern DEGREES = Pattern.compile("\\^\\s*\\{?\\s*\\\\circ\\s*\\}?|\\\\circ|°|\\\\degree");
  private static final Pattern SIZED_BRACKET = Pattern.compile(
      "\\\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr)(?![a-zA-Z])\\.?");
  private static final Pattern UNIT_AFTER_NUMBER = Pattern.compile(
      "^(.*?\\d\\}?)\\s*\\\\(?:text|textbf|textit|textrm|textnormal|mathrm|mbox)\\s*\\{[^{}]*\\}\\s*$");
  private static final Pattern LE = Pattern.compile("\\\\(?:leqslant|leq|le)(?![a-zA-Z])|≤");
  private static final Pattern GE = Pattern.compile("\\\\(?:geqslant|geq|ge)(?![a-zA-Z])|≥");
  private static final Pattern NE = Pattern.compile("\\\\(?:neq|ne)(?![a-zA-Z])|≠");
  private static final Pattern LT = Pattern.compile("\\\\lt(?![a-zA-Z])");
  private static final Pattern GT = Pattern.compile("\\\\gt(?![a-zA-Z])");

  /** The form compared by the math reward: spacing, units, wrappers and notation variants removed. */
  public static String canonical(String input) {
    String s = input.replace('\n', ' ').replace('\r', ' ').replace('\t', ' ').strip();
    if (!s.contains("\\begin{")) { // in matrices \\ separates rows
      s = DOUBLE_BACKSLASH_COMMAND.matcher(s).replaceAll("\\\\");
    }
    s = s.replace('−', '-').replace("∞", "\\infty").replace("\\displaystyle", "").replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac");
    s = SIZED_BRACKET.matcher(s).replaceAll("");
    s = SPACING.matcher(s).replaceAll(" ");
    s = DEGREES.matcher(s).replaceAll("");
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "");
    Matcher unit = UNIT_AFTER_NUMBER.matcher(s);
    if (unit.matches()) {
      s = unit.group(1);
    }
    s = unwrapText(s);
    s = PERCENT_WORD.matcher(s).replaceAll("");
    s = LE.matcher(s).replaceAll(" <= ");
    s = GE.matcher(s).replaceAll(" >= ");
    s = NE.matcher(s).replaceAll(" != ");
    s = LT.matcher(s).replaceAll(" < ");
    s = GT.matcher(s).replaceAll(" > ");
    s = THOUSANDS_BRACE.matcher(s).replaceAll("$1,$2");
    s = s.replaceAll("\\s+", " ").strip();
    while (s.endsWith(".") && !s.endsWith("..")) {
      s = s.substring(0, s.length() - 1).strip();
    }
    String compact = s.replace(" ", "");
    if (THOUSANDS.matcher(compact).matches()) {
      s = compact.replace(",", "");
    }
    s = fixSqrt(s);
    s = fixFracsSpaced(s);
    return s.strip();
  }

  /** Like {@link #fixFracs} but tolerant of spaces ({@code \frac 1 2}). */
  private static String fixFracsSpaced(String s) {
    if (!s.contains("\\frac")) {
      return s;
    }
    String t = s.replaceAll("\\\\frac\\s+(\\S)\\s*(\\S)", "\\\\frac$1$2");
    return fixFracs(t);
  }

  /** Unwraps {@code \text{...}}-style blocks, keeping their content. */
  static String unwrapText(String s) {
    Matcher m = TEXT_BLOCK.matcher(s);
    StringBuilder out = new StringBuilder();
    int from = 0;
    while (m.find(from)) {
      int open = m.end() - 1;
      int close = matchingBrace(s, open);
      if (close < 0) {
        break;
      }
      out.append(s, from, m.start()).append(' ').append(s, open + 1, close).append(' ');
      from = close + 1;
    }
    out.append(s.substring(from));
    return out.toString();
  }

  /** Index of the brace closing the one at {@code open}, skipping escaped braces; -1 when unbalanced. */
  static int matchingBrace(String s, int open) {
    int depth = 0;
    for (int i = open; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\') {
        i++;
        continue;
      }
      if (c == '{') {
        depth++;
      } else if (c == '}') {
        depth--;
        if (depth == 0) {
          return i;
        }
      }
    }
    return -1;
  }
}
