package dev.nucleon.reward;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardRegistry;
import dev.nucleon.core.reward.RewardRequest;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class RewardsConfigTest {

  private static Config config(String hocon) {
    return ConfigFactory.parseString(hocon).withFallback(ConfigFactory.defaultReference()).resolve();
  }

  @Test
  void builtInRewardsAreFoundByServiceLoader() {
    RewardRegistry registry = RewardRegistry.load();
    for (String name : new String[] {"gsm8k", "math", "countdown", "format", "length", "composite", "match", "http",
        "process"}) {
      assertTrue(registry.contains(name), name + " missing from " + registry.names());
    }
  }

  @Test
  void theConfiguredRewardIsCreatedGuardedWithItsOwnBlock() {
    try (GuardedReward reward = Rewards.fromConfig(config(
        "nucleon.reward { name = gsm8k, timeout = 2s, parallelism = 2, gsm8k.mode = strict }"))) {
      assertEquals(0.0, reward.scoreOne(RewardRequest.of("The answer is 5", "5")).reward());
      assertEquals(1.0, reward.scoreOne(RewardRequest.of("#### 5", "5")).reward());
    }
    RewardSettings settings = RewardSettings.from(config("nucleon.reward.name = math"));
    assertEquals(Duration.ofSeconds(30), settings.timeout());
    assertEquals(1, settings.parallelism());
  }

  @Test
  void badKeysAreNamed() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> Rewards.fromConfig(config("nucleon.reward { name = gsm8k, gsm8k.mode = loose }")));
    assertTrue(e.getMessage().contains("nucleon.reward.gsm8k") && e.getMessage().contains("mode")
        && e.getMessage().contains("[strict, flexible]") && e.getMessage().contains("loose"), e.getMessage());
    e = assertThrows(ConfigException.class,
        () -> RewardSettings.from(config("nucleon.reward { name = gsm8k, timeout = -1s }")));
    assertTrue(e.getMessage().contains("nucleon.reward.timeout"), e.getMessage());
    e = assertThrows(ConfigException.class,
        () -> RewardSettings.from(config("nucleon.reward { name = gsm8k, parallelism = 0 }")));
    assertTrue(e.getMessage().contains("nucleon.reward.parallelism"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> RewardSettings.from(config("")));
    assertTrue(e.getMessage().contains("nucleon.reward.name"), e.getMessage());
    IllegalArgumentException u = assertThrows(IllegalArgumentException.class,
        () -> Rewards.fromConfig(config("nucleon.reward.name = gsm9k")));
    assertTrue(u.getMessage().contains("unknown reward 'gsm9k'") && u.getMessage().contains("gsm8k"),
        u.getMessage());
  }
}
