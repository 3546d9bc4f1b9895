package dev.nucleon.reward.math;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.reward.TestData;
import dev.nucleon.reward.shape.FormatReward;
import dev.nucleon.reward.verify.Gsm8kReward;
import dev.nucleon.reward.verify.MatchReward;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Answer-grading cases written by other projects' tests (copied under data/verify with their licenses). Each case
 * is scored by the reward that imitates the grader it was written for, configured as that project called it.
 */
class VerifyCasesTest {

  private static final String R1_FORMAT = "^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>$";

  @Test
  void everyNormalizerCasePasses() {
    List<JsonNode> cases = TestData.jsonl("verify/normalize_cases.jsonl");
    assertEquals(9, cases.size());
    for (JsonNode c : cases) {
      assertEquals(c.get("expected_normalized").asText(), MathNormalizer.hendrycks(c.get("input").asText()),
          c.get("source").asText());
    }
  }

  /** The reward standing in for the grader named by a case's {@code verifier}. */
  private static RewardFunction rewardFor(String verifier) {
    if (verifier.startsWith("open-instruct PuzzleMatcherVerifier")) {
      return new MatchReward.Factory().create(ConfigFactory.empty());
    }
    if (verifier.startsWith("open-instruct GSM8KVerifier")) {
      return new Gsm8kReward.Factory().create(ConfigFactory.parseString("mode = flexible"));
    }
    if (verifier.startsWith("hendrycks is_equiv")) {
      // bare answers on both sides, compared as strings after strip_string: no extraction, lists in order
      return new MathReward.Factory().create(ConfigFactory.parseString("fallback = whole, list-order = ordered"));
    }
    if (verifier.startsWith("open-r1 accuracy_reward")) {
      return new MathReward.Factory().create(ConfigFactory.empty());
    }
    if (verifier.startsWith("open-r1 format_reward")) {
      return new FormatReward.Factory().create(ConfigFactory.empty()
          .withValue("template", ConfigFactory.parseString("t = \"\"").getValue("t"))
          .withValue("regex", ConfigFactory.parseMap(Map.of("r", R1_FORMAT)).getValue("r"))
          .withValue("match", ConfigFactory.parseString("m = prefix").getValue("m"))
          .withValue("flags", ConfigFactory.parseString("f = [dotall, multiline]").getValue("f")));
    }
    throw new IllegalStateException("no reward for verifier " + verifier);
  }

  @Test
  void everyGsm8kOpenInstructHendrycksAndOpenR1CasePasses() {
    List<JsonNode> cases = TestData.jsonl("verify/other_graders.jsonl");
    assertEquals(59, cases.size());
    Map<String, int[]> bySource = new LinkedHashMap<>();
    List<String> misses = new ArrayList<>();
    for (JsonNode c : cases) {
      String verifier = c.get("verifier").asText();
      RewardFunction reward = rewardFor(verifier);
      boolean expected = c.get("expected").asBoolean();
      double score = reward.scoreOne(RewardRequest.of(TestData.str(c, "response"), TestData.str(c, "gold")))
          .reward();
      String source = c.get("source").asText().replaceAll("@.*", "") + " / " + verifier.replaceAll(":.*", "");
      int[] tally = bySource.computeIfAbsent(source, k -> new int[2]);
      tally[1]++;
      if ((score == 1.0) == expected) {
        tally[0]++;
      } else {
        misses.add(c.get("source").asText() + ": response=" + c.get("response") + " gold=" + c.get("gold")
            + " expected " + expected + ", scored " + score);
      }
    }
    bySource.forEach((k, v) -> System.out.printf("verify agreement %-70s %d/%d%n", k, v[0], v[1]));
    assertTrue(misses.isEmpty(), String.join("\n", misses));
  }

  @Test
  void mathVerifyCasesAgreeAtLeastNinetyPercent() {
    List<JsonNode> cases = TestData.jsonl("verify/math_verify_visible.jsonl");
    assertEquals(146, cases.size());
    int agree = 0;
    List<String> misses = new ArrayList<>();
    for (int i = 0; i < cases.size(); i++) {
      JsonNode c = cases.get(i);
      String harness = c.get("harness").asText();
      String fallback;
      if (harness.contains("match_types=['expr']")) {
        fallback = "[last-number]";
      } else if (harness.contains("match_types=['latex']")) {
        fallback = "[last-latex]";
      } else {
        fallback = "[last-latex, last-number]"; // ['latex', 'expr'] and parse()'s defaults
      }
      int precision = 6;
      JsonNode params = c.get("params");
      if (params != null && params.has("precision")) {
        precision = params.get("precision").asInt();
      } else if (harness.contains("precision=5")) {
        precision = 5;
      }
      RewardFunction reward = new MathReward.Factory().create(ConfigFactory.parseString(
          "fallback = " + fallback + ", precision = " + precision));
      boolean expected = c.get("expected").asBoolean();
      double score = reward.scoreOne(RewardRequest.of(c.get("response").asText(), c.get("gold").asText())).reward();
      if ((score == 1.0) == expected) {
        agree++;
      } else {
        misses.add("#" + i + " " + c.get("source").asText().replaceAll(".*::", "") + ": expected " + expected
            + ", scored " + score + "\n    response=" + abbreviate(c.get("response").asText()) + "\n    gold="
            + abbreviate(c.get("gold").asText()) + "\n    reason: " + reason(c, expected));
      }
    }
    double rate = 100.0 * agree / cases.size();
    System.out.printf("verify agreement huggingface/Math-Verify (math_verify_visible.jsonl): %d/%d = %.1f%%%n", agree,
        cases.size(), rate);
    misses.forEach(m -> System.out.println("  miss " + m));
    assertTrue(rate >= 90.0, "agreement " + rate + "% < 90%:\n" + String.join("\n", misses));
  }

  /** Why a known miss misses (Math-Verify features this reward does not have). */
  private static String reason(JsonNode c, boolean expected) {
    String both = c.get("response").asText() + " " + c.get("gold").asText();
    if (both.contains("matrix}") && both.contains("+ \\begin")) {
      return "matrix arithmetic is not evaluated (Math-Verify uses sympy matrices)";
    }
    if (both.contains("W(") || both.contains("1orW")) {
      return "'or' glued to the next word, and function names on the left side (Math-Verify: sympy relations)";
    }
    if (both.contains("\\sum")) {
      return "sums are not evaluated";
    }
    return expected ? "not recognized as equivalent" : "wrongly accepted";
  }

  private static String abbreviate(String s) {
    String t = s.replace("\n", "\\n");
    return t.length() <= 160 ? t : t.substring(0, 70) + " ... " + t.substring(t.length() - 85);
  }
}
