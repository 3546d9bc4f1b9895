package dev.nucleon.reward.math;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Random;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.commons.numbers.fraction.BigFraction;

/**
 * Whether two answers (already extracted, as LaTeX) mean the same thing.
 *
 * <ol>
 *   <li>Equal after {@link MathNormalizer#canonical} (spaces ignored), or after Hendrycks' {@code strip_string}:
 *       equal.
 *   <li>Structure: {@code ;}-separated groups, comma / "and" lists, tuples and intervals (bracket kinds must match),
 *       sets {@code \{...\}}, matrices, unions {@code \cup}, equations and relation chains. Lists and sets compare
 *       element-wise: sets (and bare lists when {@code list-order = any}) in any order, tuples and intervals in
 *       order. {@code a \pm b} is the set {a+b, a-b}.
 *   <li>Equations: the response's final value is its last right-hand side (the one before an {@code \approx});
 *       a reference equation whose left side is a bare name ({@code x}, {@code a_{37}}, {@code (p,q)},
 *       {@code \frac{NO}{BO}}) is compared by its right side; two equations with other left sides are equal when
 *       {@code lhs - rhs} of one is a constant multiple of the other's. Relation chains compare after turning
 *       {@code >} into {@code <}; {@code a < x < b} equals the interval {@code (a, b)}.
 *   <li>Expressions: exact rational arithmetic when both sides are rational; otherwise numeric evaluation at three
 *       fixed points for the variables, with relative tolerance 1e-9, or {@code 10^-precision} when a side has a
 *       decimal literal.
 * </ol>
 */
public final class MathEquivalence {

  private final boolean ordered;
  private final double decimalTolerance;

  /**
   * @param ordered whether bare comma lists must be in the same order (Hendrycks) or may be in any order
   * @param precision decimal places to which an answer written with decimals must agree
   */
  public MathEquivalence(boolean ordered, int precision) {
    this.ordered = ordered;
    this.decimalTolerance = Math.pow(10, -precision);
  }

  /** Whether {@code response} (the model's answer) is equivalent to {@code reference}. */
  public boolean equivalent(String response, String reference) {
    String a = MathNormalizer.canonical(response);
    String b = MathNormalizer.canonical(reference);
    if (a.isEmpty() || b.isEmpty()) {
      return false;
    }
    // quantities in the same SI dimension compare by their value in coherent units: 1 km is 1000 m, not 1 m
    Optional<Quantity> qa = Quantity.parse(response);
    Optional<Quantity> qb = Quantity.parse(reference);
    if (qa.isPresent() && qb.isPresent() && qa.get().dimension().equals(qb.get().dimension())) {
      OptionalDouble va = value(qa.get().number());
      OptionalDouble vb = value(qb.get().number());
      if (va.isPresent() && vb.isPresent()) {
        double x = va.getAsDouble() * qa.get().scale();
        double y = vb.getAsDouble() * qb.get().scale();
        // relative (3 nm is not 5 nm); integers in units a power of ten apart are exact, decimals agree to the
        // precision but never beyond 1%
        double tolerance = qa.get().exact() && qb.get().exact() ? 1e-12 : Math.min(decimalTolerance, 1e-2);
        return Math.abs(x - y) <= tolerance * Math.max(Math.abs(x), Math.abs(y));
      }
    }
    if (compact(a).equals(compact(b)) || equal(parse(a), parse(b), true)) {
      return true;
    }
    // a percentage is its number or a hundredth of it: 33.5\% is 0.335, 10\% may be written 10
    boolean pa = MathNormalizer.hasPercent(response);
    boolean pb = MathNormalizer.hasPercent(reference);
    if (pa && !pb) {
      return hundredth(a).map(x -> equal(parse(x), parse(b), true)).orElse(false);
    }
    if (pb && !pa) {
      return hundredth(b).map(y -> equal(parse(a), parse(y), true)).orElse(false);
    }
    return false;
  }

  /** The value of a number written in LaTeX ({@code 4.2 \\times 10^5}), if it is a number. */
  private static OptionalDouble value(String latex) {
    return LatexExpression.parse(MathNormalizer.canonical(latex)).filter(e -> e.variables().isEmpty())
        .map(e -> e.evaluate(Map.of())).filter(Double::isFinite).map(OptionalDouble::of)
        .orElse(OptionalDouble.empty()); // an overflow (10^{999}) is no value to compare
  }

  /** A single number or expression divided by 100 ({@code \frac{x}{100}}); empty for lists and relations. */
  private static Optional<String> hundredth(String s) {
    if (s.contains(",") || s.contains("=") || s.contains("<") || s.contains(">")) {
      return Optional.empty();
    }
    return Optional.of("\\frac{" + s + "}{100}");
  }

  private static String compact(String s) {
    return s.replace(" ", "").replace("{", "").replace("}", "");
  }

  // ------------------------------------------------------------------ structure

  sealed interface Value {}

  record Atom(String text) implements Value {}

