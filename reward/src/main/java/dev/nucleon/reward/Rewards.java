package dev.nucleon.reward;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRegistry;

/** Entry point for callers: the configured reward, discovered by name and wrapped in the failure guard. */
public final class Rewards {

  private Rewards() {}

  /** The reward named by {@code nucleon.reward.name} in {@code root}, guarded; found among the classpath's factories. */
  public static GuardedReward fromConfig(Config root) {
    return fromConfig(root, RewardRegistry.load());
  }

  /** As {@link #fromConfig(Config)}, choosing among the factories of {@code registry}. */
  public static GuardedReward fromConfig(Config root, RewardRegistry registry) {
    RewardSettings settings = RewardSettings.from(root);
    RewardFunction reward = registry.create(settings.name(), settings.rewardConfig());
    return GuardedReward.of(reward, settings);
  }
}
