package dev.nucleon.reward.math;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.reward.TestData;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The {@code math} reward against answer-grading cases from other graders' own tests (data/verify/graders_*.jsonl).
 * The first 479, from thirteen graders, were split by a hash of (response, gold) before any was looked at: the
 * development part (286) was used to improve the verifier, the held-out part (193) measured once (89.6%) and then
 * used for a second round of development. 140 more, from ten other graders, were gathered after that and scored
 * before any change (85.7%). Each case is scored the way its grader was called: graders of bare answers
 * ({@code math_equal}, {@code is_equiv}, {@code grade_answer}) take the whole response as the answer;
 * Math-Verify-style graders extract it (the last box, else the last LaTeX or number), with the precision the case
 * gives.
 */
class GraderCasesTest {

  /** The reward configured as the case's grader was called. */
  static RewardFunction rewardFor(JsonNode c) {
    String harness = c.path("harness").asText();
    String params = c.path("params").toString();
    // graders of bare answers: the whole response is the answer
    boolean bare = harness.matches("(?s)^(?:math_evaluation\\.is_equiv|is_equiv\\(|nemo_skills\\S*math_equal"
        + "|skythought\\S*math_equal|mindspeed_rl\\S*math_equal|tinker_cookbook\\S*grade_answer"
        + "|slime math_utils graders).*");
    // graders that only read a box: DAPO's strict-box mode, verl's grader, DeepScaleR's
    String fn = c.path("params").path("fn").asText("");
    boolean boxOnly = fn.contains("is_correct_strict_box") || fn.contains("grade_answer_verl")
        || fn.contains("deepscaler") || c.path("params").path("strict_box_verify").asBoolean(false);
    bare |= fn.contains("grade_answer_mathd") || fn.contains("grade_answer_sympy") || fn.contains("competition_math");
    // the third set: graders given an answer already extracted (reasoning-from-scratch's grade_answer and
    // equality_check, tunix's, CMPhysBench's SEED), and reasoning-from-scratch's RLVR reward, which needs a box
    bare |= fn.equals("reasoning_from_scratch.ch03.grade_answer")
        || fn.startsWith("reasoning_from_scratch.ch03.equality")
        || fn.startsWith("tunix.") || fn.startsWith("opencompass.datasets.cmphysbench");
    boxOnly |= fn.equals("reasoning_from_scratch.ch06.reward_rlvr");
    // the fourth set: graders of extracted answers (UGMathBench's and DeepSeek-Math's, PRM800K's grade_answer,
    // bonsai-fold's, Isaac Physics' checker of plain-text answers)
    boolean ugMath = fn.startsWith("sieval.community.ugmathbench.");
    bare |= ugMath || fn.startsWith("sieval.community.deepseek_math.") || fn.startsWith("bonsaifold.")
        || fn.equals("grader_utils.math_grader.grade_answer") || fn.equals("checker.maths.check");
    int precision = ugMath ? 3 : 6; // UGMathBench's default relative precision, 1e-3
    JsonNode p = c.path("params");
    if (p.has("precision") && p.get("precision").isIntegralNumber()) {
      precision = p.get("precision").asInt();
    } else if (p.has("precision") && p.get("precision").isNumber()) {
      precision = (int) Math.round(-Math.log10(p.get("precision").asDouble())); // a tolerance, 1e-3
    } else if (p.has("float_rounding") && p.get("float_rounding").isIntegralNumber()) {
      precision = p.get("float_rounding").asInt();
    }
    // graders comparing numbers with a relative tolerance of 1e-4 (is_close=True), or the one given
    if (harness.contains("is_close=True")) {
      precision = 4;
    } else if (p.has("tolerance") && p.get("tolerance").isNumber()) {
      precision = (int) Math.round(-Math.log10(p.get("tolerance").asDouble()));
    } else if (fn.contains("eval_protocol.rewards.math.math_reward")) {
      precision = 3; // its default relative tolerance, 0.001
    }
    // the fifth set: reasoning-gym's scorers, the edX formula grader (mitx) and NextThought's graders take the whole
    // answer; datatrove's reads the last box of both sides, rounded to 2 places (float_rounding above)
    boolean gym = fn.startsWith("reasoning_gym.");
    boolean mitx = fn.equals("mitxgraders.FormulaGrader");
    bare |= gym || mitx || fn.startsWith("nti.assessment.");
    boxOnly |= fn.startsWith("datatrove.");
    if (gym && p.has("rel_tol")) {
      precision = places(p.get("rel_tol").asDouble());
    } else if (gym && p.has("abs_tol")) {
      precision = relativePlaces(p.get("abs_tol").asDouble(), TestData.str(c, "gold"));
    } else if (gym && (fn.endsWith("cascade_score") || fn.endsWith("math_match"))) {
      precision = 2; // their numeric fallback: within 1%
    } else if (gym) {
      precision = 15; // Decimal equality
    } else if (mitx) {
      // its tolerance: default 0.01% relative, "N%" relative, a number absolute
      JsonNode t = p.path("tolerance");
      precision = t.isMissingNode() ? 4 : t.isTextual() && t.asText().endsWith("%")
          ? places(Double.parseDouble(t.asText().replace("%", "")) / 100)
          : relativePlaces(Double.parseDouble(t.asText()), TestData.str(c, "gold"));
    }
    String fallback = boxOnly ? "[]" : bare ? "[whole]" : params.contains("'expr'") && !params.contains("'latex'")
        ? "[last-number]" : "[last-latex, last-number]";
    return new MathReward.Factory().create(ConfigFactory.parseString("fallback = " + fallback + ", precision = "
        + precision));
  }

