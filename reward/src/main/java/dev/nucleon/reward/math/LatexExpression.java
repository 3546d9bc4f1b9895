package dev.nucleon.reward.math;

import com.ezylang.evalex.Expression;
import com.ezylang.evalex.config.ExpressionConfiguration;
import com.ezylang.evalex.parser.ASTNode;
import com.ezylang.evalex.parser.Token;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.commons.numbers.fraction.BigFraction;

/**
 * A LaTeX math expression as something to evaluate: translated to an infix expression for the EvalEx parser, then
 * evaluated exactly with rational arithmetic (Commons Numbers {@link BigFraction}) when it holds only numbers and
 * + - * / and integer powers, or numerically in double precision with values for its variables (in complex
 * arithmetic when a lone {@code i}, the imaginary unit, appears: {@link #evaluateComplex}). EvalEx only
 * parses: its own evaluation works in decimal arithmetic whose powers of large numbers take minutes
 * ({@code 9^{9^{9^9}}} never returned), where a double overflows to infinity at once.
 *
 * <p>Translation: {@code \frac{a}{b}}, {@code \sqrt{a}}, {@code \sqrt[n]{a}}, {@code ^}, {@code \cdot}/{@code \times}
 * /{@code \div}, implicit multiplication ({@code 2x}, {@code xy}, {@code )(}), single letters and Greek letters as
 * variables (subscripts part of the name) except a lone {@code e} (Euler's number), {@code \pi}, trigonometric
 * functions (radians), {@code \ln}, {@code \log}, {@code \exp}; unbraced arguments ({@code \frac12}, {@code 2^10},
 * {@code \ln 10}); and math as programs write it ({@code sin(x)}, {@code ArcTan(x)}, {@code log(x, 2)}, {@code pi},
 * {@code x**2}, {@code sqrt(x)}). Anything else ({@code \infty}, {@code !}, {@code |x|}, sums) is not translated
 * and the caller falls back to comparing text.
 */
public final class LatexExpression {

  private static final ExpressionConfiguration CONFIG = ExpressionConfiguration.builder()
      .mathContext(MathContext.DECIMAL128)
      .implicitMultiplicationAllowed(false)
      .arraysAllowed(false)
      .structuresAllowed(false)
      .powerOfPrecedence(com.ezylang.evalex.operators.OperatorIfc.OPERATOR_PRECEDENCE_POWER_HIGHER)
      .build();

  private static final Map<String, String> FUNCTIONS = Map.ofEntries(
      Map.entry("sin", "SINR"), Map.entry("cos", "COSR"), Map.entry("tan", "TANR"), Map.entry("sec", "SECR"),
      Map.entry("csc", "CSCR"), Map.entry("cot", "COTR"), Map.entry("arcsin", "ASINR"),
      Map.entry("arccos", "ACOSR"), Map.entry("arctan", "ATANR"), Map.entry("ln", "LOG"), Map.entry("log", "LOG"),
      Map.entry("sinh", "SINH"), Map.entry("cosh", "COSH"), Map.entry("tanh", "TANH"));
  private static final Set<String> GREEK = Set.of("alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta",
      "eta", "theta", "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
      "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi",
      "Omega");
  private static final Pattern VERTICAL_BAR = Pattern.compile("\\\\[lr]?vert(?![a-zA-Z])|\\\\[lr]Vert(?![a-zA-Z])");
  private static final Pattern UNBRACED_NUMBER = Pattern.compile("[-+]?[0-9]+(?:\\.[0-9]+)?");
  /** How Euler's number is written: a lone {@code e}, upright or italic. */
  private static final Set<String> EULER = Set.of("e", "\\mathrm{e}", "\\text{e}", "\\mathit{e}");
  private static final Set<String> WRAPPERS = Set.of("mathbf", "vec", "overline", "bar", "hat", "mathit",
      "boldsymbol", "overrightarrow", "mathrm", "text");

  private static final java.util.regex.Pattern OPERATOR_COMMANDS_TIMES =
      java.util.regex.Pattern.compile("\\\\(?:cdot|times|ast)(?![a-zA-Z])");
  private static final java.util.regex.Pattern OPERATOR_COMMANDS_DIV =
      java.util.regex.Pattern.compile("\\\\div(?![a-zA-Z])");

