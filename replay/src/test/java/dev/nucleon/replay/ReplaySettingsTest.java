package dev.nucleon.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ReplaySettingsTest {

  private static Config run(String hocon) {
    return ConfigFactory.parseString(hocon, ConfigParseOptions.defaults().setOriginDescription("my-run.conf"))
        .withFallback(ConfigFactory.defaultReference())
        .resolve();
  }

  @Test
  void referenceConfDefaults() {
    ReplaySettings s = ReplaySettings.from(ConfigFactory.defaultReference());
    assertEquals(16, s.groupSize());
    assertEquals("grpo", s.advantage());
    assertEquals(1e-4, s.advantageEpsilon());
    assertEquals(32, s.batchGroups());
    assertEquals(1, s.maxStaleness());
    assertFalse(s.dropZeroVariance());
    assertFalse(s.dropOverlong());
    assertEquals(0, s.batchTokens());
    assertFalse(s.batchByTokens());
    assertEquals(16384, s.microBatchTokens());
    assertEquals(MicroBatchCost.PADDED, s.microBatchCost());
    assertEquals(FailedRewardPolicy.DROP_SAMPLE, s.failedReward());
    assertTrue(s.estimator() instanceof GrpoAdvantage);
  }

  @Test
  void overridesAreRead() {
    ReplaySettings s = ReplaySettings.from(run("nucleon.algorithm { advantage = RLOO, group-size = 8,"
        + " drop-zero-variance = on, max-staleness = 0 }\n"
        + "nucleon.replay { failed-reward = zero, batch-tokens = 4096, micro-batch-cost = sum }"));
    assertEquals("rloo", s.advantage());
    assertEquals(8, s.groupSize());
    assertTrue(s.dropZeroVariance());
    assertEquals(0, s.maxStaleness());
    assertEquals(FailedRewardPolicy.ZERO, s.failedReward());
    assertTrue(s.batchByTokens());
    assertEquals(MicroBatchCost.SUM, s.microBatchCost());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "nucleon.algorithm.group-size | 0",
      "nucleon.algorithm.advantage | gpro",
      "nucleon.algorithm.advantage-epsilon | -0.5",
      "nucleon.algorithm.batch-groups | 0",
      "nucleon.algorithm.max-staleness | -1",
      "nucleon.replay.batch-tokens | -5",
      "nucleon.replay.micro-batch-tokens | 0",
      "nucleon.replay.micro-batch-cost | packed",
      "nucleon.replay.failed-reward | ignore",
  })
  void badValueNamesTheKeyAndTheFile(String key, String value) {
    ConfigException.BadValue e = assertThrows(ConfigException.BadValue.class,
        () -> ReplaySettings.from(run(key + " = \"" + value + "\"")));
    assertTrue(e.getMessage().contains(key), e.getMessage());
    assertTrue(e.getMessage().contains("my-run.conf"), e.getMessage());
    assertTrue(e.getMessage().contains(value), e.getMessage());
  }

  @Test
  void unknownEstimatorListsTheKnownOnes() {
    ConfigException.BadValue e = assertThrows(ConfigException.BadValue.class,
        () -> ReplaySettings.from(run("nucleon.algorithm.advantage = ppo")));
    assertTrue(e.getMessage().contains("grpo, dr-grpo, rloo, reinforce-pp"), e.getMessage());
  }

  @Test
  void wrongTypeNamesTheKey() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> ReplaySettings.from(run("nucleon.algorithm.group-size = many")));
    assertTrue(e.getMessage().contains("group-size"), e.getMessage());
  }

  @Test
  void missingKeyNamesTheKey() {
    Config c = ConfigFactory.defaultReference().withoutPath("nucleon.replay.failed-reward");
    ConfigException.Missing e = assertThrows(ConfigException.Missing.class, () -> ReplaySettings.from(c));
    assertTrue(e.getMessage().contains("nucleon.replay.failed-reward"), e.getMessage());
  }

  @Test
  void constructorValidatesToo() {
    ReplaySettings.InvalidSetting e = assertThrows(ReplaySettings.InvalidSetting.class,
        () -> Fixtures.settings(4, "grpo", 0));
    assertEquals(ReplaySettings.BATCH_GROUPS, e.key());
  }
}