  /** open/close: '(' ')' '[' ']' for tuples and intervals, '{' '}' for sets, 0 for a bare list. */
  record Seq(char open, char close, List<Value> items) implements Value {}

  record Matrix(List<List<Value>> rows) implements Value {}

  record Union(List<Value> parts) implements Value {}

  /** A chain {@code s0 op0 s1 op1 s2 ...} with ops among {@code < <= != =} after orientation. */
  record Relation(List<Value> sides, List<String> ops) implements Value {}

  /**
   * {@code lhs = v1 = v2 ...}; {@code value} is the final value (before an {@code \approx}); {@code approx}: the
   * value only approximates the left side ({@code \frac{9.5}{\pi} \approx 3.02}), which is an answer too.
   */
  record Equation(String lhs, Value value, String lhsText, String rhsText, boolean approx) implements Value {}

  private static final Pattern MATRIX = Pattern.compile(
      "^\\\\begin\\{([pbvBV]?matrix|array|cases)\\}(?:\\{[^}]*\\})?(.*)\\\\end\\{\\1\\}$", Pattern.DOTALL);
  private static final Pattern AND_WORD = Pattern.compile("(?i)(?<![A-Za-z\\\\])and(?![A-Za-z])");
  private static final Pattern LIST_WORD = Pattern.compile("(?i)(?<![A-Za-z\\\\])(?:and|or)(?![A-Za-z])");
  private static final Pattern SIMPLE_LHS_CHARS = Pattern.compile("[A-Za-z\\\\{}()\\[\\],:/| ]+");

  Value parse(String input) {
    String s = input.strip();
    if (s.startsWith("\\in ")) {
      s = s.substring(4).strip();
    }
    // "x \in S": the set is the answer
    int in = topLevelIndex(s, "\\in ");
    if (in > 0 && SIMPLE_LHS_CHARS.matcher(s.substring(0, in)).matches()) {
      s = s.substring(in + 4).strip();
    }
    List<String> groups = splitTop(s, ";");
    if (groups.size() > 1 && !wrapped(s)) {
      return new Seq((char) 0, (char) 0, groups.stream().map(this::parse).toList());
    }
    // "p = 5, q = 2 and p = 7, q = 2": "and" between lists separates groups, as ';' does
    List<String> byWord = splitTop(LIST_WORD.matcher(s.replace("\\text{and}", " and ")).replaceAll(";"), ";");
    if (byWord.size() > 1 && !wrapped(s) && byWord.stream().allMatch(g -> splitTop(g, ",").size() > 1)) {
      return new Seq((char) 0, (char) 0, byWord.stream().map(this::parse).toList());
    }
    // "x < -1 and x > 2" is an intersection, not a list: such a text compares as text only
    if (AND_WORD.matcher(s).find() && !wrapped(s)) {
      List<String> parts = splitTop(AND_WORD.matcher(s).replaceAll(";"), ";");
      if (parts.size() > 1 && parts.stream().allMatch(x -> relation(x.strip()) != null)) {
        return new Atom(s);
      }
    }
    String listed = LIST_WORD.matcher(s).replaceAll(",");
    List<String> items = splitTop(listed, ",").stream().map(String::strip).filter(x -> !x.isEmpty()).toList();
    if (items.size() > 1 && !wrapped(s)) {
      return new Seq((char) 0, (char) 0, items.stream().map(this::parse).toList());
    }
    List<String> union = splitTop(s, "\\cup");
    if (union.size() > 1) {
      return new Union(union.stream().map(this::parse).toList());
    }
    Value relation = relation(s);
    if (relation != null) {
      return relation;
    }
    List<String> eq = splitEquation(s);
    if (eq.size() > 1) {
      return equation(eq);
    }
    if (s.startsWith("\\{") && s.endsWith("\\}") && matchingClose(s, 0) == s.length() - 2) {
      return new Seq('{', '}', items(s.substring(2, s.length() - 2)));
    }
    if (wrapped(s)) {
      char open = s.charAt(0);
      char close = s.charAt(s.length() - 1);
      String inner = s.substring(1, s.length() - 1).strip();
      if (open == '{' && close == '}') { // a TeX group: {1,3} reads 1,3, a bare list
        List<Value> list = items(inner);
        return list.size() == 1 ? list.get(0) : new Seq((char) 0, (char) 0, list);
      }
      Value matrix = matrix(inner);
      if (matrix != null && open == '(') {
        return matrix;
      }
      List<Value> elements = items(inner);
      if (elements.size() == 1 && open == '(' && close == ')') {
        return elements.get(0) instanceof Atom at ? new Atom("(" + at.text() + ")") : elements.get(0);
      }
      return new Seq(open, close, elements);
    }
    Value computed = matrixArithmetic(s);
    if (computed != null) {
      return computed;
    }
    Value matrix = matrix(s);
    if (matrix != null) {
      return matrix;
    }
    int pm = s.indexOf("\\pm");
    if (pm >= 0 && s.indexOf("\\pm", pm + 1) < 0) {
      String before = s.substring(0, pm).strip();
      String after = s.substring(pm + 3).strip();
      String plus = before.isEmpty() ? after : before + "+(" + after + ")";
      String minus = before.isEmpty() ? "-(" + after + ")" : before + "-(" + after + ")";
      return new Seq('{', '}', List.of(new Atom(plus), new Atom(minus)));
    }
    return new Atom(s);
  }