  private final String infix;
  private final Map<String, String> variables; // LaTeX name -> EvalEx name
  private final ASTNode ast;
  private final boolean hasDecimal;

  private LatexExpression(String infix, Map<String, String> variables, ASTNode ast, boolean hasDecimal) {
    this.infix = infix;
    this.variables = variables;
    this.ast = ast;
    this.hasDecimal = hasDecimal;
  }

  /** The expression, or empty when the LaTeX is outside what is translated or does not parse. */
  public static Optional<LatexExpression> parse(String latex) {
    if (latex.isBlank() || latex.length() > 2000) {
      return Optional.empty();
    }
    latex = VERTICAL_BAR.matcher(latex).replaceAll("|");
    String text = OPERATOR_COMMANDS_TIMES.matcher(integerFunctions(plainText(plainFunctions(latex.replace("**",
        "^"))))).replaceAll("*");
    text = OPERATOR_COMMANDS_DIV.matcher(text).replaceAll("/");
    Translator t = new Translator(text);
    String infix;
    try {
      infix = t.translate();
    } catch (IllegalArgumentException e) {
      return Optional.empty();
    }
    if (infix.isBlank()) {
      return Optional.empty();
    }
    try {
      Expression e = new Expression(infix, CONFIG);
      ASTNode ast = e.getAbstractSyntaxTree();
      return Optional.of(new LatexExpression(infix, t.variables, ast, t.hasDecimal));
    } catch (Exception e) { // EvalEx throws checked ParseException and runtime errors for odd input
      return Optional.empty();
    }
  }

  private static final java.util.regex.Pattern PLAIN_SQRT =
      java.util.regex.Pattern.compile("(?<![\\\\a-zA-Z])sqrt\\s*\\(");

  private static final java.util.regex.Pattern BINOMIAL =
      java.util.regex.Pattern.compile("\\\\[dt]?binom\\s*\\{\\s*(\\d{1,4})\\s*\\}\\s*\\{\\s*(\\d{1,4})\\s*\\}");
  private static final java.util.regex.Pattern FACTORIAL = java.util.regex.Pattern.compile("(?<![\\w.])(\\d{1,3})!");

  /** Binomial coefficients and factorials of integers, computed: {@code \binom{5}{2}} is 10, {@code 5!} 120. */
  static String integerFunctions(String s) {
    java.util.regex.Matcher b = BINOMIAL.matcher(s);
    StringBuilder out = new StringBuilder();
    while (b.find()) {
      int n = Integer.parseInt(b.group(1));
      int k = Integer.parseInt(b.group(2));
      BigInteger v = BigInteger.ZERO;
      if (k <= n) {
        v = BigInteger.ONE;
        for (int i = 0; i < Math.min(k, n - k); i++) {
          v = v.multiply(BigInteger.valueOf(n - i)).divide(BigInteger.valueOf(i + 1));
        }
      }
      b.appendReplacement(out, "(" + v + ")");
    }
    b.appendTail(out);
    java.util.regex.Matcher f = FACTORIAL.matcher(out.toString());
    StringBuilder done = new StringBuilder();
    while (f.find()) {
      BigInteger v = BigInteger.ONE;
      for (int i = 2; i <= Integer.parseInt(f.group(1)); i++) {
        v = v.multiply(BigInteger.valueOf(i));
      }
      f.appendReplacement(done, "(" + v + ")");
    }
    f.appendTail(done);
    return done.toString();
  }

