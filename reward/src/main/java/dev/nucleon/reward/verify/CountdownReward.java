package dev.nucleon.reward.verify;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.AnswerTags;
import dev.nucleon.reward.ConfigValues;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.numbers.fraction.BigFraction;

/**
 * The Countdown game (as in TinyZero and d1): combine the given numbers with + - * / and parentheses to reach the
 * target.
 *
 * <ol>
 *   <li>Take the equation: the content of the last {@code <answer>...</answer>}, else the last non-empty line. If it
 *       contains {@code =}, the part before the first {@code =} is the equation (what follows is ignored).
 *   <li>Parse it with a strict grammar: non-negative integer literals, binary + - * / ({@code ×} and {@code ÷} too),
 *       parentheses; anything else (unary minus, decimals, letters, exponentiation) is not an equation.
 *   <li>The multiset of literals must equal the multiset of given numbers (each used exactly once).
 *   <li>Evaluate with exact rationals; division by zero is not an equation. The value must equal the target exactly.
 * </ol>
 *
 * <p>Reward: {@code correct-reward} when all holds, {@code format-reward} for a well-formed equation that breaks a
 * rule or misses the target, 0 when no equation can be read. Components: {@code format} (1 when an equation was
 * parsed) and {@code correct}.
 *
 * <p>The numbers come from the request's metadata field {@code numbers-field} (comma or space separated); the target
 * from the metadata field {@code target-field}, else from the ground truth.
 */
public final class CountdownReward implements RewardFunction {

  private final String numbersField;
  private final String targetField;
  private final double correctReward;
  private final double formatReward;

  public CountdownReward(String numbersField, String targetField, double correctReward, double formatReward) {
    this.numbersField = numbersField;
    this.targetField = targetField;
    this.correctReward = correctReward;
    this.formatReward = formatReward;
  }

  /** Why an equation was rejected, or that it is right. */
  public enum Verdict {
    CORRECT,
    NO_EQUATION,
    WRONG_NUMBERS,
    DIVISION_BY_ZERO,
    WRONG_RESULT
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    List<BigInteger> numbers = numbers(request);
    BigInteger target = target(request);
    Verdict verdict = judge(equation(request.completion()), numbers, target);
    double format = verdict == Verdict.NO_EQUATION ? 0.0 : 1.0;
    double correct = verdict == Verdict.CORRECT ? 1.0 : 0.0;
    double reward = correct == 1.0 ? correctReward : format * formatReward;
    Map<String, Double> components = new LinkedHashMap<>();
    components.put("format", format);
    components.put("correct", correct);
    return RewardResult.ok(reward, components);
  }

  private List<BigInteger> numbers(RewardRequest request) {
    String raw = request.metadata().get(numbersField);
    if (raw == null || raw.isBlank()) {
      throw new IllegalArgumentException("countdown needs the numbers in metadata field '" + numbersField + "'");
    }
    List<BigInteger> out = new ArrayList<>();
    for (String part : raw.replaceAll("[\\[\\]]", " ").trim().split("[,\\s]+")) {
      try {
        out.add(new BigInteger(part.trim()));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("countdown metadata '" + numbersField + "' is not a list of integers: '"
            + raw + "'");
      }
    }
    return out;
  }

