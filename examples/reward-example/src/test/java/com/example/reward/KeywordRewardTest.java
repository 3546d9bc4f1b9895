package com.example.reward;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardRegistry;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.GuardedReward;
import dev.nucleon.reward.Rewards;
import org.junit.jupiter.api.Test;

/** The jar on the classpath plus one line of config is all it takes. */
class KeywordRewardTest {

  @Test
  void isFoundByServiceLoaderAlongsideTheBuiltIns() {
    RewardRegistry registry = RewardRegistry.load();
    assertTrue(registry.contains("keyword-coverage"), registry.names().toString());
    assertTrue(registry.contains("gsm8k"), registry.names().toString());
  }

  @Test
  void runsByNameFromConfigUnderTheFrameworkGuard() {
    var config = ConfigFactory.parseString("""
        nucleon.reward {
          name = "keyword-coverage"
          keyword-coverage { keywords = ["Chlorophyll", "light"] }
        }""").withFallback(ConfigFactory.defaultReference()).resolve();
    try (GuardedReward reward = Rewards.fromConfig(config)) {
      RewardResult half = reward.scoreOne(RewardRequest.of("Plants need LIGHT.", ""));
      assertEquals(0.5, half.reward());
      assertEquals(1.0, half.components().get("keywords_found"));
      assertEquals(1.0, reward.scoreOne(RewardRequest.of("chlorophyll absorbs light", "")).reward());
    }
  }

  @Test
  void missingKeywordsNameTheKey() {
    var config = ConfigFactory.parseString("nucleon.reward.name = keyword-coverage")
        .withFallback(ConfigFactory.defaultReference()).resolve();
    ConfigException e = org.junit.jupiter.api.Assertions.assertThrows(ConfigException.class,
        () -> Rewards.fromConfig(config));
    assertTrue(e.getMessage().contains("keyword-coverage") && e.getMessage().contains("keywords"), e.getMessage());
  }
}
