package dev.nucleon.reward;

import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a reward under the framework's failure semantics, so no reward has to implement them itself:
 *
 * <ol>
 *   <li>A request whose scoring throws yields {@code failed} with the exception as the reason.
 *   <li>A request still running after {@code timeout} yields {@code failed} ("timed out"); its thread is interrupted
 *       and abandoned, and the rest of the batch goes on in a fresh thread.
 *   <li>A non-finite reward or component, a missing result or a wrong number of results yields {@code failed}.
 *   <li>Other requests of the batch keep their own results, and {@link #score(List)} itself never throws.
 * </ol>
 *
 * <p>Per-request rewards are scored by up to {@code parallelism} lanes, each taking the next unscored request;
 * rewards that {@linkplain RewardFunction#scoresBatches() score batches} get one call per batch under one timeout
 * (a failure of that call fails the whole batch; a bad item in the answer fails only that item).
 */
public final class GuardedReward implements RewardFunction {

  private static final Logger log = LoggerFactory.getLogger(GuardedReward.class);
  private static final AtomicInteger POOLS = new AtomicInteger();

  /** At least this many abandoned threads may still run before the reward is not called any more (until one ends). */
  static final int MIN_STUCK_BOUND = 8;

  /** A scoring thread's state: running, abandoned past its timeout, or returned. */
  private static final int RUNNING = 0;
  private static final int ABANDONED = 1;
  private static final int ENDED = 2;

  private final RewardFunction delegate;
  private final String name;
  private final long timeoutNanos;
  private final Duration timeout;
  private final int parallelism;
  private final ExecutorService threads;
  private final AtomicInteger abandoned = new AtomicInteger();
  /** Abandoned threads that have not returned yet. */
  private final AtomicInteger stuck = new AtomicInteger();
  private final int maxStuck;

  public GuardedReward(RewardFunction delegate, String name, Duration timeout, int parallelism) {
    this.delegate = Objects.requireNonNull(delegate, "delegate");
    this.name = Objects.requireNonNull(name, "name");
    if (timeout == null || timeout.isZero() || timeout.isNegative()) {
      throw new IllegalArgumentException("timeout must be positive, got " + timeout);
    }
    if (parallelism < 1) {
      throw new IllegalArgumentException("parallelism must be at least 1, got " + parallelism);
    }
    this.timeout = timeout;
    this.timeoutNanos = timeout.toNanos();
    this.parallelism = parallelism;
    this.maxStuck = Math.max(MIN_STUCK_BOUND, 4 * parallelism);
    this.threads = Executors.newCachedThreadPool(daemonThreads("reward-" + name + "-" + POOLS.incrementAndGet()));
  }

  /** The guarded reward for {@code settings}, created through {@code registry}. */
  public static GuardedReward of(RewardFunction delegate, RewardSettings settings) {
    return new GuardedReward(delegate, settings.name(), settings.timeout(), settings.parallelism());
  }

  /** How many scoring threads were abandoned because they ran past the timeout (they may still be running). */
  public int abandonedThreads() {
    return abandoned.get();
  }

  /** Abandoned scoring threads that are still running (at most {@link #maxStuckThreads()}). */
  public int stuckThreads() {
    return stuck.get();
  }

  /**
   * The most abandoned threads that may still run: beyond it the reward is not called (requests fail at once,
   * naming why) until one of them returns, so a reward that hangs for good cannot pile up threads without bound.
   */
  public int maxStuckThreads() {
    return maxStuck;
  }

  public RewardFunction delegate() {
    return delegate;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    return score(List.of(request)).get(0);
  }

  @Override
  public boolean scoresBatches() {
    return true;
  }

  @Override
  public List<RewardResult> score(List<RewardRequest> batch) {
    if (batch.isEmpty()) {
      return List.of();
    }
    int hung = waitForStuck();
    if (hung >= maxStuck) {
      return allFailed(batch.size(), name + ": not called: " + hung + " of its calls are still running past the "
          + "timeout of " + human(timeout) + " (at most " + maxStuck + "); it is called again once one returns");
    }
    try {
      return delegate.scoresBatches() ? scoreBatch(batch) : scoreEach(batch);
    } catch (RuntimeException | Error e) {
      // the guard's own machinery failed (for example no thread could be started): still never throw
      String reason = name + ": could not run the reward: " + describe(e);
      List<RewardResult> out = new ArrayList<>(batch.size());
      for (int i = 0; i < batch.size(); i++) {
        out.add(RewardResult.failed(reason));
      }
      return out;
    }
  }

  // ---- per-request rewards: lanes pull the next request; a stuck lane is abandoned and replaced ----

  private final class Lane implements Runnable {
    private final List<RewardRequest> batch;
    private final AtomicReferenceArray<RewardResult> results;
    private final AtomicInteger next;
    private final Object done;
    private final AtomicInteger remaining;
    volatile int current = -1;
    volatile long startedNanos;
    volatile Thread thread;
    volatile boolean abandonedLane;
    final AtomicInteger state = new AtomicInteger(RUNNING);

    Lane(List<RewardRequest> batch, AtomicReferenceArray<RewardResult> results, AtomicInteger next,
        AtomicInteger remaining, Object done) {
      this.batch = batch;
      this.results = results;
      this.next = next;
      this.remaining = remaining;
      this.done = done;
    }

    @Override
    public void run() {
      thread = Thread.currentThread();
      try {
        while (!abandonedLane) {
          int i = next.getAndIncrement();
          if (i >= batch.size()) {
            return;
          }
          startedNanos = System.nanoTime();
          current = i;
          RewardResult result = check(scoreSafely(batch.get(i)));
          current = -1;
          complete(results, i, result, remaining, done);
        }
      } finally {
        current = -1;
        thread = null;
        ended(state);
        Thread.interrupted(); // clear a late interrupt before the pool reuses the thread
        synchronized (done) {
          done.notifyAll();
        }
      }
    }
  }

  private List<RewardResult> scoreEach(List<RewardRequest> batch) {
    int n = batch.size();
    AtomicReferenceArray<RewardResult> results = new AtomicReferenceArray<>(n);
    AtomicInteger next = new AtomicInteger();
    AtomicInteger remaining = new AtomicInteger(n);
    Object done = new Object();
    List<Lane> lanes = new ArrayList<>();
    for (int k = 0; k < Math.min(parallelism, n); k++) {
      lanes.add(startLane(batch, results, next, remaining, done));
    }
    while (remaining.get() > 0) {
      long now = System.nanoTime();
      long wait = timeoutNanos;
      List<Lane> replacements = new ArrayList<>();
      for (Lane lane : lanes) {
        int i = lane.current;
        if (i < 0 || lane.abandonedLane && results.get(i) != null) {
          continue;
        }
        long elapsed = now - lane.startedNanos;
        if (elapsed >= timeoutNanos && lane.current == i) {
          if (complete(results, i, RewardResult.failed(name + ": timed out after " + human(timeout)), remaining,
              done)) {
            abandon(lane);
            if (next.get() < n) {
              replacements.add(startLane(batch, results, next, remaining, done));
            }
          }
        } else {
          wait = Math.min(wait, timeoutNanos - elapsed);
        }
      }
      lanes.addAll(replacements);
      lanes.removeIf(l -> l.abandonedLane && l.current < 0);
      boolean anyRunning = lanes.stream().anyMatch(l -> !l.abandonedLane);
      if (!anyRunning && next.get() < n) {
        lanes.add(startLane(batch, results, next, remaining, done));
      }
      synchronized (done) {
        if (remaining.get() > 0) {
          try {
            long waitMs = Math.max(1, wait / 1_000_000);
            done.wait(waitMs);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failRemaining(results, "interrupted while waiting for the reward", remaining, done);
          }
        }
      }
    }
    List<RewardResult> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(results.get(i));
    }
    return out;
  }

  private Lane startLane(List<RewardRequest> batch, AtomicReferenceArray<RewardResult> results, AtomicInteger next,
      AtomicInteger remaining, Object done) {
    Lane lane = new Lane(batch, results, next, remaining, done);
    threads.execute(lane);
    return lane;
  }

  private void abandon(Lane lane) {
    lane.abandonedLane = true;
    Thread t = lane.thread;
    if (t != null) {
      t.interrupt();
    }
    abandoned(lane.state);
    int count = abandoned.incrementAndGet();
    log.warn("reward '{}' ran past its timeout of {}; abandoned its thread ({} so far)", name, human(timeout), count);
  }

  /**
   * While the most abandoned threads still run, waits up to the timeout for one to return (so a hung reward fails
   * requests at the pace of its timeout, as before the bound, not at once); returns how many still run.
   */
  private int waitForStuck() {
    long deadline = System.nanoTime() + timeoutNanos;
    int hung = stuck.get();
    while (hung >= maxStuck && System.nanoTime() < deadline) {
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
      hung = stuck.get();
    }
    return hung;
  }

  /** A thread given up on: counted as stuck unless it already returned. */
  private void abandoned(AtomicInteger state) {
    if (state.compareAndSet(RUNNING, ABANDONED)) {
      stuck.incrementAndGet();
    }
  }

  /** A scoring thread returned: if it had been given up on, it is stuck no more. */
  private void ended(AtomicInteger state) {
    if (state.getAndSet(ENDED) == ABANDONED) {
      stuck.decrementAndGet();
    }
  }

  private static boolean complete(AtomicReferenceArray<RewardResult> results, int i, RewardResult result,
      AtomicInteger remaining, Object done) {
    if (results.compareAndSet(i, null, result)) {
      if (remaining.decrementAndGet() == 0) {
        synchronized (done) {
          done.notifyAll();
        }
      }
      return true;
    }
    return false;
  }

  private void failRemaining(AtomicReferenceArray<RewardResult> results, String why, AtomicInteger remaining,
      Object done) {
    for (int i = 0; i < results.length(); i++) {
      complete(results, i, RewardResult.failed(name + ": " + why), remaining, done);
    }
  }

  private RewardResult scoreSafely(RewardRequest request) {
    try {
      return delegate.scoreOne(request);
    } catch (Throwable e) { // a reward's error of any kind is a failed score, not a dead scorer
      if (e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) {
        log.error("reward '{}' hit {}", name, e.toString());
      }
      return RewardResult.failed(name + ": " + describe(e));
    }
  }

  // ---- batch rewards: one call per batch ----

  private List<RewardResult> scoreBatch(List<RewardRequest> batch) {
    int n = batch.size();
    Object done = new Object();
    @SuppressWarnings("unchecked")
    List<RewardResult>[] answer = new List[1];
    String[] error = new String[1];
    Thread[] worker = new Thread[1];
    boolean[] finished = new boolean[1];
    AtomicInteger state = new AtomicInteger(RUNNING);
    threads.execute(() -> {
      synchronized (done) {
        worker[0] = Thread.currentThread();
      }
      List<RewardResult> got = null;
      String err = null;
      try {
        got = delegate.score(batch);
      } catch (Throwable e) {
        err = describe(e);
      }
      synchronized (done) {
        answer[0] = got;
        error[0] = err;
        finished[0] = true;
        worker[0] = null;
        done.notifyAll();
      }
      ended(state);
      Thread.interrupted();
    });
    long deadline = System.nanoTime() + timeoutNanos;
    synchronized (done) {
      while (!finished[0]) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          break;
        }
        try {
          done.wait(Math.max(1, left / 1_000_000));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return allFailed(n, name + ": interrupted while waiting for the reward");
        }
      }
      if (!finished[0]) {
        if (worker[0] != null) {
          worker[0].interrupt();
        }
        abandoned(state);
        int count = abandoned.incrementAndGet();
        log.warn("reward '{}' ran past its timeout of {} on a batch of {}; abandoned its thread ({} so far)", name,
            human(timeout), n, count);
        return allFailed(n, name + ": timed out after " + human(timeout) + " (batch of " + n + ")");
      }
    }
    if (error[0] != null) {
      return allFailed(n, name + ": " + error[0]);
    }
    List<RewardResult> got = answer[0];
    if (got == null || got.size() != n) {
      return allFailed(n, name + ": returned " + (got == null ? "no list" : got.size() + " results") + " for "
          + n + " requests");
    }
    List<RewardResult> out = new ArrayList<>(n);
    for (RewardResult r : got) {
      out.add(check(r));
    }
    return out;
  }

  private static List<RewardResult> allFailed(int n, String reason) {
    List<RewardResult> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(RewardResult.failed(reason));
    }
    return out;
  }

  // ---- checks shared by both paths ----

  private RewardResult check(RewardResult r) {
    if (r == null) {
      return RewardResult.failed(name + ": returned no result");
    }
    if (!r.isOk()) {
      return r;
    }
    for (Map.Entry<String, Double> c : r.components().entrySet()) {
      if (c.getValue() == null || !Double.isFinite(c.getValue())) {
        return RewardResult.failed(name + ": returned a non-finite component '" + c.getKey() + "' = " + c.getValue());
      }
    }
    return r;
  }

  private static String describe(Throwable e) {
    if (e instanceof IllegalArgumentException && e.getStackTrace().length > 0
        && e.getStackTrace()[0].getClassName().equals(RewardResult.class.getName())) {
      return "returned a non-finite reward (" + e.getMessage() + ")";
    }
    String message = e.getMessage();
    return "threw " + e.getClass().getName() + (message == null || message.isBlank() ? "" : ": " + message);
  }

  private static String human(Duration d) {
    long ms = d.toMillis();
    return ms % 1000 == 0 ? (ms / 1000) + "s" : ms + "ms";
  }

  private static ThreadFactory daemonThreads(String prefix) {
    AtomicInteger count = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + "-" + count.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  @Override
  public void close() {
    threads.shutdownNow();
    try {
      delegate.close();
    } catch (RuntimeException e) {
      log.warn("closing reward '{}' failed: {}", name, e.toString());
    }
  }
}