  private BigInteger target(RewardRequest request) {
    String raw = request.metadata().getOrDefault(targetField, request.groundTruth());
    try {
      return new BigInteger(raw.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("countdown target (metadata '" + targetField
          + "' or ground truth) is not an integer: '" + raw + "'");
    }
  }

  /** The equation text in a completion: the last answer tags' content, else the last non-empty line. */
  public static String equation(String completion) {
    String text = AnswerTags.LAST.find(completion).orElse(null);
    if (text == null) {
      String[] lines = completion.split("\\R");
      text = "";
      for (int i = lines.length - 1; i >= 0; i--) {
        if (!lines[i].isBlank()) {
          text = lines[i];
          break;
        }
      }
    }
    int eq = text.indexOf('=');
    return (eq >= 0 ? text.substring(0, eq) : text).trim();
  }

  /** Judges one equation against the numbers and the target. */
  public static Verdict judge(String equation, List<BigInteger> numbers, BigInteger target) {
    Parser parser = new Parser(equation);
    BigFraction value;
    try {
      value = parser.parse();
    } catch (ArithmeticException e) {
      // the whole equation parsed, but a divisor was zero
      return Verdict.DIVISION_BY_ZERO;
    } catch (IllegalArgumentException e) {
      return Verdict.NO_EQUATION;
    }
    List<BigInteger> used = new ArrayList<>(parser.literals);
    List<BigInteger> given = new ArrayList<>(numbers);
    Collections.sort(used);
    Collections.sort(given);
    if (!used.equals(given)) {
      return Verdict.WRONG_NUMBERS;
    }
    return value.compareTo(BigFraction.of(target)) == 0 ? Verdict.CORRECT : Verdict.WRONG_RESULT;
  }

  /** Recursive descent over {@code expr := term (('+'|'-') term)*; term := atom (('*'|'/') atom)*}. */
  private static final class Parser {
    private final String s;
    private int pos;
    final List<BigInteger> literals = new ArrayList<>();
    boolean divisionByZero;

    Parser(String s) {
      this.s = s;
    }

    BigFraction parse() {
      if (s.isBlank()) {
        throw new IllegalArgumentException("empty");
      }
      BigFraction v = expr(0);
      skip();
      if (pos != s.length()) {
        throw new IllegalArgumentException("unexpected '" + s.charAt(pos) + "'");
      }
      if (divisionByZero) {
        throw new ArithmeticException("division by zero");
      }
      return v;
    }

    private BigFraction expr(int depth) {
      BigFraction v = term(depth);
      while (true) {
        skip();
        if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-' || s.charAt(pos) == '−')) {
          char op = s.charAt(pos++);
          BigFraction r = term(depth);
          v = op == '+' ? v.add(r) : v.subtract(r);
        } else {
          return v;
        }
      }
    }

    private BigFraction term(int depth) {
      BigFraction v = atom(depth);
      while (true) {
        skip();
        if (pos < s.length() && "*/×÷·".indexOf(s.charAt(pos)) >= 0) {
          char op = s.charAt(pos++);
          BigFraction r = atom(depth);
          if (op == '/' || op == '÷') {
            if (r.signum() == 0) {
              divisionByZero = true;
              v = BigFraction.ZERO;
            } else {
              v = v.divide(r);
            }
          } else {
            v = v.multiply(r);
          }
        } else {
          return v;
        }
      }
    }

    private BigFraction atom(int depth) {
      if (depth > 200) {
        throw new IllegalArgumentException("nested too deeply");
      }
      skip();
      if (pos >= s.length()) {
        throw new IllegalArgumentException("unexpected end");
      }
      char c = s.charAt(pos);
      if (c == '(') {
        pos++;
        BigFraction v = expr(depth + 1);
        skip();
        if (pos >= s.length() || s.charAt(pos) != ')') {
          throw new IllegalArgumentException("missing )");
        }
        pos++;
        return v;
      }
      if (c >= '0' && c <= '9') {
        int start = pos;
        while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
          pos++;
        }
        if (pos - start > 30) {
          throw new IllegalArgumentException("number too long");
        }
        BigInteger n = new BigInteger(s.substring(start, pos));
        literals.add(n);
        return BigFraction.of(n);
      }
      throw new IllegalArgumentException("unexpected '" + c + "'");
    }

    private void skip() {
      while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
        pos++;
      }
    }
  }

  /** {@code nucleon.reward.countdown { numbers-field, target-field, correct-reward, format-reward }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "countdown";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "countdown");
      return new CountdownReward(
          ConfigValues.string(c, "numbers-field"),
          ConfigValues.string(c, "target-field"),
          ConfigValues.finite(c, "correct-reward"),
          ConfigValues.finite(c, "format-reward"));
    }
  }
}