  /**
   * An absolute tolerance as places relative to a numeric reference: 0.1 around 10 is 2 (1%); a reference of 0 or
   * not a plain number is compared exactly (15 places).
   */
  private static int relativePlaces(double tolerance, String gold) {
    double g;
    try {
      g = Math.abs(Double.parseDouble(gold));
    } catch (NumberFormatException e) {
      return 15;
    }
    return g == 0 ? 15 : places(tolerance / g);
  }

  /** A relative tolerance as the reward's precision, never looser than the grader's: 0.05 is 2 (1%), 0 is 15. */
  private static int places(double relativeTolerance) {
    return relativeTolerance <= 0 ? 15 : (int) Math.max(0, Math.min(15, Math.ceil(-Math.log10(relativeTolerance))));
  }

  /** Agreement on one split: agreed, total, and the misses (described). */
  static Object[] agreement(String file) {
    List<JsonNode> cases = TestData.jsonl("verify/" + file);
    int agree = 0;
    List<String> misses = new ArrayList<>();
    Map<String, int[]> bySource = new LinkedHashMap<>();
    for (JsonNode c : cases) {
      boolean expected = c.get("expected").asBoolean();
      RewardFunction reward = rewardFor(c);
      double score;
      try {
        score = reward.scoreOne(RewardRequest.of(TestData.str(c, "response"), TestData.str(c, "gold")))
            .reward();
      } catch (IllegalArgumentException e) {
        score = Double.NaN; // a failed request in a run (an empty reference): never a match
      }
      String repo = c.get("source").asText().replaceAll("@.*", "");
      int[] tally = bySource.computeIfAbsent(repo, k -> new int[2]);
      tally[1]++;
      if ((score == 1.0) == expected) {
        agree++;
        tally[0]++;
      } else {
        misses.add(c.get("source").asText().replaceAll("^[^/]*/", "") + ": expected " + expected + ", scored "
            + score + "\n    response=" + abbreviate(TestData.str(c, "response")) + "\n    gold="
            + abbreviate(TestData.str(c, "gold")));
      }
    }
    return new Object[] {agree, cases.size(), misses, bySource};
  }

  /** One split's agreement in percent, printed with its tally per source and every miss. */
  @SuppressWarnings("unchecked")
  private static double reportedRate(String file, int size, String label) {
    Object[] result = agreement(file);
    assertEquals(size, result[1]);
    double rate = 100.0 * (int) result[0] / (int) result[1];
    System.out.printf("grader agreement, %s: %d/%d = %.1f%%%n", label, result[0], result[1], rate);
    ((Map<String, int[]>) result[3]).forEach((k, v) -> System.out.printf("  %s %-40s %d/%d%n", label, k, v[0], v[1]));
    ((List<String>) result[2]).forEach(m -> System.out.println("  " + label + " miss " + m));
    return rate;
  }

  private static String abbreviate(String s) {
    String t = s.replace("\n", "\\n");
    return t.length() <= 200 ? t : t.substring(0, 90) + " ... " + t.substring(t.length() - 105);
  }

  /**
   * 140 cases from ten more graders' tests (data/verify/graders_fresh.jsonl), gathered after development ended and
   * scored before any change (85.7%); three of the gaps they showed were closed afterwards.
   */
  @Test
  void agreesWithGradersItNeverSaw() {
    double rate = reportedRate("graders_fresh.jsonl", 140, "never seen");
    // measured once, when gathered: 120/140 (reward/README.md, "math", lists every disagreement and why); 123/140
    // since two of the gaps it showed were closed (e-notation in text, a corrected boxed answer); 128/140 since
    // completions are judged on their <answer> section
    assertTrue(rate >= 91.4, "agreement on cases gathered after development " + rate + "%");
  }

