package dev.nucleon.reward.math;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class MathRewardTest {

  private final RewardFunction reward = new MathReward.Factory().create(ConfigFactory.empty());

  private double score(String completion, String gold) {
    return reward.scoreOne(RewardRequest.of(completion, gold)).reward();
  }

  @Test
  void takesTheLastBoxWithBalancedBraces() {
    assertEquals(1.0, score("first \\boxed{1}. Then, finally, we get \\boxed{\\frac{1}{2}}.", "1/2"));
    assertEquals(1.0, score("so \\fbox{\\sqrt{\\frac{3}{4}}}", "\\frac{\\sqrt{3}}{2}"));
    assertEquals(0.0, score("first \\boxed{1/2}. Then, finally, we get \\boxed{1}.", "1/2"));
    RewardResult none = reward.scoreOne(RewardRequest.of("I do not know", "1/2"));
    assertEquals(0.0, none.reward());
    assertEquals(Map.of("correct", 0.0, "extracted", 0.0), none.components());
  }

  @Test
  void normalizesNotation() {
    assertEquals(1.0, score("\\boxed{\\dfrac{3}{4}}", "\\frac34"));
    assertEquals(1.0, score("\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}", "(3,\\tfrac{\\pi}{2})"));
    assertEquals(1.0, score("\\boxed{90^\\circ}", "90"));
    assertEquals(1.0, score("\\boxed{50\\%}", "50"));
    assertEquals(1.0, score("\\boxed{x = 5}", "5"));
    assertEquals(1.0, score("\\boxed{12 \\text{ cm}}", "12"));
    assertEquals(1.0, score("\\boxed{\\$1,\\!000}", "1000"));
    assertEquals(1.0, score("\\boxed{0.5}", "\\frac{1}{2}"));
    assertEquals(1.0, score("\\boxed{2\\sqrt{2}}", "\\sqrt{8}"));
    assertEquals(1.0, score("\\boxed{(x+1)^2}", "x^2+2x+1"));
  }

  /** Quantities in SI units compare by their value in coherent units; a different amount is wrong. */
  @Test
  void quantitiesCompareAcrossUnitPrefixes() {
    assertEquals(1.0, score("\\boxed{1 \\mathrm{km}}", "1000 \\mathrm{m}"));
    assertEquals(1.0, score("\\boxed{0.42 \\mathrm{km^{2}}}", "4.2 \\times 10^5 \\mathrm{m^{2}}"));
    assertEquals(1.0, score("\\boxed{981 \\mathrm{cm/s^{2}}}", "9.81 \\mathrm{m/s^{2}}"));
    assertEquals(1.0, score("\\boxed{2.5 \\text{kg}}", "2500 \\text{g}"));
    assertEquals(0.0, score("\\boxed{1 \\mathrm{km}}", "1 \\mathrm{m}"),
        "the number alone agrees, the amount does not");
    assertEquals(0.0, score("\\boxed{3 \\mathrm{nm}}", "5 \\mathrm{nm}"), "tiny amounts compare relatively");
    assertEquals(1.0, score("\\boxed{5 \\mathrm{m}}", "5"), "a unit the reference does not give is dropped");
    assertEquals(1.0, score("\\boxed{1 \\text{L}}", "0.001 \\mathrm{m^3}"), "a litre is a cubic decimetre");
    assertEquals(1.0, score("\\boxed{2 \\mathrm{k\\Omega}}", "2000 \\Omega"));
    assertEquals(1.0, score("\\boxed{3.6 \\mathrm{km/h}}", "1 \\mathrm{m/s}"));
    assertEquals(1.0, score("\\boxed{5 \\mu m}", "5000 \\mathrm{nm}"), "LaTeX writes micrometres \\mu m");
    assertEquals(1.0, score("\\boxed{5 \\times 10^3 \\mathrm{m}}", "5 \\mathrm{km}"));
    assertEquals(0.0, score("\\boxed{5001 \\times 10^0 \\mathrm{m}}", "5 \\mathrm{km}"));
    assertEquals(0.0, score("\\boxed{101 \\mathrm{m}}", "100 \\mathrm{m}"), "integers compare exactly");
    assertEquals(0.0, score("\\boxed{3 m s^{-1}}", "3000 s^{-1}"), "a space between symbols is a product");
    assertEquals(0.0, score("\\boxed{5 m^{99999999999}}", "5 m"), "a power past any unit's is no quantity");
  }

  /** Notation the third set of graders showed: delimiters, glued relations, GSM8K references, corrections. */
  @Test
  void delimitersGluedRelationsReferencesAndCorrections() {
    RewardFunction whole = new MathReward.Factory().create(ConfigFactory.parseString("fallback = [whole]"));
    assertEquals(1.0, whole.scoreOne(RewardRequest.of("\\( \\frac{1}{2} + \\frac{1}{6} \\)", "2/3")).reward());
    assertEquals(1.0, whole.scoreOne(RewardRequest.of("$-5\\lex\\le1$or$3\\lex\\le9$", "[-5,1]\\cup[3,9]"))
        .reward());
    assertEquals(1.0, whole.scoreOne(RewardRequest.of("x \\leq 3", "(-\\infty, 3]")).reward(), "\\leq stays \\leq");
    assertEquals(1.0, score("The result is #### 4", "Final answer: #### 4"));
    assertEquals(1.0, score("\\boxed{5}", "#### Step 2\nso the count is \\boxed{5}"), "a heading is not an answer");
    assertEquals(0.0, score("The result is #### 5", "Final answer: #### 4"));
    assertEquals(1.0, score("First attempt $\\boxed{99}$, correction $\\boxed{42}$.", "42"));
  }

  @Test
  void rejectsWrongAnswers() {
    assertEquals(0.0, score("\\boxed{2}", "3"));
    assertEquals(0.0, score("\\boxed{x+1}", "x+2"));
    assertEquals(0.0, score("\\boxed{0.33}", "\\frac{1}{3}")); // 6 decimal places by default
    assertEquals(0.0, score("\\boxed{(1,2)}", "(2,1)"));
    assertEquals(0.0, score("\\boxed{[1,2)}", "(1,2)"));
    assertEquals(0.0, score("\\boxed{1,2}", "1,2,3"));
    assertEquals(0.0, score("\\boxed{x < 3}", "x > 3"));
    assertEquals(0.0, score("\\boxed{\\sqrt{2}}", "1.414"));
  }

  @Test
  void setsInAnyOrderTuplesInOrder() {
    assertEquals(1.0, score("\\boxed{3, -1}", "-1, 3"));
    assertEquals(1.0, score("\\boxed{\\{3, -1\\}}", "\\{-1,3\\}"));
    assertEquals(1.0, score("\\boxed{x = 3 \\text{ or } x = -1}", "-1, 3"));
    assertEquals(1.0, score("\\boxed{1 \\pm \\sqrt{2}}", "1+\\sqrt{2}, 1-\\sqrt{2}"));
    RewardFunction ordered = new MathReward.Factory().create(ConfigFactory.parseString("list-order = ordered"));
    assertEquals(0.0, ordered.scoreOne(RewardRequest.of("\\boxed{3, -1}", "-1, 3")).reward());
  }

  @Test
  void fallbacksWhenThereIsNoBox() {
    assertEquals(1.0, score("The answer is $\\frac{2}{3}$.", "2/3"));
    assertEquals(1.0, score("We get $x = 4$, so the total is 12 apples.", "12"));
    RewardFunction boxedOnly = new MathReward.Factory().create(ConfigFactory.parseString("fallback = []"));
    assertEquals(0.0, boxedOnly.scoreOne(RewardRequest.of("The answer is $\\frac{2}{3}$.", "2/3")).reward());
    assertEquals(1.0, boxedOnly.scoreOne(RewardRequest.of("The answer is $\\boxed{\\frac{2}{3}}$.", "2/3"))
        .reward());
  }

  /** Answers written as programs and computer algebra write them compare with LaTeX ones by value. */
  @Test
  void plainTextMathAsProgramsWriteIt() {
    assertEquals(1.0, score("\\boxed{7*sin(pi*x/5)+1}", "7 \\sin(\\frac{\\pi}{5}x) + 1"));
    assertEquals(1.0, score("\\boxed{ArcSin(x) + Sin(x)**2 + Cos(x)**2}", "1 + \\arcsin x"),
        "capitalized names; arcsin is compared where it is defined");
    assertEquals(1.0, score("\\boxed{log(x, 10)}", "\\frac{\\ln x}{\\ln 10}"), "sympy's log with a base");
    assertEquals(1.0, score("\\boxed{sqrt(1 - x**2)}", "\\sqrt{(1-x)(1+x)}"));
    assertEquals(1.0, score("\\boxed{(-infinity, 5)}", "(-\\infty, 5)"));
    assertEquals(1.0, score("\\boxed{x**2 + x + 1 == 0}", "x^2 + x + 1 = 0"));
    assertEquals(1.0, score("\\boxed{2^10}", "1024"), "an unbraced run of digits is the whole exponent");
    assertEquals(1.0, score("\\boxed{\\frac{1}2}", "0.5"));
    assertEquals(1.0, score("\\boxed{e^{x}}", "\\exp(x)"), "e alone is Euler's number");
    assertEquals(1.0, score("\\boxed{2.71828182845905^{2}}", "e^2"));
    assertEquals(1.0, score("\\boxed{sin(x)}", "\\sin x"));
    assertEquals(0.0, score("\\boxed{sin(x)}", "\\cos x"));
    assertEquals(1.0, score("\\boxed{x^21}", "x^{21}"));
    assertEquals(0.0, score("\\boxed{x^21}", "x^2"));
    assertEquals(1.0, score("\\boxed{1.5 \\times 10^-3}", "0.0015"), "a signed unbraced exponent");
    assertEquals(1.0, score("\\boxed{spin}", "s p i n"), "pi inside a word is not pi");
    // functions on the left of an equation are not names of the answer
    assertEquals(0.0, score("\\boxed{sin(y) = x}", "y = x"));
    assertEquals(0.0, score("\\boxed{cos(x) = 0}", "\\sin x = 0"));
  }

  /** A lone i is the imaginary unit: complex answers compare by value. */
  @Test
  void complexAnswersCompareAsComplexNumbers() {
    assertEquals(1.0, score("\\boxed{i(2-i)}", "1+2i"));
    assertEquals(1.0, score("\\boxed{\\frac{5}{1-2i}}", "1+2i"));
    assertEquals(1.0, score("\\boxed{\\ln(-1)}", "i\\pi"), "the principal logarithm");
    assertEquals(1.0, score("\\boxed{(1+i)^{100}}", "-2^{50}"), "a rounding error in a zero part is no difference");
    assertEquals(0.0, score("\\boxed{2Pi}", "P(1+i)^2"), "beside other variables i may be real (a rate)");
    assertEquals(1.0, score("\\boxed{\\tan i}", "\\frac{\\sin i}{\\cos i}"), "an angle i compares as before");
    assertEquals(1.0, score("\\boxed{e^{i\\pi}}", "-1"));
    assertEquals(0.0, score("\\boxed{1-2i}", "1+2i"));
    assertEquals(0.0, score("\\boxed{2}", "2i"));
    assertEquals(1.0, score("\\boxed{a_i + 1}", "1 + a_i"), "a subscripted i is part of a name");
  }

  /** Numeric comparison does not accept what only looks equal at its sample points. */
  @Test
  void sampledValuesDoNotHideDifferences() {
    assertEquals(1.0, score("\\boxed{\\sqrt{-x^2+4}}", "\\sqrt{4-x^2}"), "undefined on both sides at some points");
    assertEquals(1.0, score("\\boxed{\\frac{x-2}{\\sqrt{x-2}}}", "\\sqrt{x-2}"));
    assertEquals(0.0, score("\\boxed{\\sqrt{2}}", "\\sqrt{\u0662}"), "an Arabic-Indic digit is no number here");
    assertEquals(1.0, score("\\boxed{x^0.5}", "\\sqrt{x}"));
    assertEquals(0.0, score("\\boxed{\\sec y = x}", "y = x"));
    assertEquals(1.0, score("\\boxed{\\arcsin x + \\arccos x}", "\\frac{\\pi}{2}"),
        "defined only below 1: compared there");
    assertEquals(0.0, score("\\boxed{\\arcsin x + x^{200}}", "\\arcsin x"),
        "a high power vanishes at small x under an absolute tolerance");
    assertEquals(0.0, score("\\boxed{2x^{10000}}", "x^{10000}"), "an overflow everywhere is not agreement");
    assertEquals(0.0, score("\\boxed{1 \\times 10^{999} \\text{ m}}", "5 \\text{ m}"),
        "an overflowing quantity is no value");
  }

  /** R1-template completions: the answer section is the answer, whatever the reasoning or later text says. */
  @Test
  void anAnswerSectionIsTheAnswer() {
    assertEquals(1.0, score("<think>2 + 2 = 5? no, 4</think> <answer>4</answer>", "4"));
    assertEquals(1.0, score("<answer>The final answer is \\boxed{\\frac{1}{2}}</answer>", "0.5"));
    assertEquals(0.0, score("The answer is \\boxed{42}. <answer>43</answer>", "42"),
        "a box outside the answer section does not count");
    assertEquals(0.0, score("<answer>not a number</answer> but 42 is correct", "42"));
    assertEquals(1.0, score("First: <answer>42</answer> then <answer>43</answer>", "42"));
    assertEquals(0.0, score("First: <answer>42</answer> then <answer>43</answer>", "43"));
    assertEquals(1.0, score("<answer>84</answer>", "<answer>84</answer> (not 85)"), "a tagged reference");
    assertEquals(1.0, score("<answer>41 <answer>42</answer>", "42"), "a section opens at the nearest tag");
    assertEquals(1.0, score("cut off: <answer>42", "42"), "an unclosed tag is plain text");
    RewardFunction last = new MathReward.Factory().create(ConfigFactory.parseString("answer-tags = last"));
    assertEquals(1.0, last.scoreOne(RewardRequest.of("<answer>42</answer> <answer>43</answer>", "43")).reward());
    assertEquals(1.0, last.scoreOne(RewardRequest.of("<answer><answer>43</answer></answer>", "43")).reward());
    RewardFunction ignore = new MathReward.Factory().create(ConfigFactory.parseString("answer-tags = ignore"));
    assertEquals(1.0, ignore.scoreOne(RewardRequest.of("\\boxed{42} <answer>43</answer>", "42")).reward());
  }

  @Test
  void everyMath500AnswerMatchesItselfAndRarelyAnother() throws Exception {
    JsonNode rows = new ObjectMapper().readTree(TestData.text("math500/math500_test.json"));
    assertEquals(500, rows.size());
    List<String> selfMisses = new ArrayList<>();
    List<String> crossMatches = new ArrayList<>();
    for (int i = 0; i < rows.size(); i++) {
      String answer = rows.get(i).get("answer").asText();
      String other = rows.get((i + 1) % rows.size()).get("answer").asText();
      if (score("Thus the answer is $\\boxed{" + answer + "}$.", answer) != 1.0) {
        selfMisses.add(answer);
      }
      if (score("Thus the answer is $\\boxed{" + other + "}$.", answer) == 1.0
          && !MathNormalizer.hendrycks(answer).equals(MathNormalizer.hendrycks(other))) {
        crossMatches.add(other + " accepted for " + answer);
      }
    }
    assertTrue(selfMisses.isEmpty(), "answers not matching themselves: " + selfMisses);
    assertTrue(crossMatches.isEmpty(), "neighbouring answers accepted: " + crossMatches);
  }

  @Test
  void badConfigAndMissingGroundTruthAreClearErrors() {
    ConfigException e = assertThrows(ConfigException.class, () -> new MathReward.Factory().create(
        ConfigFactory.parseString("fallback = [last-line]")));
    assertTrue(e.getMessage().contains("fallback") && e.getMessage().contains("last-line"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> new MathReward.Factory().create(
        ConfigFactory.parseString("list-order = sorted")));
    assertTrue(e.getMessage().contains("list-order"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> new MathReward.Factory().create(
        ConfigFactory.parseString("answer-tags = middle")));
    assertTrue(e.getMessage().contains("answer-tags") && e.getMessage().contains("middle"), e.getMessage());
    IllegalArgumentException g = assertThrows(IllegalArgumentException.class, () -> score("\\boxed{1}", " "));
    assertTrue(g.getMessage().contains("ground truth"), g.getMessage());
    g = assertThrows(IllegalArgumentException.class, () -> score("\\boxed{1}", "<answer> </answer>"));
    assertTrue(g.getMessage().contains("<answer> section is empty"), g.getMessage());
    assertFalse(new MathReward(List.of(), false, 6).equivalent("", "1"));
  }

  @Test
  void hedgesIntersectionsMagnitudesAndProseReferencesAreNotRightAnswers() {
    assertEquals(0.0, score("$\\boxed{5 \\approx 7}$", "5"), "an approximation that does not hold is no second guess");
    assertEquals(1.0, score("$\\boxed{\\frac{9.5}{\\pi} \\approx 3.02}$", "\\frac{9.5}{\\pi}"));
    assertEquals(0.0, score("$\\boxed{x < -1 \\text{ and } x > 2}$", "(-\\infty,-1)\\cup(2,\\infty)"),
        "'and' between relations is their intersection (here empty), not a union");
    assertEquals(1.0, score("$\\boxed{x < -1 \\text{ or } x > 2}$", "(-\\infty,-1)\\cup(2,\\infty)"));
    assertEquals(0.0, score("The answer is 5 million.", "5"), "a magnitude is no unit");
    assertEquals(0.0, score("$\\boxed{2}$", "The set of all real numbers greater than 2"),
        "a reference in prose without an answer marker is not reduced to a number in it");
    assertEquals(1.0, score("$\\boxed{10000}$", "the answer is 10000"));
    String deep = "(".repeat(3000) + "1" + ")".repeat(3000);
    assertEquals(0.0, score("$\\boxed{" + deep + "}$", "1"), "deep nesting is a wrong answer, not a failure");
  }

  @Test
  void adversarialWhiteSpaceDoesNotMakeTheVerifierCrawl() {
    // each of these took seconds to minutes with backtracking patterns (a reward runs millions of times)
    List<String> hostile = List.of("x = 5\n" + "\n".repeat(20_000) + "y",
        "So x = 5." + "\n".repeat(20_000) + "y", "The answer is 5" + " ".repeat(6000) + "x",
        "$\\boxed{1" + " ".repeat(20_000) + "!}$", "$1$" + " ".repeat(20_000) + "$2$",
        "$\\boxed{((9^{256})^{256})^{256} + ((9^{256})^{256})^{256}}$",
        // power towers: decimal arithmetic never returned from 9^{9^{9^9}} (now evaluated in doubles)
        "$\\boxed{9^{9^{9^{9}}}}$", "\\boxed{x^{9^{9^{9}}} + 2^{2^{2^{2^{2^{2}}}}}}", "(10^{10^{10}})^{0.5}",
        "<answer>".repeat(20_000) + "5", "</answer>".repeat(20_000) + "<answer>5",
        // quantities: a number, then a long run of spaces or digits before what might be a unit
        "\\boxed{1 a" + " ".repeat(20_000) + "b}", "1 a" + " ".repeat(20_000) + "b\nc", "1".repeat(20_000) + "a\nb",
        "\\boxed{5 m" + " m".repeat(10_000) + "}");
    org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(20), () -> {
      for (String h : hostile) {
        score(h, "5");
      }
      // an equation's left side of unclosed subscripts: the subscript pattern rescans from each (about a minute)
      assertFalse(MathEquivalence.simpleLhs("x" + "_{".repeat(150_000)));
    });
  }
}
