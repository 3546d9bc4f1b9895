package dev.nucleon.reward.math;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.AnswerTags;
import dev.nucleon.reward.ConfigValues;
import dev.nucleon.reward.math.AnswerExtractor.Answer;
import dev.nucleon.reward.math.AnswerExtractor.Fallback;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Competition-math answer checking (MATH, AIME, ...).
 *
 * <ol>
 *   <li>Where the completion writes its answer in {@code <answer>...</answer>} (the R1 template), only that section
 *       is read ({@link AnswerTags}: the first, by default).
 *   <li>Extract the answer ({@link AnswerExtractor}): the last {@code \boxed{}}/{@code \fbox{}}, else the
 *       configured fallbacks.
 *   <li>Take the reference: its box if it has one, else its last math span, else the whole ground truth.
 *   <li>Compare ({@link MathEquivalence}): normalized text, then structure, then exact rationals or numeric
 *       evaluation.
 * </ol>
 *
 * <p>Reward 1 when equivalent, 0 otherwise (also when no answer was found). Components: {@code correct} and
 * {@code extracted} (1 when an answer was found). An empty ground truth fails the request.
 */
public final class MathReward implements RewardFunction {

  private final boolean stripThinking;
  private final AnswerTags answerTags;

  private final List<Fallback> fallbacks;
  private final MathEquivalence equivalence;

  public MathReward(List<Fallback> fallbacks, boolean orderedLists, int precision) {
    this(fallbacks, orderedLists, precision, true, AnswerTags.FIRST);
  }

  /**
   * @param stripThinking judge only what follows the reasoning ({@link dev.nucleon.reward.Thinking#strip})
   * @param answerTags which {@code <answer>} section of a completion (and of a reference) holds the answer
   */
  public MathReward(List<Fallback> fallbacks, boolean orderedLists, int precision, boolean stripThinking,
      AnswerTags answerTags) {
    this.stripThinking = stripThinking;
    this.answerTags = answerTags;
    this.fallbacks = List.copyOf(fallbacks);
    this.equivalence = new MathEquivalence(orderedLists, precision);
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    String gold = answerTags.answerPart(request.groundTruth());
    if (gold.isBlank()) {
      throw new IllegalArgumentException("the math reward needs a ground truth answer; this request has none"
          + (request.groundTruth().isBlank() ? "" : " (its <answer> section is empty)"));
    }
    String reference = AnswerExtractor.reference(gold);
    String completion = answerTags.answerPart(stripThinking ? dev.nucleon.reward.Thinking.strip(request.completion())
        : request.completion());
    Optional<Answer> answer = AnswerExtractor.extract(completion, fallbacks);
    // the reference itself, word for word, is right whatever its form
    boolean correct = completion.strip().equals(gold.strip());
    if (!correct && answer.isPresent()) {
      String text = answer.get().text();
      if (answer.get().plainNumber()) {
        // a number from plain text: read separators as in plain text, on both sides when the reference is bare
        text = AnswerExtractor.plainNumber(text);
        if (reference.equals(gold)) {
          reference = AnswerExtractor.plainNumber(reference);
        }
      }
      try {
        correct = equivalence.equivalent(text, reference);
      } catch (StackOverflowError e) {
        correct = false; // thousands of nested brackets: no answer a reference matches
      }
    }
    double value = correct ? 1.0 : 0.0;
    return RewardResult.ok(value, Map.of("correct", value, "extracted", answer.isPresent() ? 1.0 : 0.0));
  }

  /** Whether two bare answers are equivalent (no extraction), for tools and tests. */
  public boolean equivalent(String response, String reference) {
    return equivalence.equivalent(response, reference);
  }

  /** {@code nucleon.reward.math { fallback, list-order, precision, strip-thinking, answer-tags }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "math";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "math");
      List<Fallback> fallbacks = new ArrayList<>();
      for (String f : ConfigValues.stringList(c, "fallback")) {
        switch (f.trim().toLowerCase(Locale.ROOT)) {
          case "last-latex" -> fallbacks.add(Fallback.LAST_LATEX);
          case "last-number" -> fallbacks.add(Fallback.LAST_NUMBER);
          case "whole" -> fallbacks.add(Fallback.WHOLE);
          case "none" -> { }
          default -> throw ConfigValues.bad(c, "fallback",
              "unknown fallback '" + f + "' (expected last-latex, last-number, whole or none)");
        }
      }
      if (fallbacks.contains(Fallback.WHOLE) && fallbacks.size() > 1) {
        throw ConfigValues.bad(c, "fallback", "whole takes the whole text and cannot be combined with others");
      }
      boolean ordered = ConfigValues.oneOf(c, "list-order", List.of("any", "ordered")).equals("ordered");
      int precision = ConfigValues.intAtLeast(c, "precision", 0);
      if (precision > 15) {
        throw ConfigValues.bad(c, "precision", "must be at most 15 (double precision), got " + precision);
      }
      AnswerTags tags = AnswerTags.of(ConfigValues.oneOf(c, "answer-tags", List.of("first", "last", "ignore")));
      return new MathReward(fallbacks, ordered, precision, ConfigValues.bool(c, "strip-thinking"), tags);
    }
  }
}