  /**
   * A third set, gathered this session from nine more graders' tests (data/verify/graders_third.jsonl: 110 cases;
   * data/verify/graders_third_math500.jsonl: 597 more from one grader's test over every MATH-500 answer, boxed, against
   * itself and against 123), scored before any change.
   */
  @Test
  @SuppressWarnings("unchecked")
  void agreesWithAThirdSetOfGradersItNeverSaw() {
    Object[] third = agreement("graders_third.jsonl");
    Object[] bulk = agreement("graders_third_math500.jsonl");
    assertEquals(110, third[1]);
    assertEquals(597, bulk[1]);
    double rate = 100.0 * (int) third[0] / (int) third[1];
    double bulkRate = 100.0 * (int) bulk[0] / (int) bulk[1];
    System.out.printf("grader agreement, third set: %d/%d = %.1f%%; MATH-500 self-check: %d/%d = %.1f%%%n",
        third[0], third[1], rate, bulk[0], bulk[1], bulkRate);
    ((Map<String, int[]>) third[3]).forEach((k, v) -> System.out.printf("  third %-40s %d/%d%n", k, v[0], v[1]));
    ((List<String>) third[2]).forEach(m -> System.out.println("  third-set miss " + m));
    ((List<String>) bulk[2]).forEach(m -> System.out.println("  MATH-500 miss " + m));
    // measured once, when gathered: 94/110 (85.5%), the MATH-500 self-check 597/597; 101/110 since seven of the
    // gaps it showed were closed (reward/README.md, "math", lists every disagreement and why)
    assertTrue(rate >= 91.8, "third set " + rate + "%");
    assertEquals(597, bulk[0], "every MATH-500 answer matches itself, boxed, and none matches 123");
  }

  /**
   * A fourth set, gathered a session after the third from five more projects' grader tests
   * (data/verify/graders_fourth.jsonl: 192 cases: UGMathBench's and DeepSeek-Math's graders as sieval ports them,
   * PRM800K's grade_answer, bonsai-fold's math_equal, Isaac Physics' checker of plain-text answers, AgentFly's),
   * scored before any change.
   */
  @Test
  void agreesWithAFourthSetOfGradersItNeverSaw() {
    double rate = reportedRate("graders_fourth.jsonl", 192, "fourth set");
    // measured once, when gathered: 159/192 (82.8%; reward/README.md, "math", sorts the disagreements); 179/192
    // since plain-text math (sin(x), pi, x**2, log(x, b), oo, ==), e as Euler's number and 2^10 are read
    assertTrue(rate >= 93.2, "fourth set " + rate + "%");
  }

  /**
   * A fifth set, gathered a session after the fourth from four more projects' grader tests
   * (data/verify/graders_fifth.jsonl: 120 cases: reasoning-gym's scorers, the edX formula grader of mitx, NextThought's
   * LaTeX and numeric graders, datatrove's boxed-answer reward), scored before any change.
   */
  @Test
  void agreesWithAFifthSetOfGradersItNeverSaw() {
    double rate = reportedRate("graders_fifth.jsonl", 120, "fifth set");
    // measured once, when gathered: 114/120 (95.0%); the six disagreements are those graders' rules
    // (reward/README.md, "math")
    assertTrue(rate >= 95.0, "fifth set " + rate + "%");
  }

  @Test
  @SuppressWarnings("unchecked")
  void agreesWithOtherGradersOnCasesItWasDevelopedOnAndOnCasesKeptOut() {
    Object[] dev = agreement("graders_dev.jsonl");
    Object[] held = agreement("graders_heldout.jsonl");
    assertEquals(286, dev[1]);
    assertEquals(193, held[1]);
    double devRate = 100.0 * (int) dev[0] / (int) dev[1];
    double heldRate = 100.0 * (int) held[0] / (int) held[1];
    System.out.printf("grader agreement, development: %d/%d = %.1f%%; held out: %d/%d = %.1f%%%n", dev[0], dev[1],
        devRate, held[0], held[1], heldRate);
    ((Map<String, int[]>) held[3]).forEach((k, v) -> System.out.printf("  held out %-40s %d/%d%n", k, v[0], v[1]));
    ((List<String>) dev[2]).forEach(m -> System.out.println("  development miss " + m));
    ((List<String>) held[2]).forEach(m -> System.out.println("  held-out miss " + m));
    // round 1 ended at 94.1% and 89.6% (held out); round 2 developed on both files: 94.4% and 93.8%; 94.3% held out
    // since complex answers compare as complex numbers
    assertTrue(devRate >= 94.4, "development agreement " + devRate + "%");
    assertTrue(heldRate >= 94.3, "second-round agreement " + heldRate + "%");
  }
}
