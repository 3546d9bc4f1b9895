package dev.nucleon.reward;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class GuardedRewardTest {

  /** Reward = length of the completion, except for a few completions that misbehave. */
  static final class Misbehaving implements RewardFunction {
    static volatile boolean stopSpinning;

    @Override
    public RewardResult scoreOne(RewardRequest request) {
      switch (request.completion()) {
        case "sleep" -> {
          try {
            Thread.sleep(60_000);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          return RewardResult.ok(99);
        }
        case "spin" -> {
          long x = 0;
          while (!stopSpinning) { // ignores interrupts: the guard must abandon the thread
            x = (x + 1) % 1_000_000_000L;
          }
          return RewardResult.ok(x);
        }
        case "throw" -> throw new IllegalStateException("boom");
        case "nan" -> {
          return RewardResult.ok(Double.NaN);
        }
        case "inf-component" -> {
          return RewardResult.ok(1.0, Map.of("len", Double.POSITIVE_INFINITY));
        }
        case "null" -> {
          return null;
        }
        default -> {
          return RewardResult.ok(request.completion().length());
        }
      }
    }
  }

  private static List<RewardRequest> requests(String... completions) {
    List<RewardRequest> out = new ArrayList<>();
    for (String c : completions) {
      out.add(RewardRequest.of(c, ""));
    }
    return out;
  }

  @Test
  void timeoutThrowAndNanFailOnlyTheirOwnRequestsAndQuickly() {
    try (GuardedReward guard = new GuardedReward(new Misbehaving(), "test", Duration.ofMillis(300), 2)) {
      long start = System.nanoTime();
      List<RewardResult> out = guard.score(requests("ab", "sleep", "abcd", "throw", "nan", "abc", "inf-component",
          "null", "spin", "abcde"));
      double seconds = (System.nanoTime() - start) / 1e9;
      assertEquals(10, out.size());
      assertEquals(RewardResult.ok(2), out.get(0));
      assertFailed(out.get(1), "timed out after 300ms");
      assertEquals(RewardResult.ok(4), out.get(2));
      assertFailed(out.get(3), "java.lang.IllegalStateException: boom");
      assertFailed(out.get(4), "non-finite reward");
      assertEquals(RewardResult.ok(3), out.get(5));
      assertFailed(out.get(6), "non-finite component 'len'");
      assertFailed(out.get(7), "returned no result");
      assertFailed(out.get(8), "timed out");
      assertEquals(RewardResult.ok(5), out.get(9));
      assertTrue(seconds < 5, "a batch with hanging requests took " + seconds + " s");
      assertTrue(guard.abandonedThreads() >= 2);
      // the guard keeps working after abandoning threads
      assertEquals(RewardResult.ok(1), guard.scoreOne(RewardRequest.of("x", "")));
    } finally {
      Misbehaving.stopSpinning = true; // let the abandoned thread end so it does not burn a core for the other tests
    }
  }

  @Test
  void everyRequestHangingStillReturnsOneFailedResultEach() {
    try (GuardedReward guard = new GuardedReward(new Misbehaving(), "test", Duration.ofMillis(100), 1)) {
      List<RewardResult> out = guard.score(requests("sleep", "sleep", "sleep", "ok"));
      assertFailed(out.get(0), "timed out");
      assertFailed(out.get(1), "timed out");
      assertFailed(out.get(2), "timed out");
      assertEquals(RewardResult.ok(2), out.get(3));
    }
  }

  @Test
  void manyRequestsAreAllScoredInOrder() {
    try (GuardedReward guard = new GuardedReward(new Misbehaving(), "test", Duration.ofSeconds(5), 3)) {
      List<RewardRequest> batch = new ArrayList<>();
      for (int i = 0; i < 1000; i++) {
        batch.add(RewardRequest.of("x".repeat(i % 17), ""));
      }
      List<RewardResult> out = guard.score(batch);
      for (int i = 0; i < 1000; i++) {
        assertEquals(i % 17, out.get(i).reward(), "request " + i);
      }
    }
  }

  /** A batch reward: one call per batch. */
  static final class Batch implements RewardFunction {
    final AtomicInteger calls = new AtomicInteger();
    final String behaviour;

    Batch(String behaviour) {
      this.behaviour = behaviour;
    }

    @Override
    public RewardResult scoreOne(RewardRequest request) {
      return score(List.of(request)).get(0);
    }

    @Override
    public List<RewardResult> score(List<RewardRequest> batch) {
      calls.incrementAndGet();
      switch (behaviour) {
        case "throw" -> throw new IllegalStateException("server said 500");
        case "short" -> {
          return List.of(RewardResult.ok(1));
        }
        case "sleep" -> {
          try {
            Thread.sleep(60_000);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          return List.of();
        }
        default -> {
          List<RewardResult> out = new ArrayList<>();
          for (RewardRequest r : batch) {
            out.add(r.completion().equals("nan") ? new RewardResult(1, Map.of("x", Double.NaN), RewardResult.Outcome.OK,
                null) : RewardResult.ok(r.completion().length()));
          }
          return out;
        }
      }
    }

    @Override
    public boolean scoresBatches() {
      return true;
    }
  }

  @Test
  void batchRewardsGetOneCallPerBatchAndBadItemsFailAlone() {
    Batch batch = new Batch("ok");
    try (GuardedReward guard = new GuardedReward(batch, "remote", Duration.ofSeconds(5), 4)) {
      List<RewardResult> out = guard.score(requests("a", "nan", "abc"));
      assertEquals(1, batch.calls.get());
      assertEquals(RewardResult.ok(1), out.get(0));
      assertFailed(out.get(1), "non-finite component 'x'");
      assertEquals(RewardResult.ok(3), out.get(2));
    }
  }

  @Test
  void batchFailuresFailEveryRequestWithTheReason() {
    try (GuardedReward guard = new GuardedReward(new Batch("throw"), "remote", Duration.ofSeconds(5), 1)) {
      guard.score(requests("a", "b")).forEach(r -> assertFailed(r, "server said 500"));
    }
    try (GuardedReward guard = new GuardedReward(new Batch("short"), "remote", Duration.ofSeconds(5), 1)) {
      guard.score(requests("a", "b")).forEach(r -> assertFailed(r, "returned 1 results for 2 requests"));
    }
    try (GuardedReward guard = new GuardedReward(new Batch("sleep"), "remote", Duration.ofMillis(200), 1)) {
      long start = System.nanoTime();
      List<RewardResult> out = guard.score(requests("a", "b"));
      assertTrue((System.nanoTime() - start) / 1e9 < 3);
      out.forEach(r -> assertFailed(r, "timed out after 200ms (batch of 2)"));
    }
  }

  @Test
  void emptyBatchGivesEmptyResult() {
    try (GuardedReward guard = new GuardedReward(new Misbehaving(), "test", Duration.ofSeconds(1), 1)) {
      assertTrue(guard.score(List.of()).isEmpty());
    }
  }

  static void assertFailed(RewardResult r, String reasonPart) {
    assertFalse(r.isOk(), "expected failed, got " + r);
    assertTrue(Double.isNaN(r.reward()), "a failed result carries no value: " + r);
    assertTrue(r.reason().contains(reasonPart), "reason '" + r.reason() + "' should contain '" + reasonPart + "'");
  }

  /** Hangs on "hang" until released, ignoring interrupts (a native call that never returns, say). */
  static final class Hanging implements RewardFunction {
    final java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);

    @Override
    public RewardResult scoreOne(RewardRequest request) {
      if (request.completion().equals("hang")) {
        while (release.getCount() > 0) {
          try {
            release.await();
          } catch (InterruptedException e) {
            // ignored: this reward does not stop when asked
          }
        }
      }
      return RewardResult.ok(1);
    }
  }

  @Test
  void hungCallsAreBoundedAndTheRewardIsCalledAgainOnceOneReturns() throws Exception {
    Hanging reward = new Hanging();
    try (GuardedReward guard = new GuardedReward(reward, "hang", Duration.ofMillis(50), 1)) {
      int bound = guard.maxStuckThreads();
      assertEquals(GuardedReward.MIN_STUCK_BOUND, bound);
      for (int i = 0; i < bound; i++) {
        assertFailed(guard.score(requests("hang")).get(0), "timed out");
      }
      assertEquals(bound, guard.stuckThreads());
      RewardResult refused = guard.score(requests("fine")).get(0);
      assertFailed(refused, bound + " of its calls are still running past the timeout");
      assertEquals(bound, guard.abandonedThreads(), "no thread was started for the refused call");

      reward.release.countDown();
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (guard.stuckThreads() > 0 && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      assertEquals(0, guard.stuckThreads(), "the hung calls returned");
      assertEquals(1.0, guard.score(requests("fine")).get(0).reward());
    }
  }
}
