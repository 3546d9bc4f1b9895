package dev.nucleon.rollout.env;

import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Environment;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The guard every environment runs behind, as rewards run behind theirs: a start or a step that throws, runs past
 * {@code timeout} or answers nothing becomes a failed step naming why, which ends the episode without a reward
 * (never a silent zero). A call past its timeout is interrupted and its thread abandoned; the episode is closed.
 */
public final class GuardedEnvironment implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(GuardedEnvironment.class);

  private final Environment delegate;
  private final String name;
  private final Duration timeout;
  private final ExecutorService threads;
  private final AtomicInteger abandoned = new AtomicInteger();

  public GuardedEnvironment(Environment delegate, String name, Duration timeout) {
    this.delegate = delegate;
    this.name = name;
    this.timeout = timeout;
    AtomicInteger n = new AtomicInteger();
    this.threads = Executors.newCachedThreadPool(r -> {
      Thread t = new Thread(r, "nucleon-env-" + name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  /** An episode in progress behind the guard; closing it again does nothing. */
  public final class GuardedEpisode implements AutoCloseable {
    private final Episode episode;
    private final List<EnvMessage> opening;
    private final StepResult failedStart;
    private boolean over;
    private boolean closed;

    private GuardedEpisode(Episode episode, List<EnvMessage> opening, StepResult failedStart) {
      this.episode = episode;
      this.opening = opening;
      this.failedStart = failedStart;
      this.over = failedStart != null;
    }

    /** The messages before the model's first turn. */
    public List<EnvMessage> opening() {
      return opening;
    }

    /** Why the episode could not start, or null. */
    public StepResult failedStart() {
      return failedStart;
    }

    /** The environment's answer to a model turn, guarded; a step after the end is refused. */
    public StepResult step(String modelTurn) {
      if (over) {
        throw new IllegalStateException("the episode is over");
      }
      StepResult r = call("step", () -> episode.step(modelTurn));
      if (r == null) {
        r = StepResult.failed("environment '" + name + "': step answered nothing");
      }
      over = r.done();
      return r;
    }

    /** The episode's counters; none when it never started or its counters fail. */
    public Map<String, Long> counters() {
      if (episode == null) {
        return Map.of();
      }
      try {
        Map<String, Long> c = episode.counters();
        return c == null ? Map.of() : Map.copyOf(c);
      } catch (RuntimeException e) {
        log.warn("environment '{}': its counters failed: {}", name, e.toString());
        return Map.of();
      }
    }

    @Override
    public synchronized void close() {
      if (episode != null && !closed) {
        closed = true;
        try {
          episode.close();
        } catch (RuntimeException e) {
          log.warn("environment '{}': closing an episode failed: {}", name, e.toString());
        }
      }
    }
  }

  /** The environment's name in config. */
  public String name() {
    return name;
  }

  /** What ends a model's turn besides its stop tokens ({@link Environment#turnStops()}). */
  public List<String> turnStops() {
    return delegate.turnStops();
  }

  /** Episodes the environment holds at once ({@link Environment#capacity()}). */
  public int capacity() {
    return delegate.capacity();
  }

  /** Starts an episode; one that cannot start has {@link GuardedEpisode#failedStart()} set. */
  public GuardedEpisode start(EpisodeStart start) {
    // the started episode is handed over here; a start that returns after the guard gave up closes its own episode
    AtomicReference<Object> handover = new AtomicReference<>();
    Object abandoned = new Object();
    StepResult failure = call("start", () -> {
      Episode e = delegate.start(start);
      if (e == null) {
        return StepResult.failed("environment '" + name + "': start answered no episode");
      }
      List<EnvMessage> opening = List.copyOf(e.opening());
      if (!handover.compareAndSet(null, new Started(e, opening))) {
        e.close();
      }
      return null;
    });
    Object got = handover.getAndSet(abandoned);
    Started started = got instanceof Started s ? s : null;
    if (failure != null) {
      if (started != null) {
        started.episode().close();
      }
      return new GuardedEpisode(null, List.of(), failure);
    }
    return new GuardedEpisode(started.episode(), started.opening(), null);
  }

  private record Started(Episode episode, List<EnvMessage> opening) {}

  /** Runs a call under the timeout; its failure as a failed step (the call's own result otherwise). */
  private StepResult call(String what, Callable<StepResult> body) {
    Future<StepResult> f = threads.submit(body);
    try {
      return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      f.cancel(true);
      int n = abandoned.incrementAndGet();
      log.warn("environment '{}': {} ran past its timeout of {} ms; abandoned its thread ({} so far)", name, what,
          timeout.toMillis(), n);
      return StepResult.failed("environment '" + name + "': " + what + " timed out after " + timeout.toMillis()
          + " ms");
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      return StepResult.failed("environment '" + name + "': " + what + " failed: " + c);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      f.cancel(true);
      return StepResult.failed("environment '" + name + "': interrupted during " + what);
    }
  }

  @Override
  public void close() {
    threads.shutdownNow();
    delegate.close();
  }
}