  private List<Value> items(String inner) {
    List<String> parts = splitTop(inner, ",");
    if (parts.size() == 1) {
      parts = splitTop(inner, ";");
    }
    return parts.stream().map(String::strip).filter(x -> !x.isEmpty()).map(this::parse).toList();
  }

  private Value matrix(String s) {
    var m = MATRIX.matcher(s.strip());
    if (!m.matches()) {
      return null;
    }
    List<List<Value>> rows = new ArrayList<>();
    for (String row : m.group(2).split("\\\\\\\\")) {
      if (row.isBlank()) {
        continue;
      }
      List<Value> cells = new ArrayList<>();
      for (String cell : row.split("&")) {
        cells.add(parse(cell.strip()));
      }
      rows.add(cells);
    }
    return rows.isEmpty() ? null : new Matrix(rows);
  }

  private static final Pattern MATRIX_BEGIN = Pattern.compile("\\\\begin\\{([pbvBV]?matrix)\\}");

  /**
   * Sums, differences and products of matrices with exact entries ({@code A + B}, {@code A B}, {@code A \\cdot B}),
   * computed; null when the text is not only that.
   */
  private Value matrixArithmetic(String s) {
    java.util.regex.Matcher m = MATRIX_BEGIN.matcher(s);
    List<BigFraction[][]> terms = new ArrayList<>();
    List<String> ops = new ArrayList<>();
    int at = 0;
    while (m.find(at)) {
      String between = s.substring(at, m.start()).strip();
      String end = "\\end{" + m.group(1) + "}";
      int close = s.indexOf(end, m.end());
      if (close < 0) {
        return null;
      }
      if (!terms.isEmpty()) {
        String op = between.isEmpty() || between.equals("\\cdot") || between.equals("\\times") ? "*" : between;
        if (!op.equals("*") && !op.equals("+") && !op.equals("-")) {
          return null;
        }
        ops.add(op);
      } else if (!between.isEmpty()) {
        return null;
      }
      BigFraction[][] cells = exactMatrix(s.substring(m.start(), close + end.length()));
      if (cells == null) {
        return null;
      }
      terms.add(cells);
      at = close + end.length();
    }
    if (terms.size() < 2 || !s.substring(at).isBlank()) {
      return null;
    }
    // products first, then sums, left to right
    List<BigFraction[][]> sums = new ArrayList<>();
    List<String> signs = new ArrayList<>();
    BigFraction[][] acc = terms.get(0);
    for (int i = 0; i < ops.size(); i++) {
      if (ops.get(i).equals("*")) {
        acc = multiply(acc, terms.get(i + 1));
        if (acc == null) {
          return null;
        }
      } else {
        sums.add(acc);
        signs.add(ops.get(i));
        acc = terms.get(i + 1);
      }
    }
    sums.add(acc);
    BigFraction[][] total = sums.get(0);
    for (int i = 1; i < sums.size(); i++) {
      total = add(total, sums.get(i), signs.get(i - 1).equals("-"));
      if (total == null) {
        return null;
      }
    }
    List<List<Value>> rows = new ArrayList<>();
    for (BigFraction[] row : total) {
      List<Value> cells = new ArrayList<>();
      for (BigFraction f : row) {
        cells.add(new Atom(f.getDenominator().equals(java.math.BigInteger.ONE) ? f.getNumerator().toString()
            : "\\frac{" + f.getNumerator() + "}{" + f.getDenominator() + "}"));
      }
      rows.add(cells);
    }
    return new Matrix(rows);
  }

  private BigFraction[][] exactMatrix(String text) {
    Value v = matrix(text);
    if (!(v instanceof Matrix mx)) {
      return null;
    }
    int cols = mx.rows().get(0).size();
    BigFraction[][] out = new BigFraction[mx.rows().size()][cols];
    for (int r = 0; r < out.length; r++) {
      if (mx.rows().get(r).size() != cols) {
        return null;
      }
      for (int c = 0; c < cols; c++) {
        if (!(mx.rows().get(r).get(c) instanceof Atom a)) {
          return null;
        }
        Optional<BigFraction> f = LatexExpression.parse(a.text()).flatMap(LatexExpression::exact);
        if (f.isEmpty()) {
          return null;
        }
        out[r][c] = f.get();
      }
    }
    return out;
  }

