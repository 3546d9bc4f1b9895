package dev.nucleon.core.reward;

import java.util.ArrayList;
import java.util.List;

/**
 * A reward: turns completions into {@link RewardResult}s.
 *
 * <p>Plain functions implement {@link #scoreOne(RewardRequest)}; the default {@link #score(List)} calls it for each
 * request. Rewards that gain from batching (a remote server, a subprocess, a model) override {@link #score(List)},
 * implement {@link #scoreOne} as a batch of one, and return {@code true} from {@link #scoresBatches()}.
 *
 * <p>A reward may throw, hang or return a non-finite value: the framework's guard (see the reward module's
 * {@code GuardedReward}) turns each of those into a {@link RewardResult.Outcome#FAILED} result with a reason, so a
 * reward need not catch its own errors. Implementations must be safe to call from several threads at once.
 *
 * <p>Rewards that hold resources (threads, processes, connections, native memory) release them in {@link #close()}.
 */
public interface RewardFunction extends AutoCloseable {

  /** Scores one request. */
  RewardResult scoreOne(RewardRequest request);

  /**
   * Scores a batch: one result per request, in request order. The default scores the requests one by one.
   *
   * @throws IllegalStateException never by the default; batch implementations may throw for the whole batch
   */
  default List<RewardResult> score(List<RewardRequest> batch) {
    List<RewardResult> out = new ArrayList<>(batch.size());
    for (RewardRequest request : batch) {
      out.add(scoreOne(request));
    }
    return out;
  }

  /**
   * Whether {@link #score(List)} is the reward's natural unit of work (one call per batch, for example one HTTP
   * request). The guard then calls it once per batch under one timeout; otherwise it scores requests one by one,
   * each under its own timeout, so one slow request cannot spoil the others.
   */
  default boolean scoresBatches() {
    return false;
  }

  /** Releases what the reward holds; the default holds nothing. */
  @Override
  default void close() {}
}
