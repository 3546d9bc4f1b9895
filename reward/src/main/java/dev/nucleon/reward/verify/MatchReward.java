package dev.nucleon.reward.verify;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.AnswerTags;
import dev.nucleon.reward.ConfigValues;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Short-answer string matching in the manner of open-instruct's {@code PuzzleMatcherVerifier}.
 *
 * <ol>
 *   <li>Drop {@code <think>...</think>} sections; if {@code <answer>...</answer>} is present keep its content.
 *   <li>Normalize both sides (SQuAD style): lower case, remove punctuation, remove the articles a / an / the,
 *       collapse white space.
 *   <li>Reward 1 when the normalized strings are equal, else 0.
 * </ol>
 */
public final class MatchReward implements RewardFunction {

  private static final Pattern THINK = Pattern.compile("(?s)<think>.*?</think>");
  private static final Pattern PUNCTUATION = Pattern.compile("\\p{Punct}");
  private static final Pattern ARTICLES = Pattern.compile("\\b(a|an|the)\\b");
  private static final Pattern WHITE_SPACE = Pattern.compile("\\s+");

  private final boolean caseSensitive;

  public MatchReward(boolean caseSensitive) {
    this.caseSensitive = caseSensitive;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    String predicted = normalize(answerPart(request.completion()));
    String gold = normalize(request.groundTruth());
    double correct = !gold.isEmpty() && predicted.equals(gold) ? 1.0 : 0.0;
    return RewardResult.ok(correct, Map.of("correct", correct));
  }

  static String answerPart(String text) {
    return AnswerTags.LAST.answerPart(THINK.matcher(text).replaceAll(""));
  }

  String normalize(String s) {
    String t = caseSensitive ? s : s.toLowerCase(Locale.ROOT);
    t = PUNCTUATION.matcher(t).replaceAll("");
    t = ARTICLES.matcher(t).replaceAll(" ");
    return WHITE_SPACE.matcher(t.trim()).replaceAll(" ");
  }

  /** {@code nucleon.reward.match { case-sensitive = false }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "match";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "match");
      return new MatchReward(ConfigValues.bool(c, "case-sensitive"));
    }
  }
}
