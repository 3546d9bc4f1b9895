package com.example.reward;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Example third-party reward: the fraction of configured keywords that the completion mentions.
 *
 * <pre>
 * nucleon.reward {
 *   name = "keyword-coverage"
 *   keyword-coverage { keywords = ["photosynthesis", "chlorophyll"], case-sensitive = false }
 * }
 * </pre>
 */
public final class KeywordReward implements RewardFunction {

  private final List<String> keywords;
  private final boolean caseSensitive;

  public KeywordReward(List<String> keywords, boolean caseSensitive) {
    this.keywords = keywords.stream().map(k -> caseSensitive ? k : k.toLowerCase(Locale.ROOT)).toList();
    this.caseSensitive = caseSensitive;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    String text = caseSensitive ? request.completion() : request.completion().toLowerCase(Locale.ROOT);
    long found = keywords.stream().filter(text::contains).count();
    double coverage = (double) found / keywords.size();
    return RewardResult.ok(coverage, Map.of("keywords_found", (double) found));
  }

  /** Listed in META-INF/services/dev.nucleon.core.reward.RewardFactory. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "keyword-coverage";
    }

    @Override
    public RewardFunction create(Config config) {
      if (!config.hasPath("keywords")) {
        throw new ConfigException.Missing(config.origin(), "keywords");
      }
      List<String> keywords = config.getStringList("keywords");
      if (keywords.isEmpty()) {
        throw new ConfigException.BadValue(config.getValue("keywords").origin(), "keywords",
            "list at least one keyword");
      }
      boolean caseSensitive = config.hasPath("case-sensitive") && config.getBoolean("case-sensitive");
      return new KeywordReward(keywords, caseSensitive);
    }
  }
}
