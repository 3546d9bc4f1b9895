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
  private static final Pattern THIN_SPACE_IN_NUMBER = Pattern.compile(",\\\\!\\s*(?=\\d{3}(?!\\d))");
  private static final Pattern NEGATIVE_THIN_SPACE = Pattern.compile("(?<!\\\\)\\\\!");
  private static final Pattern SPACING = Pattern.compile("(?<!\\\\)\\\\[,;:! ]|\\\\q?quad(?![a-zA-Z])|~");
  private static final Pattern PERCENT_WORD = Pattern.compile("(?i)\\s*(?:percentage|percent|pct)\\b\\.?");
  private static final Pattern THOUSANDS_BRACE = Pattern.compile("(\\d)\\s*\\{\\s*,\\s*\\}\\s*(\\d{3})");
  /** Thousands separated by commas; a first group of 0 ("0,111") is a decimal comma instead. */
  private static final Pattern THOUSANDS = Pattern.compile("-?[1-9]\\d{0,2}(?:,\\d{3})+(?:\\.\\d+)?");
  /** Thousands separated by (thin) spaces: 1\\,234 or 12 345 678. */
  private static final Pattern THOUSANDS_SPACED = Pattern.compile("-?[1-9]\\d{0,2}(?: \\d{3})+(?:\\.\\d+)?");
  /** A number and a unit word after it: 10 weeks, 10cm^2, 5 m². */
  private static final Pattern UNIT_WORD_AFTER_NUMBER = Pattern.compile("^(-?\\d[\\d,]*(?:\\.\\d+)?)\\s*"
      + "(?!(?:and|or|pi|sqrt|ln|log|sin|cos|tan|infty|i|hundreds?|thousands?|millions?|billions?|trillions?|dozens?"
      + "|squared|cubed)(?![a-zA-Z]))[a-zA-Z]{2,}(?:\\s*\\^\\s*\\{?\\d\\}?|[²³])?"
      + "(?:\\s+[a-zA-Z]{2,})?$");
  /** A mixed number: 2\\frac{5}{8} is 2 and 5/8. */
  /** A mixed number in plain text: 1 1/2. */
  private static final Pattern MIXED_PLAIN = Pattern.compile("^(-?)(\\d+)\\s+(\\d+)/(\\d+)$");
  private static final Pattern MIXED_NUMBER = Pattern.compile("^(-?)(\\d+)\\s*\\\\frac\\{(\\d+)\\}\\{(\\d+)\\}$");
  private static final Pattern PERCENT = Pattern.compile("%|(?i)(?<![a-z])(?:percentage|percent|pct)(?![a-z])");
  private static final Pattern DEGREES = Pattern.compile("\\^\\s*\\{?\\s*\\\\circ\\s*\\}?|\\\\circ|°|\\\\degree");
  private static final Pattern SIZED_BRACKET = Pattern.compile(
      "\\\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr)(?![a-zA-Z])\\.?");
  private static final Pattern UNIT_AFTER_NUMBER = Pattern.compile(
      "^(.*?\\d\\}?)\\s*\\\\(?:text|textbf|textit|textrm|textnormal|mathrm|mbox)\\s*\\{[^{}]*\\}"
          + "(?:\\s*\\^\\s*\\{?\\d\\}?)?\\s*$");
  private static final Pattern MATH_DELIMITERS =
      Pattern.compile("^\\\\\\((?<inline>(?:(?!\\\\[()\\[\\]]).)*+)\\\\\\)$"
          + "|^\\\\\\[(?<display>(?:(?!\\\\[()\\[\\]]).)*+)\\\\\\]$");
  private static final Pattern GLUED_RELATION = Pattern.compile("\\\\(leq|geq|le|ge)([a-pr-zA-Z])(?![a-zA-Z])");
  private static final Pattern LE = Pattern.compile("\\\\(?:leqslant|leq|le)(?![a-zA-Z])|≤");
  private static final Pattern GE = Pattern.compile("\\\\(?:geqslant|geq|ge)(?![a-zA-Z])|≥");
  private static final Pattern NE = Pattern.compile("\\\\(?:neq|ne)(?![a-zA-Z])|≠");
  private static final Pattern LT = Pattern.compile("\\\\lt(?![a-zA-Z])");
  private static final Pattern GT = Pattern.compile("\\\\gt(?![a-zA-Z])");

  /** The form compared by the math reward: spacing, units, wrappers and notation variants removed. */
  public static String canonical(String input) {
    String s = WHITE.matcher(input).replaceAll(" ").strip(); // one pass: later patterns see single spaces
    Matcher delimited = MATH_DELIMITERS.matcher(s);
    if (delimited.matches()) { // \( ... \) or \[ ... \] around the whole answer
      s = (delimited.group("inline") != null ? delimited.group("inline") : delimited.group("display")).strip();
    }
    // a relation glued to a one-letter variable: \lex is \le x (not \leq, the command)
    s = GLUED_RELATION.matcher(s).replaceAll("\\\\$1 $2");
    if (!s.contains("\\begin{")) { // in matrices \\ separates rows
      s = DOUBLE_BACKSLASH_COMMAND.matcher(s).replaceAll("\\\\");
    }
    s = s.replace("√", "\\sqrt").replace("π", "\\pi").replace("×", "\\times").replace("÷", "\\div")
        .replace("·", "\\cdot").replace("²", "^2").replace("³", "^3").replace("½", "\\frac{1}{2}")
        .replace("⅓", "\\frac{1}{3}").replace("¼", "\\frac{1}{4}").replace("¾", "\\frac{3}{4}")
        .replace("\\varnothing", "\\emptyset").replace("°", "^\\circ");
    s = repeatingDecimals(s);
    Matcher sci = SCIENTIFIC.matcher(s.strip());
    if (sci.matches()) {
      s = sci.group(1) + "\\times10^{" + sci.group(2) + "}";
    }
    if (TRIG.matcher(s).find()) { // degrees inside sin(30^\circ) are an angle, in radians
      s = DEGREE_ANGLE.matcher(s).replaceAll("($1\\\\cdot\\\\frac{\\\\pi}{180})");
    }
    s = PLAIN_INFINITY.matcher(s).replaceAll("\\\\infty").replace("==", "="); // sympy's oo, Python's ==
    s = s.replace('−', '-').replace("∞", "\\infty").replace("\\displaystyle", "").replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac");
    s = SIZED_BRACKET.matcher(s).replaceAll("");
    // a negative thin space joins digit groups (16,\\!386.20 and 11,\\! 111,\\! 100)
    s = NEGATIVE_THIN_SPACE.matcher(THIN_SPACE_IN_NUMBER.matcher(s).replaceAll(",")).replaceAll("");
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
    while (s.endsWith(".") && !s.endsWith("..") || s.endsWith("\\") && !s.endsWith("\\\\")) {
      s = s.substring(0, s.length() - 1).strip();
    }
    Matcher word = UNIT_WORD_AFTER_NUMBER.matcher(s);
    if (word.matches()) {
      s = word.group(1);
    }
    if (THOUSANDS_SPACED.matcher(s).matches()) {
      s = s.replace(" ", "");
    }
    // "10,455" is a number; "32, 349" (a space after the comma) is a list
    if (THOUSANDS.matcher(s).matches()) {
      s = s.replace(",", "");
    }
    s = fixSqrt(s);
    s = fixFracsSpaced(s);
    Matcher plainMixed = MIXED_PLAIN.matcher(s.strip());
    if (plainMixed.matches()) {
      s = plainMixed.group(1) + plainMixed.group(2) + "\\frac{" + plainMixed.group(3) + "}{" + plainMixed.group(4)
          + "}";
    }
    Matcher mixed = MIXED_NUMBER.matcher(s.strip());
    if (mixed.matches() && new java.math.BigInteger(mixed.group(3)).compareTo(new java.math.BigInteger(mixed.group(4)))
        < 0) {
      s = mixed.group(1) + "(" + mixed.group(2) + "+\\frac{" + mixed.group(3) + "}{" + mixed.group(4) + "})";
    }
    return s.strip();
  }

  private static final Pattern WHITE = Pattern.compile("\\s+");
  private static final Pattern PLAIN_INFINITY = Pattern.compile("(?<![\\\\a-zA-Z])(?:infinity|oo)(?![a-zA-Z])");
  private static final Pattern SCIENTIFIC = Pattern.compile("^(-?\\d+(?:\\.\\d+)?)[eE]([+-]?\\d{1,3})$");
  private static final Pattern TRIG = Pattern.compile("\\\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])");
  private static final Pattern DEGREE_ANGLE = Pattern.compile(
      "(\\d+(?:\\.\\d+)?)\\s*\\^\\s*\\{?\\s*\\\\circ\\s*\\}?");
  private static final Pattern REPEATING = Pattern.compile(
      "(?<![\\d.])(\\d*)\\.(\\d*)\\\\overline\\s*\\{\\s*(\\d{1,9})\\s*\\}");

  /** {@code 0.1\\overline{6}} as the fraction it is (1/6). */
  static String repeatingDecimals(String s) {
    Matcher m = REPEATING.matcher(s);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      java.math.BigInteger whole = new java.math.BigInteger(m.group(1).isEmpty() ? "0" : m.group(1));
      String fixed = m.group(2);
      String rep = m.group(3);
      java.math.BigInteger tenN = java.math.BigInteger.TEN.pow(fixed.length());
      java.math.BigInteger nines = java.math.BigInteger.TEN.pow(rep.length()).subtract(java.math.BigInteger.ONE);
      // whole + fixed / 10^n + rep / ((10^r - 1) 10^n)
      java.math.BigInteger den = tenN.multiply(nines);
      java.math.BigInteger num = whole.multiply(den)
          .add(new java.math.BigInteger(fixed.isEmpty() ? "0" : fixed).multiply(nines))
          .add(new java.math.BigInteger(rep));
      m.appendReplacement(out, Matcher.quoteReplacement("\\frac{" + num + "}{" + den + "}"));
    }
    m.appendTail(out);
    return out.toString();
  }

  /** Whether an answer is written as a percentage ({@code 33.5\\%}, {@code 10 percent}). */
  public static boolean hasPercent(String input) {
    return PERCENT.matcher(input).find();
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