  private static BigFraction[][] multiply(BigFraction[][] a, BigFraction[][] b) {
    if (a[0].length != b.length) {
      return null;
    }
    BigFraction[][] out = new BigFraction[a.length][b[0].length];
    for (int i = 0; i < a.length; i++) {
      for (int j = 0; j < b[0].length; j++) {
        BigFraction sum = BigFraction.ZERO;
        for (int k = 0; k < b.length; k++) {
          sum = sum.add(a[i][k].multiply(b[k][j]));
        }
        out[i][j] = sum;
      }
    }
    return out;
  }

  private static BigFraction[][] add(BigFraction[][] a, BigFraction[][] b, boolean subtract) {
    if (a.length != b.length || a[0].length != b[0].length) {
      return null;
    }
    BigFraction[][] out = new BigFraction[a.length][a[0].length];
    for (int i = 0; i < a.length; i++) {
      for (int j = 0; j < a[0].length; j++) {
        out[i][j] = subtract ? a[i][j].subtract(b[i][j]) : a[i][j].add(b[i][j]);
      }
    }
    return out;
  }

  private Value relation(String s) {
    List<Value> sides = new ArrayList<>();
    List<String> ops = new ArrayList<>();
    int depth = 0;
    int last = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\') {
        i++;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') {
        depth++;
      } else if (c == ')' || c == ']' || c == '}') {
        depth--;
      } else if (depth == 0 && (c == '<' || c == '>' || c == '!' && i + 1 < s.length() && s.charAt(i + 1) == '=')) {
        String op = i + 1 < s.length() && s.charAt(i + 1) == '=' ? c + "=" : String.valueOf(c);
        sides.add(new Atom(s.substring(last, i).strip()));
        ops.add(op);
        i += op.length() - 1;
        last = i + 1;
      }
    }
    if (ops.isEmpty()) {
      return null;
    }
    sides.add(new Atom(s.substring(last).strip()));
    if (sides.stream().anyMatch(v -> ((Atom) v).text().isEmpty())) {
      return null;
    }
    boolean greater = ops.stream().allMatch(o -> o.startsWith(">"));
    if (greater) { // a > b > c  ==  c < b < a
      List<Value> rs = new ArrayList<>(sides);
      java.util.Collections.reverse(rs);
      List<String> ro = new ArrayList<>();
      for (int i = ops.size() - 1; i >= 0; i--) {
        ro.add(ops.get(i).replace('>', '<'));
      }
      return new Relation(rs, ro);
    }
    return new Relation(sides, ops);
  }

  /** Splits on top-level '=' and '\approx', keeping the markers: [lhs, "=rhs1", "~rhs2", ...]. */
  private static List<String> splitEquation(String s) {
    List<String> out = new ArrayList<>();
    int depth = 0;
    int last = 0;
    char marker = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\') {
        if (depth == 0 && s.startsWith("\\approx", i)) {
          out.add((marker == 0 ? "" : String.valueOf(marker)) + s.substring(last, i).strip());
          marker = '~';
          last = i + 7;
          i += 6;
          continue;
        }
        i++;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') {
        depth++;
      } else if (c == ')' || c == ']' || c == '}') {
        depth--;
      } else if (c == '=' && depth == 0) {
        out.add((marker == 0 ? "" : String.valueOf(marker)) + s.substring(last, i).strip());
        marker = '=';
        last = i + 1;
      }
    }
    if (out.isEmpty()) {
      return List.of(s);
    }
    out.add((marker == 0 ? "" : String.valueOf(marker)) + s.substring(last).strip());
    return out;
  }

  private Value equation(List<String> parts) {
    String lhs = parts.get(0);
    // the final value: the last right side, unless it came after \approx and an exact one precedes it
    int k = parts.size() - 1;
    while (k > 1 && parts.get(k).startsWith("~")) {
      k--;
    }
    String value = parts.get(k).substring(1).strip();
    if (k == 0 || value.isEmpty()) {
      value = parts.get(parts.size() - 1).substring(1).strip();
    }
    if (lhs.isEmpty() || value.isEmpty()) {
      return new Atom(String.join("", parts));
    }
    String firstRhs = parts.get(1).substring(1).strip();
    boolean approx = parts.stream().skip(1).allMatch(p -> p.startsWith("~"));
    // "2 = x": the name is on the right, the answer on the left
    if (parts.size() == 2 && !approx && simpleLhs(value) && !simpleLhs(lhs)) {
      return new Equation(value, parse(lhs), value, lhs, false);
    }
    return new Equation(lhs, parse(value), lhs, firstRhs, approx);
  }

  /** A function, in LaTeX ({@code \sin}) or as programs write it ({@code sin(}, {@code Log (}). */
  private static final Pattern FUNCTION_NAME = Pattern.compile(
      "\\\\[a-zA-Z]*(?:sin|cos|tan|sec|csc|cot|log|ln|exp|sqrt)|(?i)(?<![a-z])(?:a|arc)?(?:sin|cos|tan|sec|csc|cot)h?"
      + "\\s*\\(|(?i)(?<![a-z])(?:ln|log|exp|sqrt)\\s*\\(");

  /** A left side that only names the answer: letters, subscripts, tuples of names, ratios of names. */
  static boolean simpleLhs(String lhs) {
    if (lhs.length() > 200) {
      return false; // a name is short (and the subscript pattern below rescans from every unclosed "_{")
    }
    String t = lhs.replaceAll("_\\{[^}]*\\}|_[A-Za-z0-9]", "");
    t = t.replace("\\frac", "/").replace("\\mathbf", "").replace("\\vec", "").replace("\\overline", "");
    return !t.isBlank() && SIMPLE_LHS_CHARS.matcher(t).matches() && !FUNCTION_NAME.matcher(t).find();
  }

  private static boolean wrapped(String s) {
    if (s.length() < 2) {
      return false;
    }
    char open = s.charAt(0);
    if (open != '(' && open != '[' && open != '{') {
      return false;
    }
    char close = s.charAt(s.length() - 1);
    if (close != ')' && close != ']' && close != '}') {
      return false;
    }
    return matchingClose(s, 0) == s.length() - 1;
  }

  /**
   * The index of the bracket closing the one at {@code open} ((, [, { or \{; any kind closes any kind, for
   * intervals), or -1.
   */
  static int matchingClose(String s, int open) {
    int depth = 0;
    for (int i = open; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 1 < s.length() && (s.charAt(i + 1) == '{' || s.charAt(i + 1) == '}')) {
        depth += s.charAt(i + 1) == '{' ? 1 : -1;
        i++;
        if (depth == 0) {
          return i - 1;
        }
        continue;
      }
      if (c == '\\') {
        i++;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') {
        depth++;
      } else if (c == ')' || c == ']' || c == '}') {
        depth--;
        if (depth == 0) {
          return i;
        }
      }
    }
    return -1;
  }

  private static int topLevelIndex(String s, String token) {
    int depth = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (depth == 0 && s.startsWith(token, i)) {
        return i;
      }
      if (c == '\\') {
        i++;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') {
        depth++;
      } else if (c == ')' || c == ']' || c == '}') {
        depth--;
      }
    }
    return -1;
  }

  /** Splits on {@code sep} outside brackets and environments. */
  static List<String> splitTop(String s, String sep) {
    List<String> out = new ArrayList<>();
    int depth = 0;
    int env = 0;
    int last = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (s.startsWith("\\begin{", i)) {
        env++;
      } else if (s.startsWith("\\end{", i)) {
        env--;
      }
      if (depth == 0 && env == 0 && s.startsWith(sep, i)) {
        out.add(s.substring(last, i));
        last = i + sep.length();
        i = last - 1;
        continue;
      }
      if (c == '\\') {
        if (i + 1 < s.length() && (s.charAt(i + 1) == '{' || s.charAt(i + 1) == '}')) {
          depth += s.charAt(i + 1) == '{' ? 1 : -1;
        }
        i++;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') {
        depth++;
      } else if (c == ')' || c == ']' || c == '}') {
        depth--;
      }
    }
    out.add(s.substring(last));
    return out;
  }

  // ------------------------------------------------------------------ comparison

  /** {@code a}: the response's value; {@code b}: the reference's. */
  boolean equal(Value a, Value b, boolean top) {
    if (a instanceof Equation ea && b instanceof Equation eb) {
      if (compact(ea.lhs()).equals(compact(eb.lhs())) || simpleLhs(ea.lhs()) && simpleLhs(eb.lhs())) {
        return equal(ea.value(), eb.value(), false);
      }
      return equationsProportional(ea, eb);
    }
    if (a instanceof Equation ea) {
      return equal(ea.value(), b, false) || ea.approx() && consistent(ea) && equal(parse(ea.lhs()), b, false);
    }
    if (b instanceof Equation eb) {
      // a reference "\\frac{\\sqrt{3}}{3} \\approx 0.577" is answered by its exact side
      return simpleLhs(eb.lhs()) && equal(a, eb.value(), false)
          || eb.approx() && consistent(eb) && equal(a, parse(eb.lhs()), false);
    }
    if (a instanceof Seq sa && sa.items().size() == 1) {
      return equal(sa.items().get(0), b, false);
    }
    if (b instanceof Seq sb && sb.items().size() == 1) {
      return equal(a, sb.items().get(0), false);
    }
    if (a instanceof Seq sa && b instanceof Seq sb) {
      return seqEqual(sa, sb);
    }
    if (a instanceof Relation ra && b instanceof Seq sb) {
      return intervalOf(ra).map(i -> seqEqual(i, sb)).orElse(false);
    }
    if (a instanceof Seq sa && b instanceof Relation rb) {
      return intervalOf(rb).map(i -> seqEqual(sa, i)).orElse(false);
    }
    if (a instanceof Relation ra && b instanceof Relation rb) {
      if (ra.ops().size() == 1 && rb.ops().size() == 1 && ra.ops().equals(rb.ops())
          && relationsProportional(ra, rb)) {
        return true; // -x > -1 is x < 1: lhs - rhs of one is a positive multiple of the other's
      }
      if (!ra.ops().equals(rb.ops()) || ra.sides().size() != rb.sides().size()) {
        return false;
      }
      for (int i = 0; i < ra.sides().size(); i++) {
        if (!equal(ra.sides().get(i), rb.sides().get(i), false)) {
          return false;
        }
      }
      return true;
    }
    if (a instanceof Union ua && b instanceof Union ub) {
      return sameSet(ua.parts(), ub.parts());
    }
    // {1,3} \\cup {2,4} is the set {1,2,3,4}
    if (a instanceof Seq sa && b instanceof Union ub && unionOfSets(ub) != null) {
      return sameSet(sa.items(), unionOfSets(ub));
    }
    if (b instanceof Seq sb && a instanceof Union ua && unionOfSets(ua) != null) {
      return sameSet(unionOfSets(ua), sb.items());
    }
    // "x < -1 or x > 2" is the union of two intervals
    if (a instanceof Seq sa && sa.open() == 0 && b instanceof Union ub) {
      return asIntervals(sa).map(parts -> sameSet(parts, ub.parts())).orElse(false);
    }
    if (b instanceof Seq sb && sb.open() == 0 && a instanceof Union ua) {
      return asIntervals(sb).map(parts -> sameSet(ua.parts(), parts)).orElse(false);
    }
    if (a instanceof Matrix ma && b instanceof Matrix mb) {
      if (ma.rows().size() != mb.rows().size()) {
        return false;
      }
      for (int r = 0; r < ma.rows().size(); r++) {
        List<Value> x = ma.rows().get(r);
        List<Value> y = mb.rows().get(r);
        if (x.size() != y.size()) {
          return false;
        }
        for (int c = 0; c < x.size(); c++) {
          if (!equal(x.get(c), y.get(c), false)) {
            return false;
          }
        }
      }
      return true;
    }
    if (a instanceof Atom x && b instanceof Atom y) {
      return atomsEqual(x.text(), y.text());
    }
    return false;
  }

  /** The elements of a union of sets or bare lists, or null when a part is something else (an interval). */
  private static List<Value> unionOfSets(Union u) {
    List<Value> out = new ArrayList<>();
    for (Value p : u.parts()) {
      if (p instanceof Seq q && (q.open() == 0 || q.open() == '{')) {
        out.addAll(q.items());
      } else {
        return null;
      }
    }
    return out;
  }

  /**
   * Whether an approximation holds: its left side within 1% of its value (so {@code 5 \\approx 7} is not two
   * guesses).
   */
  private static boolean consistent(Equation e) {
    if (!(e.value() instanceof Atom v)) {
      return false;
    }
    Optional<LatexExpression> l = LatexExpression.parse(e.lhs());
    Optional<LatexExpression> r = LatexExpression.parse(v.text());
    if (l.isEmpty() || r.isEmpty() || !l.get().variables().isEmpty() || !r.get().variables().isEmpty()) {
      return false;
    }
    double x = l.get().evaluate(Map.of());
    double y = r.get().evaluate(Map.of());
    return Double.isFinite(x) && Double.isFinite(y) && Math.abs(x - y) <= 1e-2 * Math.max(Math.abs(x), Math.abs(y));
  }

  /** A bare list whose every item is a relation on one variable, as intervals. */
  private static Optional<List<Value>> asIntervals(Seq s) {
    List<Value> out = new ArrayList<>();
    for (Value v : s.items()) {
      Optional<Seq> i = v instanceof Relation r ? intervalOf(r) : Optional.empty();
      if (i.isEmpty()) {
        return Optional.empty();
      }
      out.add(i.get());
    }
    return Optional.of(out);
  }

  private boolean seqEqual(Seq a, Seq b) {
    boolean aSet = a.open() == '{' || a.open() == 0;
    boolean bSet = b.open() == '{' || b.open() == 0;
    if (a.open() == '{' || b.open() == '{' || a.open() == 0 && b.open() == 0 && !ordered) {
      return sameSet(a.items(), b.items());
    }
    if (!aSet && !bSet && (a.open() != b.open() || a.close() != b.close())) {
      return false;
    }
    // a bare list against a tuple, or two ordered sequences: element-wise in order
    if ((aSet && a.open() == 0 && b.open() != '(' && b.open() != 0)
        || (bSet && b.open() == 0 && a.open() != '(' && a.open() != 0)) {
      return false;
    }
    if (a.items().size() != b.items().size()) {
      return false;
    }
    for (int i = 0; i < a.items().size(); i++) {
      if (!equal(a.items().get(i), b.items().get(i), false)) {
        return false;
      }
    }
    return true;
  }

  private boolean sameSet(List<Value> a, List<Value> b) {
    for (Value x : a) {
      if (b.stream().noneMatch(y -> equal(x, y, false))) {
        return false;
      }
    }
    for (Value y : b) {
      if (a.stream().noneMatch(x -> equal(x, y, false))) {
        return false;
      }
    }
    return true;
  }

  /**
   * {@code lo < x < hi} as the interval (lo, hi), brackets from the relations; {@code x >= a} as
   * {@code [a, \infty)} and {@code x < a} as {@code (-\infty, a)} when one side is a lone variable.
   */
  private static Optional<Seq> intervalOf(Relation r) {
    if (r.ops().stream().anyMatch(o -> !o.equals("<") && !o.equals("<="))) {
      return Optional.empty();
    }
    if (r.sides().size() == 2) {
      String left = ((Atom) r.sides().get(0)).text();
      String right = ((Atom) r.sides().get(1)).text();
      boolean open = r.ops().get(0).equals("<");
      if (VARIABLE.matcher(left).matches() && !VARIABLE.matcher(right).matches()) {
        return Optional.of(new Seq('(', open ? ')' : ']', List.of(new Atom("-\\infty"), r.sides().get(1))));
      }
      if (VARIABLE.matcher(right).matches() && !VARIABLE.matcher(left).matches()) {
        return Optional.of(new Seq(open ? '(' : '[', ')', List.of(r.sides().get(0), new Atom("\\infty"))));
      }
      return Optional.empty();
    }
    if (r.sides().size() != 3) {
      return Optional.empty();
    }
    char open = r.ops().get(0).equals("<") ? '(' : '[';
    char close = r.ops().get(1).equals("<") ? ')' : ']';
    return Optional.of(new Seq(open, close, List.of(r.sides().get(0), r.sides().get(2))));
  }

  private static final Pattern VARIABLE = Pattern.compile("[A-Za-z](?:_\\{?[A-Za-z0-9]+\\}?)?");
  private static final Pattern PAREN_LETTER = Pattern.compile("^\\(([A-Za-z])\\)$");

  boolean atomsEqual(String x, String y) {
    String cx = compact(x);
    String cy = compact(y);
    if (cx.equals(cy) || MathNormalizer.hendrycks(x).equals(MathNormalizer.hendrycks(y))) {
      return true;
    }
    String lx = PAREN_LETTER.matcher(cx).replaceAll("$1");
    String ly = PAREN_LETTER.matcher(cy).replaceAll("$1");
    if (lx.equals(ly)) {
      return true;
    }
    Optional<LatexExpression> ex = LatexExpression.parse(x);
    Optional<LatexExpression> ey = ex.isEmpty() ? Optional.empty() : LatexExpression.parse(y);
    if (ex.isEmpty() || ey.isEmpty()) {
      return false;
    }
    LatexExpression a = ex.get();
    LatexExpression b = ey.get();
    boolean decimal = a.hasDecimal() || b.hasDecimal();
    Optional<BigFraction> qa = a.exact();
    Optional<BigFraction> qb = qa.isEmpty() ? Optional.empty() : b.exact();
    if (qa.isPresent() && qb.isPresent()) {
      if (qa.get().compareTo(qb.get()) == 0) {
        return true;
      }
      if (!decimal) {
        return false;
      }
      return close(qa.get().doubleValue(), qb.get().doubleValue(), decimalTolerance);
    }
    double tolerance = decimal ? decimalTolerance : 1e-9;
    // i is the imaginary unit in a complex number (1+2i, \frac{5}{1-2i}); beside other variables it may be a real
    // quantity (an interest rate: P(1+i)^2 is not 2Pi), so there it stays a variable
    boolean complex = (a.hasImaginaryUnit() || b.hasImaginaryUnit()) && a.variables().stream()
        .allMatch(v -> v.equals("i")) && b.variables().stream().allMatch(v -> v.equals("i"));
    return complex && complexEqual(a, b, tolerance) || numericallyEqual(a, b, tolerance);
  }

  private static boolean close(double a, double b, double tolerance) {
    return Math.abs(a - b) <= tolerance * Math.max(1.0, Math.max(Math.abs(a), Math.abs(b)));
  }

  private static final int POINTS = 3;

  /** Random values for the variables in [low, low + width). */
  private static List<Map<String, Double>> points(Set<String> variables, long seed, double low, double width) {
    Random random = new Random(seed);
    List<Map<String, Double>> out = new ArrayList<>();
    for (int k = 0; k < POINTS; k++) {
      Map<String, Double> values = new HashMap<>();
      for (String v : variables) {
        values.put(v, low + width * random.nextDouble());
      }
      out.add(values);
    }
    return out;
  }

  /**
   * Equal at random points: variables in [1.1, 2.9], or, where a side is defined at none of those
   * ({@code \arcsin x}, {@code \sqrt{1-x}}: NaN, not an overflow), in [0.55, 0.99], compared relative to the
   * values there (an absolute tolerance would let {@code x^{200}} vanish).
   */
  private static boolean numericallyEqual(LatexExpression a, LatexExpression b, double tolerance) {
    Set<String> vars = new LinkedHashSet<>(a.variables());
    vars.addAll(b.variables());
    int compared = numericallyEqual(a, b, tolerance, points(vars, 20260101L, 1.1, 1.8), false);
    if (compared == UNDEFINED && !vars.isEmpty()) {
      compared = numericallyEqual(a, b, tolerance, points(vars, 20260102L, 0.55, 0.44), true);
    }
    return compared > 0;
  }

  /**
   * Two complex numbers ({@code i} the imaginary unit, no other variable) equal: {@code i(2-i)} is {@code 1+2i},
   * {@code \frac{1}{1+i}} is {@code \frac{1-i}{2}}. The difference is measured by its modulus, relative to the
   * larger modulus above 1 (a rounding error in a zero part of a large number is no difference).
   */
  private static boolean complexEqual(LatexExpression a, LatexExpression b, double tolerance) {
    double[] x = a.evaluateComplex(Map.of());
    double[] y = b.evaluateComplex(Map.of());
    if (!Double.isFinite(x[0]) || !Double.isFinite(x[1]) || !Double.isFinite(y[0]) || !Double.isFinite(y[1])) {
      return false;
    }
    double scale = Math.max(1.0, Math.max(Math.hypot(x[0], x[1]), Math.hypot(y[0], y[1])));
    return Math.hypot(x[0] - y[0], x[1] - y[1]) <= tolerance * scale;
  }

  /** {@link #numericallyEqual}'s answer when a side is undefined (NaN) at every point. */
  private static final int UNDEFINED = -2;

  /**
   * How many of the points both sides are defined and agree at; -1 when they differ at one (or one is defined where
   * the other is not, while both are defined elsewhere); {@link #UNDEFINED} when at every point a side is NaN and
   * neither overflows. The retry ({@code relative}) compares relative to the values and needs both sides defined.
   */
  private static int numericallyEqual(LatexExpression a, LatexExpression b, double tolerance,
      List<Map<String, Double>> points, boolean relative) {
    int compared = 0;
    boolean undefinedSomewhere = false;
    boolean oneSided = false;
    boolean overflow = false;
    for (Map<String, Double> p : points) {
      double x = a.evaluate(p);
      double y = b.evaluate(p);
      if (Double.isNaN(x) || Double.isNaN(y)) {
        boolean both = Double.isNaN(x) && Double.isNaN(y);
        if (relative && !both) {
          return -1;
        }
        undefinedSomewhere = true;
        oneSided |= !both;
        continue;
      }
      if (Double.isInfinite(x) || Double.isInfinite(y)) {
        if (!(Double.isInfinite(x) && Double.isInfinite(y))) {
          return -1;
        }
        overflow = true;
        continue;
      }
      boolean same = relative ? Math.abs(x - y) <= tolerance * Math.max(Math.abs(x), Math.abs(y))
          : close(x, y, tolerance);
      if (!same) {
        return -1;
      }
      compared++;
    }
    if (compared > 0) {
      return oneSided ? -1 : compared;
    }
    return undefinedSomewhere && !overflow ? UNDEFINED : 0;
  }

  /** Two one-step relations with the same operator hold together when lhs - rhs is a positive multiple. */
  private boolean relationsProportional(Relation a, Relation b) {
    Double ratio = differenceRatio(((Atom) a.sides().get(0)).text(), ((Atom) a.sides().get(1)).text(),
        ((Atom) b.sides().get(0)).text(), ((Atom) b.sides().get(1)).text());
    return ratio != null && ratio > 1e-12;
  }

  /**
   * The constant c with {@code la - ra = c (lb - rb)} at every sample point, or null when there is none (or a side
   * does not evaluate).
   */
  private static Double differenceRatio(String la, String ra, String lb, String rb) {
    Optional<LatexExpression> fa = LatexExpression.parse("(" + la + ")-(" + ra + ")");
    Optional<LatexExpression> fb = LatexExpression.parse("(" + lb + ")-(" + rb + ")");
    if (fa.isEmpty() || fb.isEmpty()) {
      return null;
    }
    Set<String> vars = new LinkedHashSet<>(fa.get().variables());
    vars.addAll(fb.get().variables());
    Double ratio = null;
    for (Map<String, Double> p : points(vars, 7L, 1.1, 1.8)) {
      double x = fa.get().evaluate(p);
      double y = fb.get().evaluate(p);
      if (!Double.isFinite(x) || !Double.isFinite(y) || Math.abs(y) < 1e-12) {
        return null;
      }
      double r = x / y;
      if (ratio == null) {
        ratio = r;
      } else if (!close(r, ratio, 1e-9)) {
        return null;
      }
    }
    return ratio;
  }

  /** Two equations are the same when lhs - rhs of one is a non-zero constant multiple of the other's. */
  private boolean equationsProportional(Equation a, Equation b) {
    Double ratio = differenceRatio(a.lhsText(), a.rhsText(), b.lhsText(), b.rhsText());
    return ratio != null && Math.abs(ratio) > 1e-12;
  }

}
