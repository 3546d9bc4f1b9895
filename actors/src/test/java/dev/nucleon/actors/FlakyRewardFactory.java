package dev.nucleon.actors;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.util.concurrent.atomic.AtomicLong;

/** A test reward plug-in: exact match, but every fifth request throws (a broken third-party reward). */
public final class FlakyRewardFactory implements RewardFactory {

  static final AtomicLong THROWN = new AtomicLong();

  @Override
  public String identifier() {
    return "flaky-match";
  }

  @Override
  public RewardFunction create(Config config) {
    AtomicLong calls = new AtomicLong();
    return new RewardFunction() {
      @Override
      public RewardResult scoreOne(RewardRequest r) {
        if (calls.incrementAndGet() % 5 == 0) {
          THROWN.incrementAndGet();
          throw new IllegalStateException("flaky reward failed on purpose");
        }
        return RewardResult.ok(r.completion().equals(r.groundTruth()) ? 1.0 : 0.0);
      }
    };
  }
}
