package dev.nucleon.rollout.tools;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.List;
import java.util.Map;
import org.apache.commons.numbers.fraction.BigFraction;

/**
 * Exact arithmetic: {@code + - * /}, integer powers {@code ^}, parentheses and decimals, evaluated over rational
 * numbers (no rounding: {@code 1/3*3} is {@code 1}). The result is an integer, or a fraction with its decimal value
 * to 12 significant digits ({@code 1/3 = 0.333333333333}).
 */
public final class CalculatorTool implements Tool {

  /** Longest expression, largest exponent and largest result (in bits) a call may ask for. */
  static final int MAX_LENGTH = 1000;
  static final int MAX_EXPONENT = 1000;
  static final int MAX_BITS = 10_000;

  @Override
  public String name() {
    return "calculator";
  }

  @Override
  public String description() {
    return "Evaluates an arithmetic expression exactly: + - * / ^ (integer powers), parentheses, decimals.";
  }

  @Override
  public Map<String, Object> parameters() {
    return Map.of("type", "object", "properties", Map.of("expression", Map.of("type", "string",
        "description", "The expression, e.g. (12 + 30) * 7 / 3")), "required", List.of("expression"));
  }

  @Override
  public String call(JsonNode arguments) {
    JsonNode e = arguments.get("expression");
    if (e == null || !e.isTextual()) {
      throw new IllegalArgumentException("calculator takes {\"expression\": \"...\"}, got " + arguments);
    }
    return format(evaluate(e.asText()));
  }

  /** The exact value of an expression; throws IllegalArgumentException naming what is wrong and where. */
  public static BigFraction evaluate(String expression) {
    if (expression.length() > MAX_LENGTH) {
      throw new IllegalArgumentException("expression longer than " + MAX_LENGTH + " characters");
    }
    Parser p = new Parser(expression);
    BigFraction v = p.sum(0);
    p.skip();
    if (p.at < expression.length()) {
      throw new IllegalArgumentException("unexpected '" + expression.charAt(p.at) + "' at " + (p.at + 1));
    }
    return v;
  }

  static String format(BigFraction v) {
    if (v.getDenominator().equals(BigInteger.ONE)) {
      return v.getNumerator().toString();
    }
    BigDecimal d = new BigDecimal(v.getNumerator()).divide(new BigDecimal(v.getDenominator()),
        new java.math.MathContext(12));
    return v.getNumerator() + "/" + v.getDenominator() + " = " + d.stripTrailingZeros().toPlainString();
  }

  /** Recursive descent: sum := product (('+'|'-') product)*; product := power (('*'|'/') power)*; ... */
  private static final class Parser {
    private final String s;
    private int at;

    Parser(String s) {
      this.s = s;
    }

    void skip() {
      while (at < s.length() && Character.isWhitespace(s.charAt(at))) {
        at++;
      }
    }

    boolean eat(char c) {
      skip();
      if (at < s.length() && s.charAt(at) == c) {
        at++;
        return true;
      }
      return false;
    }

    BigFraction sum(int depth) {
      if (depth > 100) {
        throw new IllegalArgumentException("parentheses nested more than 100 deep");
      }
      BigFraction v = product(depth);
      while (true) {
        if (eat('+')) {
          v = checked(v.add(product(depth)));
        } else if (eat('-')) {
          v = checked(v.subtract(product(depth)));
        } else {
          return v;
        }
      }
    }

    BigFraction product(int depth) {
      BigFraction v = unary(depth);
      while (true) {
        if (eat('*')) {
          v = checked(v.multiply(unary(depth)));
        } else if (eat('/')) {
          int where = at;
          BigFraction d = unary(depth);
          if (d.signum() == 0) {
            throw new IllegalArgumentException("division by zero at " + where);
          }
          v = checked(v.divide(d));
        } else {
          return v;
        }
      }
    }

    /** primary ('^' unary)?: right-associative, and binds tighter than a leading minus ({@code -2^2 = -4}). */
    BigFraction power(int depth) {
      BigFraction base = primary(depth);
      if (eat('^')) {
        int where = at;
        BigFraction e = unary(depth);
        if (!e.getDenominator().equals(BigInteger.ONE) || e.getNumerator().abs().bitLength() > 31
            || e.getNumerator().abs().intValue() > MAX_EXPONENT) {
          throw new IllegalArgumentException("the exponent at " + where + " must be an integer of at most "
              + MAX_EXPONENT + ", got " + format(e));
        }
        int n = e.getNumerator().intValue();
        long bits = (long) Math.max(base.getNumerator().bitLength(), base.getDenominator().bitLength())
            * Math.abs(n);
        if (bits > MAX_BITS) {
          throw new IllegalArgumentException("the result has more than " + MAX_BITS + " bits");
        }
        if (n < 0 && base.signum() == 0) {
          throw new IllegalArgumentException("division by zero: 0 to a negative power at " + where);
        }
        return checked(base.pow(n));
      }
      return base;
    }

    BigFraction unary(int depth) {
      if (depth > 1000) {
        throw new IllegalArgumentException("signs nested too deep");
      }
      if (eat('-')) {
        return unary(depth + 1).negate();
      }
      if (eat('+')) {
        return unary(depth + 1);
      }
      return power(depth);
    }

    BigFraction primary(int depth) {
      if (eat('(')) {
        BigFraction v = sum(depth + 1);
        if (!eat(')')) {
          throw new IllegalArgumentException("missing ')' at " + (at + 1));
        }
        return v;
      }
      skip();
      int start = at;
      while (at < s.length() && (Character.isDigit(s.charAt(at)) || s.charAt(at) == '.')) {
        at++;
      }
      if (start == at) {
        throw new IllegalArgumentException(at < s.length() ? "unexpected '" + s.charAt(at) + "' at " + (at + 1)
            : "the expression ends too early");
      }
      try {
        BigDecimal d = new BigDecimal(s.substring(start, at));
        return d.scale() >= 0 ? BigFraction.of(d.unscaledValue(), BigInteger.TEN.pow(d.scale()))
            : BigFraction.of(d.unscaledValue().multiply(BigInteger.TEN.pow(-d.scale())));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("'" + s.substring(start, at) + "' at " + (start + 1) + " is no number");
      }
    }

    private static BigFraction checked(BigFraction v) {
      if (Thread.currentThread().isInterrupted()) {
        throw new IllegalArgumentException("interrupted (the call ran past its timeout)");
      }
      if (v.getNumerator().bitLength() > MAX_BITS || v.getDenominator().bitLength() > MAX_BITS) {
        throw new IllegalArgumentException("the result has more than " + MAX_BITS + " bits");
      }
      return v;
    }
  }
}
