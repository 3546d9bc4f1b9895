package dev.nucleon.reward.verify;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.TestData;
import dev.nucleon.reward.verify.CountdownReward.Verdict;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.commons.numbers.fraction.Fraction;
import org.junit.jupiter.api.Test;

class CountdownRewardTest {

  private final RewardFunction reward = new CountdownReward.Factory().create(ConfigFactory.empty());

  /** Expression text and its exact value, built by the test's own brute-force search. */
  private record Expr(String text, Fraction value) {}

  /** Some equation using every number once that reaches the target, or null. */
  static String solve(List<Integer> numbers, int target) {
    List<Expr> start = new ArrayList<>();
    for (int n : numbers) {
      start.add(new Expr(Integer.toString(n), Fraction.of(n)));
    }
    return search(start, Fraction.of(target));
  }

  private static String search(List<Expr> items, Fraction target) {
    if (items.size() == 1) {
      return items.get(0).value().equals(target) ? items.get(0).text() : null;
    }
    for (int i = 0; i < items.size(); i++) {
      for (int j = 0; j < items.size(); j++) {
        if (i == j) {
          continue;
        }
        Expr a = items.get(i);
        Expr b = items.get(j);
        List<Expr> combos = new ArrayList<>();
        combos.add(new Expr("(" + a.text() + " + " + b.text() + ")", a.value().add(b.value())));
        combos.add(new Expr("(" + a.text() + " - " + b.text() + ")", a.value().subtract(b.value())));
        combos.add(new Expr("(" + a.text() + " * " + b.text() + ")", a.value().multiply(b.value())));
        if (!b.value().isZero()) {
          combos.add(new Expr("(" + a.text() + " / " + b.text() + ")", a.value().divide(b.value())));
        }
        for (Expr c : combos) {
          List<Expr> rest = new ArrayList<>();
          for (int k = 0; k < items.size(); k++) {
            if (k != i && k != j) {
              rest.add(items.get(k));
            }
          }
          rest.add(c);
          String found = search(rest, target);
          if (found != null) {
            return found;
          }
        }
      }
    }
    return null;
  }

  private RewardResult score(String completion, String numbers, String target) {
    return reward.scoreOne(new RewardRequest("", completion, null, target, Map.of("numbers", numbers)));
  }

  @Test
  void theTasksOfD1ScoreOneForACorrectEquationAndZeroForEveryKindOfWrongOne() {
    List<JsonNode> tasks = TestData.jsonl("countdown/countdown_cd3_test.jsonl");
    assertEquals(256, tasks.size());
    int checked = 0;
    for (JsonNode task : tasks) {
      String numbers = task.get("input").asText();
      String target = task.get("output").asText();
      List<Integer> nums = new ArrayList<>();
      for (String n : numbers.split(",")) {
        nums.add(Integer.parseInt(n.trim()));
      }
      String equation = solve(nums, Integer.parseInt(target));
      assertNotNull(equation, "the test's search found no equation for " + numbers + " -> " + target);
      String where = numbers + " -> " + target + " with " + equation;
      assertEquals(1.0, score("<think>try things</think>\n<answer>" + equation + "</answer>", numbers, target)
          .reward(), where);
      assertEquals(1.0, score("Let me see.\n" + equation + " = " + target + "\n", numbers, target).reward(), where);

      // wrong use of numbers: one used twice, one missing, an extra number
      String first = Integer.toString(nums.get(0));
      assertEquals(0.0, score("<answer>" + equation + " + " + first + " - " + first + "</answer>", numbers, target)
          .reward(), where);
      assertEquals(0.0, score("<answer>" + nums.get(0) + " + " + nums.get(1) + "</answer>", numbers, target)
          .reward(), where);
      // a wrong result: the right numbers, another value
      assertEquals(0.0, score("<answer>(" + equation + ") + 0 * 1</answer>", numbers, target).reward(), where);
      assertEquals(0.0, score("<answer>" + equation + "</answer>", numbers,
          Integer.toString(Integer.parseInt(target) + 1)).reward(), where);
      // division by zero, with every number used once
      assertEquals(0.0, score("<answer>" + nums.get(0) + " / (" + nums.get(1) + " - " + nums.get(1) + ") + "
          + nums.get(2) + "</answer>", numbers, target).reward(), where);
      // garbage
      assertEquals(0.0, score("<answer>" + equation.replace("(", "[") + "</answer>", numbers, target).reward());
      assertEquals(0.0, score("I cannot solve this", numbers, target).reward());
      assertEquals(0.0, score("", numbers, target).reward());
      checked++;
    }
    assertEquals(256, checked);
  }

  @Test
  void verdictsNameWhatWasWrong() {
    List<BigInteger> n = List.of(BigInteger.valueOf(30), BigInteger.valueOf(100), BigInteger.valueOf(93));
    BigInteger t = BigInteger.valueOf(23);
    assertEquals(Verdict.CORRECT, CountdownReward.judge("30 - (100 - 93)", n, t));
    assertEquals(Verdict.CORRECT, CountdownReward.judge("30 − (100 − 93)", n, t));
    assertEquals(Verdict.WRONG_NUMBERS, CountdownReward.judge("30 - (100 - 93) + 0", n, t));
    assertEquals(Verdict.WRONG_NUMBERS, CountdownReward.judge("30 - 7", n, t));
    assertEquals(Verdict.WRONG_RESULT, CountdownReward.judge("30 + 100 - 93", n, t));
    assertEquals(Verdict.DIVISION_BY_ZERO, CountdownReward.judge("30 / (100 - 100) + 93", n, t));
    assertEquals(Verdict.NO_EQUATION, CountdownReward.judge("-30 + 100 - 93", n, t));
    assertEquals(Verdict.NO_EQUATION, CountdownReward.judge("30 - (100 - 93", n, t));
    assertEquals(Verdict.NO_EQUATION, CountdownReward.judge("30 ** 100 / 93", n, t));
    assertEquals(Verdict.NO_EQUATION, CountdownReward.judge("x + 1", n, t));
    // exact arithmetic: 1/3 * 3 is exactly 1
    List<BigInteger> m = List.of(BigInteger.ONE, BigInteger.valueOf(3), BigInteger.valueOf(3));
    assertEquals(Verdict.CORRECT, CountdownReward.judge("1 / 3 * 3", m, BigInteger.ONE.add(BigInteger.ZERO)));
  }

  @Test
  void formatRewardAndComponents() {
    RewardFunction tiny = new CountdownReward.Factory().create(ConfigFactory.parseString("format-reward = 0.1"));
    RewardResult wrong = tiny.scoreOne(new RewardRequest("", "<answer>30 + 100 - 93</answer>", null, "23",
        Map.of("numbers", "30 100 93")));
    assertEquals(0.1, wrong.reward(), 1e-12);
    assertEquals(Map.of("format", 1.0, "correct", 0.0), wrong.components());
    RewardResult target = tiny.scoreOne(new RewardRequest("", "<answer>30 - (100 - 93)</answer>", null, "",
        Map.of("numbers", "[30, 100, 93]", "target", "23")));
    assertEquals(1.0, target.reward());
  }

  @Test
  void missingNumbersAreAnError() {
    IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> reward.scoreOne(RewardRequest.of("1+2", "3")));
    assertTrue(e.getMessage().contains("metadata field 'numbers'"), e.getMessage());
  }
}
