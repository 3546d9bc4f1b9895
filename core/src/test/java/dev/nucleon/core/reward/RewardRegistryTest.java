package dev.nucleon.core.reward;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

class RewardRegistryTest {

  /** A factory whose reward returns a constant read from config. */
  record Constant(String identifier) implements RewardFactory {
    @Override
    public RewardFunction create(Config config) {
      double value = config.hasPath("value") ? config.getDouble("value") : 0.5;
      return request -> RewardResult.ok(value);
    }
  }

  @Test
  void createsTheNamedRewardWithItsConfig() {
    RewardRegistry registry = RewardRegistry.of(List.of(new Constant("b"), new Constant("a")));
    assertEquals(List.of("a", "b"), registry.names());
    RewardFunction reward = registry.create("a", ConfigFactory.parseString("value = 0.25"));
    assertEquals(0.25, reward.scoreOne(RewardRequest.of("x", "y")).reward());
  }

  @Test
  void unknownNameListsTheAvailableOnes() {
    RewardRegistry registry = RewardRegistry.of(List.of(new Constant("gsm8k"), new Constant("math")));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> registry.create("gsm9k", ConfigFactory.empty()));
    assertTrue(e.getMessage().contains("unknown reward 'gsm9k'"), e.getMessage());
    assertTrue(e.getMessage().contains("available rewards: gsm8k, math"), e.getMessage());
  }

  @Test
  void duplicateIdentifiersAreRefused() {
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> RewardRegistry.of(List.of(new Constant("gsm8k"), new Constant("gsm8k"))));
    assertTrue(e.getMessage().contains("two reward factories claim the identifier 'gsm8k'"), e.getMessage());
  }

  @Test
  void invalidIdentifiersAreRefused() {
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> RewardRegistry.of(List.of(new Constant("My Reward"))));
    assertTrue(e.getMessage().contains("invalid identifier 'My Reward'"), e.getMessage());
  }

  @Test
  void defaultBatchScoringKeepsOrder() {
    RewardFunction length = request -> RewardResult.ok(request.completion().length());
    List<RewardResult> out = length.score(List.of(RewardRequest.of("a", ""), RewardRequest.of("abc", "")));
    assertEquals(List.of(1.0, 3.0), out.stream().map(RewardResult::reward).toList());
  }
}