  /**
   * Functions written as programs write them ({@code sin(x)}, {@code ArcTan(x)}, {@code asin(x)}, {@code ln(x)},
   * {@code log(x, 10)} for a base, {@code exp(x)}) and {@code pi} as a word, in LaTeX.
   */
  static String plainText(String s) {
    if (s.indexOf('(') < 0 && !s.contains("pi")) {
      return s;
    }
    s = PLAIN_PI.matcher(s).replaceAll("\\\\pi ");
    Matcher m = PLAIN_FUNCTION.matcher(s);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      String name = m.group(1).toLowerCase(java.util.Locale.ROOT);
      name = name.matches("a(?:sin|cos|tan)") ? "arc" + name.substring(1) : name;
      m.appendReplacement(out, Matcher.quoteReplacement("\\" + name + "("));
    }
    m.appendTail(out);
    return logBases(out.toString());
  }

  private static final Pattern PLAIN_PI = Pattern.compile("(?<![\\\\a-zA-Z])pi(?![a-zA-Z])");
  private static final Pattern PLAIN_FUNCTION = Pattern.compile(
      "(?<![\\\\a-zA-Z])((?i:arc)?(?i:sin|cos|tan|sec|csc|cot)h?|(?i:a(?:sin|cos|tan))|(?i:ln|log|exp))\\s*\\(");

  /** {@code \log(x, b)} (sympy's base argument) as {@code \log_{b}(x)}. */
  private static String logBases(String s) {
    int at = s.indexOf("\\log(");
    while (at >= 0) {
      int open = at + 4;
      int close = MathEquivalence.matchingClose(s, open);
      List<String> args = close < 0 ? List.of() : MathEquivalence.splitTop(s.substring(open + 1, close), ",");
      if (args.size() == 2) {
        s = s.substring(0, at) + "\\log_{" + args.get(1).strip() + "}(" + args.get(0) + ")" + s.substring(close + 1);
      }
      at = s.indexOf("\\log(", at + 1);
    }
    return s;
  }

  /** Plain-text {@code sqrt(x)} (as programs and some models write it) as {@code \sqrt{x}}. */
  static String plainFunctions(String s) {
    java.util.regex.Matcher m = PLAIN_SQRT.matcher(s);
    if (!m.find()) {
      return s;
    }
    int open = m.end() - 1;
    int depth = 0;
    for (int i = open; i < s.length(); i++) {
      char c = s.charAt(i);
      depth += c == '(' ? 1 : c == ')' ? -1 : 0;
      if (depth == 0) {
        return plainFunctions(s.substring(0, m.start()) + "\\sqrt{" + s.substring(open + 1, i) + "}"
            + s.substring(i + 1));
      }
    }
    return s;
  }

  /** The EvalEx infix form (for messages and tests). */
  public String infix() {
    return infix;
  }

  /** The LaTeX variable names, in order of appearance. */
  public List<String> variables() {
    return List.copyOf(variables.keySet());
  }

  /** Whether a decimal literal (like {@code 0.33}) appears: such answers compare with a tolerance. */
  public boolean hasDecimal() {
    return hasDecimal;
  }

  /** The exact rational value when there are only numbers, + - * / and integer powers. */
  public Optional<BigFraction> exact() {
    try {
      return Optional.ofNullable(rational(ast));
    } catch (ArithmeticException e) {
      return Optional.empty();
    }
  }

  private static BigFraction rational(ASTNode node) {
    Token token = node.getToken();
    List<ASTNode> p = node.getParameters();
    switch (token.getType()) {
      case NUMBER_LITERAL -> {
        BigDecimal d = new BigDecimal(token.getValue());
        return d.scale() <= 0 ? BigFraction.of(d.toBigIntegerExact())
            : BigFraction.of(d.unscaledValue(), BigInteger.TEN.pow(d.scale()));
      }
      case PREFIX_OPERATOR -> {
        BigFraction v = rational(p.get(0));
        if (v == null) {
          return null;
        }
        return token.getValue().equals("-") ? v.negate() : v;
      }
      case INFIX_OPERATOR -> {
        BigFraction a = rational(p.get(0));
        BigFraction b = a == null ? null : rational(p.get(1));
        if (b == null) {
          return null;
        }
        switch (token.getValue()) {
          case "+" -> {
            return a.add(b);
          }
          case "-" -> {
            return a.subtract(b);
          }
          case "*" -> {
            return a.multiply(b);
          }
          case "/" -> {
            return b.signum() == 0 ? null : a.divide(b);
          }
          case "^" -> {
            if (!b.getDenominator().equals(BigInteger.ONE) || b.getNumerator().abs().compareTo(
                BigInteger.valueOf(256)) > 0) {
              return null;
            }
            int e = b.getNumerator().intValue();
            if (e < 0 && a.signum() == 0) {
              return null;
            }
            // ((9^256)^256)^256 would take seconds of exact arithmetic: past ~100k bits, numbers are compared
            // numerically instead
            long bits = Math.max(a.getNumerator().bitLength(), a.getDenominator().bitLength());
            if (bits * Math.abs((long) e) > 100_000) {
              return null;
            }
            return e >= 0 ? a.pow(e) : a.pow(-e).reciprocal();
          }
          default -> {
            return null;
          }
        }
      }
      default -> {
        return null;
      }
    }
  }

  /**
   * The value with {@code values} for the variables (by LaTeX name; a missing one is 0), or a non-finite number when
   * it cannot be evaluated there (a root of a negative number, a division by zero, an overflow).
   */
  public double evaluate(Map<String, Double> values) {
    return numeric(ast, byEvalExName(values));
  }

  /** The values keyed by the variables' EvalEx names, as the parse tree names them (a missing one is 0). */
  private Map<String, Double> byEvalExName(Map<String, Double> values) {
    Map<String, Double> byName = new java.util.HashMap<>();
    for (Map.Entry<String, String> v : variables.entrySet()) {
      byName.put(v.getValue(), values.getOrDefault(v.getKey(), 0.0));
    }
    return byName;
  }

  private static double numeric(ASTNode node, Map<String, Double> values) {
    Token token = node.getToken();
    List<ASTNode> p = node.getParameters();
    String v = token.getValue();
    return switch (token.getType()) {
      case NUMBER_LITERAL -> Double.parseDouble(v);
      case VARIABLE_OR_CONSTANT -> switch (v) {
        case "PI" -> Math.PI;
        case "E" -> Math.E;
        default -> values.getOrDefault(v, Double.NaN);
      };
      case PREFIX_OPERATOR -> v.equals("-") ? -numeric(p.get(0), values)
          : v.equals("+") ? numeric(p.get(0), values) : Double.NaN;
      case INFIX_OPERATOR -> infix(v, numeric(p.get(0), values), numeric(p.get(1), values));
      case FUNCTION -> p.size() == 1 ? call(v, numeric(p.get(0), values)) : Double.NaN;
      default -> Double.NaN;
    };
  }

  private static double infix(String op, double a, double b) {
    return switch (op) {
      case "+" -> a + b;
      case "-" -> a - b;
      case "*" -> a * b;
      case "/" -> a / b;
      case "^" -> Math.pow(a, b);
      default -> Double.NaN;
    };
  }

  /** The functions the translator writes ({@link #FUNCTIONS}, SQRT, ABS), in radians. */
  private static double call(String name, double x) {
    return switch (name.toUpperCase(java.util.Locale.ROOT)) {
      case "SQRT" -> Math.sqrt(x);
      case "ABS" -> Math.abs(x);
      case "SINR" -> Math.sin(x);
      case "COSR" -> Math.cos(x);
      case "TANR" -> Math.tan(x);
      case "SECR" -> 1 / Math.cos(x);
      case "CSCR" -> 1 / Math.sin(x);
      case "COTR" -> 1 / Math.tan(x);
      case "ASINR" -> Math.asin(x);
      case "ACOSR" -> Math.acos(x);
      case "ATANR" -> Math.atan(x);
      case "LOG" -> x > 0 ? Math.log(x) : Double.NaN;
      case "SINH" -> Math.sinh(x);
      case "COSH" -> Math.cosh(x);
      case "TANH" -> Math.tanh(x);
      default -> Double.NaN;
    };
  }

  /** Whether the imaginary unit appears: a lone {@code i} (a subscripted {@code a_i} is a name of its own). */
  public boolean hasImaginaryUnit() {
    return variables.containsKey("i");
  }

  /**
   * The value as a complex number {@code {re, im}} with {@code i} the imaginary unit and {@code values} for the other
   * variables (principal roots and logarithms); NaN parts where it cannot be evaluated.
   */
  public double[] evaluateComplex(Map<String, Double> values) {
    return Complex.of(ast, byEvalExName(values), variables.get("i"));
  }

  /** Complex arithmetic over the parse tree, for answers with the imaginary unit ({@code i(2-i)} is {@code 1+2i}). */
  private static final class Complex {
    private static final double[] UNDEFINED = {Double.NaN, Double.NaN};

    static double[] of(ASTNode node, Map<String, Double> values, String unit) {
      Token token = node.getToken();
      List<ASTNode> p = node.getParameters();
      String v = token.getValue();
      return switch (token.getType()) {
        case NUMBER_LITERAL -> new double[] {Double.parseDouble(v), 0};
        case VARIABLE_OR_CONSTANT -> v.equals(unit) ? new double[] {0, 1} : new double[] {switch (v) {
          case "PI" -> Math.PI;
          case "E" -> Math.E;
          default -> values.getOrDefault(v, Double.NaN);
        }, 0};
        case PREFIX_OPERATOR -> {
          double[] a = of(p.get(0), values, unit);
          yield v.equals("-") ? new double[] {-a[0], -a[1]} : v.equals("+") ? a : UNDEFINED;
        }
        case INFIX_OPERATOR -> infix(v, of(p.get(0), values, unit), of(p.get(1), values, unit));
        case FUNCTION -> p.size() == 1 ? call(v, of(p.get(0), values, unit)) : UNDEFINED;
        default -> UNDEFINED;
      };
    }

    private static double[] infix(String op, double[] a, double[] b) {
      return switch (op) {
        case "+" -> new double[] {a[0] + b[0], a[1] + b[1]};
        case "-" -> new double[] {a[0] - b[0], a[1] - b[1]};
        case "*" -> mul(a, b);
        case "/" -> div(a, b);
        case "^" -> pow(a, b);
        default -> UNDEFINED;
      };
    }

    private static double[] mul(double[] a, double[] b) {
      return new double[] {a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]};
    }

    private static double[] div(double[] a, double[] b) {
      double d = b[0] * b[0] + b[1] * b[1];
      return new double[] {(a[0] * b[0] + a[1] * b[1]) / d, (a[1] * b[0] - a[0] * b[1]) / d};
    }

    /** Integer powers by repeated squaring (i^2 is exactly -1), others as exp(b log a). */
    private static double[] pow(double[] a, double[] b) {
      if (b[1] == 0 && b[0] == Math.rint(b[0]) && Math.abs(b[0]) <= 1024) {
        if (a[1] == 0) {
          return new double[] {Math.pow(a[0], b[0]), 0};
        }
        double[] out = {1, 0};
        double[] square = a;
        for (int e = Math.abs((int) b[0]); e > 0; e >>= 1) {
          if ((e & 1) == 1) {
            out = mul(out, square);
          }
          square = mul(square, square);
        }
        return b[0] < 0 ? div(new double[] {1, 0}, out) : out;
      }
      if (a[1] == 0 && b[1] == 0 && a[0] >= 0) {
        return new double[] {Math.pow(a[0], b[0]), 0};
      }
      if (a[0] == 0 && a[1] == 0) {
        return b[0] > 0 ? new double[] {0, 0} : UNDEFINED;
      }
      return exp(mul(b, log(a)));
    }

    /** The principal logarithm: a negative zero imaginary part counts as zero (ln(-1) is i pi, not -i pi). */
    private static double[] log(double[] a) {
      return new double[] {Math.log(Math.hypot(a[0], a[1])), Math.atan2(a[1] == 0 ? 0.0 : a[1], a[0])};
    }

    private static double[] exp(double[] a) {
      double r = Math.exp(a[0]);
      return new double[] {r * Math.cos(a[1]), r * Math.sin(a[1])};
    }

    private static double[] call(String name, double[] z) {
      String n = name.toUpperCase(java.util.Locale.ROOT);
      if (z[1] == 0 && !n.equals("SQRT") && !n.equals("LOG")) {
        return new double[] {LatexExpression.call(n, z[0]), 0};
      }
      return switch (n) {
        case "SQRT" -> { // principal root
          double r = Math.hypot(z[0], z[1]);
          double re = Math.sqrt((r + z[0]) / 2);
          double im = z[1] < 0 ? -Math.sqrt((r - z[0]) / 2) : Math.sqrt((r - z[0]) / 2); // -0 as +0
          yield new double[] {re, im};
        }
        case "ABS" -> new double[] {Math.hypot(z[0], z[1]), 0};
        case "LOG" -> z[0] == 0 && z[1] == 0 ? UNDEFINED : log(z);
        case "SINR" -> new double[] {Math.sin(z[0]) * Math.cosh(z[1]), Math.cos(z[0]) * Math.sinh(z[1])};
        case "COSR" -> new double[] {Math.cos(z[0]) * Math.cosh(z[1]), -Math.sin(z[0]) * Math.sinh(z[1])};
        default -> UNDEFINED;
      };
    }
  }

  /** LaTeX to EvalEx infix, inserting explicit multiplication. */
  private static final class Translator {
    private final String s;
    private int pos;
    final Map<String, String> variables = new LinkedHashMap<>();
    boolean hasDecimal;

    Translator(String s) {
      this.s = s;
    }

    String translate() {
      String out = sequence(-1);
      if (pos < s.length()) {
        throw new IllegalArgumentException("unexpected " + s.charAt(pos));
      }
      return out;
    }

    /** Translates until the closing character {@code until} (not consumed) or the end. */
    private String sequence(int until) {
      StringBuilder out = new StringBuilder();
      boolean operand = false; // whether the output ends with an operand (for implicit multiplication)
      while (pos < s.length()) {
        char c = s.charAt(pos);
        if (c == until) {
          return out.toString();
        }
        if (Character.isWhitespace(c)) {
          pos++;
          continue;
        }
        if (c == '+' || c == '-' || c == '*' || c == '/') {
          out.append(c);
          pos++;
          operand = false;
          continue;
        }
        if (c == '^') {
          if (!operand) {
            throw new IllegalArgumentException("^ without base");
          }
          pos++;
          out.append("^(").append(exponent()).append(')');
          continue;
        }
        if (c == '_') {
          throw new IllegalArgumentException("subscript on a non-variable");
        }
        String atom = atom();
        if (operand) {
          out.append('*');
        }
        out.append(atom);
        operand = true;
      }
      if (until >= 0) {
        throw new IllegalArgumentException("missing " + (char) until);
      }
      return out.toString();
    }

    /** One operand. */
    private String atom() {
      char c = s.charAt(pos);
      if (isAsciiDigit(c) || c == '.') {
        int start = pos;
        while (pos < s.length() && (isAsciiDigit(s.charAt(pos)) || s.charAt(pos) == '.')) {
          pos++;
        }
        String num = s.substring(start, pos);
        if (num.indexOf('.') != num.lastIndexOf('.') || num.equals(".")) {
          throw new IllegalArgumentException("bad number " + num);
        }
        if (num.contains(".")) {
          hasDecimal = true;
        }
        return num.startsWith(".") ? "0" + num : num.endsWith(".") ? num.substring(0, num.length() - 1) : num;
      }
      if (c == '(' || c == '[' || c == '{') {
        char close = c == '(' ? ')' : c == '[' ? ']' : '}';
        pos++;
        String inner = sequence(close);
        pos++;
        if (inner.isBlank()) {
          throw new IllegalArgumentException("empty group");
        }
        return "(" + inner + ")";
      }
      if (Character.isLetter(c) && c < 128) {
        pos++;
        return variable(String.valueOf(c));
      }
      if (c == '|') { // |x|
        pos++;
        String inner = sequence('|');
        pos++;
        if (inner.isBlank()) {
          throw new IllegalArgumentException("empty absolute value");
        }
        return "ABS(" + inner + ")";
      }
      if (c == '\\') {
        int start = ++pos;
        while (pos < s.length() && Character.isLetter(s.charAt(pos))) {
          pos++;
        }
        String cmd = s.substring(start, pos);
        if (cmd.isEmpty()) {
          throw new IllegalArgumentException("bad command");
        }
        switch (cmd) {
          case "frac" -> { // \frac{1}{2}, \frac{1}2, \frac12
            String a = argument();
            String b = argument();
            return "((" + a + ")/(" + b + "))";
          }
          case "sqrt" -> {
            skipSpaces();
            if (pos < s.length() && s.charAt(pos) == '[') {
              pos++;
              String n = sequence(']');
              pos++;
              return "((" + argument() + ")^(1/(" + n + ")))";
            }
            return "SQRT(" + argument() + ")";
          }
          case "pi" -> {
            return "PI";
          }

          case "exp" -> {
            return "(E^(" + argument() + "))";
          }
          default -> {
            if (FUNCTIONS.containsKey(cmd)) {
              return function(FUNCTIONS.get(cmd));
            }
            if (GREEK.contains(cmd)) {
              return variable("\\" + cmd);
            }
            if (WRAPPERS.contains(cmd)) {
              String inner = rawGroup();
              if (!inner.matches("[A-Za-z]+")) {
                throw new IllegalArgumentException("unsupported wrapped content");
              }
              return variable("\\" + cmd + "{" + inner + "}");
            }
            throw new IllegalArgumentException("unsupported \\" + cmd);
          }
        }
      }
      throw new IllegalArgumentException("unsupported character " + c);
    }

    private String function(String name) {
      skipSpaces();
      if (name.equals("LOG") && pos < s.length() && s.charAt(pos) == '_') { // log_b x = ln x / ln b
        pos++;
        String base = argument();
        return "(" + function(name) + "/LOG(" + base + "))";
      }
      String power = null;
      if (pos < s.length() && s.charAt(pos) == '^') {
        pos++;
        power = argument();
      }
      String arg = exponent(); // a whole number: \ln 10 is the log of 10
      String call = name + "(" + arg + ")";
      return power == null ? call : "((" + call + ")^(" + power + "))";
    }

    /** A variable with an optional subscript; {@code e} alone (or {@code \mathrm{e}}) is Euler's number. */
    private String variable(String base) {
      String name = base;
      skipSpaces();
      if (pos < s.length() && s.charAt(pos) == '_') {
        pos++;
        skipSpaces();
        name = base + "_" + rawArgument();
      }
      if (EULER.contains(name)) {
        return "E";
      }
      return variables.computeIfAbsent(name, k -> "V" + variables.size());
    }

    /** {@code {...}} translated. */
    private String group() {
      skipSpaces();
      if (pos >= s.length() || s.charAt(pos) != '{') {
        throw new IllegalArgumentException("expected {");
      }
      pos++;
      String inner = sequence('}');
      pos++;
      if (inner.isBlank()) {
        throw new IllegalArgumentException("empty group");
      }
      return inner;
    }

    /** The argument of ^, \sqrt or a function: a group, or one token. */
    private String argument() {
      skipSpaces();
      if (pos >= s.length()) {
        throw new IllegalArgumentException("missing argument");
      }
      char c = s.charAt(pos);
      if (c == '{') {
        return group();
      }
      if (isAsciiDigit(c)) {
        pos++;
        return String.valueOf(c);
      }
      if (c == '-' ) {
        pos++;
        return "-" + argument();
      }
      return atom();
    }

    /** 0-9 only: {@code Character.isDigit} takes full-width and Arabic-Indic digits, which no parser reads. */
    private static boolean isAsciiDigit(char c) {
      return c >= '0' && c <= '9';
    }

    /**
     * The exponent after {@code ^} or a function's argument: an argument, but an unbraced number whole, sign and
     * decimals included ({@code 2^10} is 1024 and {@code 10^-12} a millionth of a millionth, as they are meant in
     * plain text, not 2^1 0 as LaTeX would set it; {@code \ln 10.5}).
     */
    private String exponent() {
      skipSpaces();
      java.util.regex.Matcher m = UNBRACED_NUMBER.matcher(s).region(pos, s.length());
      if (m.lookingAt() && (m.group().length() > 1)) {
        pos = m.end();
        hasDecimal |= m.group().indexOf('.') >= 0;
        return "(" + m.group() + ")";
      }
      return argument();
    }

    /** {@code {...}} or one character, untranslated (subscripts, wrapped names). */
    private String rawArgument() {
      if (pos < s.length() && s.charAt(pos) == '{') {
        return rawGroup();
      }
      if (pos >= s.length()) {
        throw new IllegalArgumentException("missing subscript");
      }
      return String.valueOf(s.charAt(pos++));
    }

    private String rawGroup() {
      skipSpaces();
      if (pos >= s.length() || s.charAt(pos) != '{') {
        throw new IllegalArgumentException("expected {");
      }
      int close = MathNormalizer.matchingBrace(s, pos);
      if (close < 0) {
        throw new IllegalArgumentException("unbalanced");
      }
      String inner = s.substring(pos + 1, close).replace(" ", "");
      pos = close + 1;
      return inner;
    }

    private void skipSpaces() {
      while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
        pos++;
      }
    }
  }
}
