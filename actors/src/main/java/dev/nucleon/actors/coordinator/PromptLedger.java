package dev.nucleon.actors.coordinator;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Where every prompt of the run is, by id, whether a new prompt group may start, and the run's prompt accounting.
 *
 * <p>States: PENDING (waiting to be issued, e.g. after its worker was lost), IN_FLIGHT (issued to a worker as
 * attempt n), SCORED (its scored group was admitted into the replay buffer), CONSUMED (trained on) and DROPPED
 * (never trained: filtered by the replay buffer, refused by a worker, failed too often; terminal). Results of an
 * attempt other than the current one are refused, so a group that comes back after its prompt was re-issued is never
 * trained twice. Only live prompts (pending, in flight, scored) keep an entry; consumed and dropped ones are counted
 * and forgotten, so the ledger's size is bounded by the staleness window, not by the length of the run.
 *
 * <p>Accounting: every prompt read from the dataset is, at any time, trained, dropped (by reason) or live, so
 * {@code read == trained + dropped + live}; re-issues are counted by reason.
 *
 * <p>Admission (AReaL's staleness rule): a new group may start only while
 * {@code accepted + running + 1 <= (maxStaleness + version + 1) * batchGroups}, where accepted counts SCORED and
 * CONSUMED groups and running counts IN_FLIGHT ones. With {@code maxStaleness = 0} no group of the next batch starts
 * before the policy version that will train on it exists: synchronous RL through the same code path. With batches
 * cut by a token budget, a batch takes as many groups as its tokens need, not {@code batchGroups}; the rule then counts
 * the groups not yet trained: {@code scored + running + 1 <= (maxStaleness + 1) * batchGroups}, so a version that
 * took many short groups does not starve the next batch (the replay buffer's staleness filter still bounds how old
 * a trained sample may be).
 *
 * <p>Plain class, confined to the coordinator actor.
 */
public final class PromptLedger {

  /** A prompt's place in the run. */
  public enum State {
    PENDING,
    IN_FLIGHT,
    SCORED,
    CONSUMED,
    DROPPED
  }

  /** Why a prompt was issued again. */
  public static final String WORKER_LOST = "worker-lost";
  public static final String TIMEOUT = "timeout";
  public static final String STALE = "stale";
  public static final String GENERATION_FAILED = "generation-failed";
  public static final String RESUMED = "resumed";

  /**
   * One live prompt's record; {@code failures} counts the generations that failed with it alone in its batch, and
   * {@code suspect} marks a prompt whose batch failed: it is issued alone next, so one bad prompt cannot take the
   * rest of its batch down with it.
   */
  public record Entry(long promptId, int attempt, State state, String worker, long issuedAtNanos, int failures,
      boolean suspect) {}

  /**
   * The run's prompt totals: read from the dataset, trained, dropped and re-issued by reason. Survives a resume (in
   * the coordinator's checkpoint state).
   */
  public record Accounting(long read, long trained, Map<String, Long> dropped, Map<String, Long> reissued) {
    public Accounting {
      dropped = Map.copyOf(dropped);
      reissued = Map.copyOf(reissued);
    }

    public long droppedTotal() {
      return dropped.values().stream().mapToLong(Long::longValue).sum();
    }

    /** Read but neither trained nor dropped: pending, in flight or scored. */
    public long live() {
      return read - trained - droppedTotal();
    }
  }

  private final int batchGroups;
  private final int maxStaleness;
  private final boolean byTokens;
  private final Map<Long, Entry> entries = new HashMap<>();
  private final Deque<Long> requeued = new ArrayDeque<>();
  private final EnumMap<State, Integer> counts = new EnumMap<>(State.class);
  private long read;
  private long trained;
  private final Map<String, Long> droppedBy = new TreeMap<>();
  private final Map<String, Long> reissuedBy = new TreeMap<>();

  public PromptLedger(int batchGroups, int maxStaleness) {
    this(batchGroups, maxStaleness, false);
  }

  /** @param byTokens whether batches are cut by a token budget (see the class comment) */
  public PromptLedger(int batchGroups, int maxStaleness, boolean byTokens) {
    if (batchGroups < 1 || maxStaleness < 0) {
      throw new IllegalArgumentException("batch-groups must be >= 1 and max-staleness >= 0");
    }
    this.batchGroups = batchGroups;
    this.maxStaleness = maxStaleness;
    this.byTokens = byTokens;
    for (State s : State.values()) {
      counts.put(s, 0);
    }
  }

  /** Groups admitted into the replay buffer or trained on (the rule's "accepted"). */
  public long accepted() {
    return trained + counts.get(State.SCORED);
  }

  /** Groups being generated (the rule's "running"). */
  public int running() {
    return counts.get(State.IN_FLIGHT);
  }

  /** Prompts in a state (consumed and dropped: totals of the run). */
  public long count(State s) {
    return switch (s) {
      case CONSUMED -> trained;
      case DROPPED -> droppedBy.values().stream().mapToLong(Long::longValue).sum();
      default -> counts.get(s);
    };
  }

  /** Consumed groups, including those consumed before a resume. */
  public long consumed() {
    return trained;
  }

  /** The run's prompt totals. */
  public Accounting accounting() {
    return new Accounting(read, trained, droppedBy, reissuedBy);
  }

  /** Whether one more group may start while the learner is at {@code version}. */
  public boolean mayStart(int version) {
    if (byTokens) {
      return counts.get(State.SCORED) + running() + 1 <= (long) (maxStaleness + 1) * batchGroups;
    }
    return accepted() + running() + 1 <= (long) (maxStaleness + version + 1) * batchGroups;
  }

  /** The next prompt to re-issue (a lost worker's or a stale group's), if any. */
  public Optional<Long> nextRequeued() {
    return Optional.ofNullable(requeued.peekFirst());
  }

  /**
   * Marks a prompt issued to a worker (a prompt not seen before counts as read); returns its attempt number (0 for
   * the first issue).
   */
  public int issue(long promptId, String worker, long nowNanos) {
    Entry e = entries.get(promptId);
    int attempt;
    int failures = 0;
    if (e == null) {
      attempt = 0;
      read++;
    } else if (e.state() == State.PENDING) {
      attempt = e.attempt() + 1;
      failures = e.failures();
      requeued.remove(promptId);
    } else {
      throw new IllegalStateException("prompt " + promptId + " is " + e.state() + ", it cannot be issued again");
    }
    put(new Entry(promptId, attempt, State.IN_FLIGHT, worker, nowNanos, failures, e != null && e.suspect()), e);
    return attempt;
  }

  /** Prompts dropped as they were read (e.g. empty or too long for the model), counted as read and dropped. */
  public void droppedAtRead(String reason, long n) {
    read += n;
    droppedBy.merge(reason, n, Long::sum);
  }

  /**
   * The replay buffer asks whether a scored group may enter: yes only for the current attempt of an in-flight
   * prompt (which then becomes SCORED).
   */
  public boolean admit(long promptId, int attempt) {
    Entry e = entries.get(promptId);
    if (e == null || e.state() != State.IN_FLIGHT || e.attempt() != attempt) {
      return false;
    }
    put(new Entry(promptId, attempt, State.SCORED, e.worker(), e.issuedAtNanos(), e.failures(), false), e);
    return true;
  }

  /** Groups the learner trained on. */
  public void consumed(Collection<Long> promptIds) {
    for (long id : promptIds) {
      remove(require(id, State.SCORED));
      trained++;
    }
  }

  /** Groups the replay buffer filtered out for good (zero variance, failed reward, ...): never re-issued. */
  public void dropped(Collection<Long> promptIds, String reason) {
    for (long id : promptIds) {
      remove(require(id, State.SCORED));
      droppedBy.merge(reason, 1L, Long::sum);
    }
  }

  /**
   * A worker refused to generate the current attempt of a prompt (e.g. too long for the model): dropped for good.
   * Returns false for an attempt that is no longer current.
   */
  public boolean rejected(long promptId, int attempt, String reason) {
    Entry e = entries.get(promptId);
    if (e == null || e.state() != State.IN_FLIGHT || e.attempt() != attempt) {
      return false;
    }
    remove(e);
    droppedBy.merge(reason, 1L, Long::sum);
    return true;
  }

  /**
   * Generating the current attempt of a prompt failed. In a batch of several ({@code alone} false), it becomes a
   * suspect and goes back to pending, to be issued alone; alone, it counts a failure and is dropped once it failed
   * alone {@code maxFailures} times. Returns whether it was dropped (false also for an attempt no longer current).
   */
  public boolean failed(long promptId, int attempt, boolean alone, int maxFailures) {
    Entry e = entries.get(promptId);
    if (e == null || e.state() != State.IN_FLIGHT || e.attempt() != attempt) {
      return false;
    }
    Entry counted = new Entry(promptId, attempt, State.IN_FLIGHT, e.worker(), e.issuedAtNanos(),
        e.failures() + (alone ? 1 : 0), true);
    put(counted, e);
    if (counted.failures() >= maxFailures) {
      remove(counted);
      droppedBy.merge(GENERATION_FAILED, 1L, Long::sum);
      return true;
    }
    requeue(counted, GENERATION_FAILED);
    return false;
  }

  /** Groups rejected as too stale: generated again with newer weights. */
  public void stale(Collection<Long> promptIds) {
    for (long id : promptIds) {
      requeue(require(id, State.SCORED), STALE);
    }
  }

  /** A worker is gone: its in-flight prompts go back to pending (front of the queue). Returns their ids. */
  public List<Long> workerLost(String worker) {
    List<Long> lost = new ArrayList<>();
    for (Entry e : List.copyOf(entries.values())) {
      if (e.state() == State.IN_FLIGHT && worker.equals(e.worker())) {
        requeue(e, WORKER_LOST);
        lost.add(e.promptId());
      }
    }
    return lost;
  }

  /** In-flight prompts issued before {@code deadlineNanos} go back to pending (a stuck worker or scorer). */
  public List<Long> expire(long deadlineNanos) {
    List<Long> expired = new ArrayList<>();
    for (Entry e : List.copyOf(entries.values())) {
      if (e.state() == State.IN_FLIGHT && e.issuedAtNanos() < deadlineNanos) {
        requeue(e, TIMEOUT);
        expired.add(e.promptId());
      }
    }
    return expired;
  }

  /** A live prompt's record (consumed and dropped prompts have none). */
  public Optional<Entry> entry(long promptId) {
    return Optional.ofNullable(entries.get(promptId));
  }

  /** Live entries (pending, in flight or scored). */
  public int size() {
    return entries.size();
  }

  /** Prompts issued but not finished (pending re-issue, in flight or scored): what a resumed run must redo. */
  public List<Long> unfinished() {
    List<Long> out = new ArrayList<>(entries.keySet());
    out.sort(Long::compare);
    return out;
  }

  /**
   * Restores a resumed run's accounting; the unfinished prompts are pending again, first in line (counted as
   * re-issued, reason {@link #RESUMED}).
   */
  public void resume(Accounting saved, List<Long> unfinished) {
    read = saved.read();
    trained = saved.trained();
    droppedBy.clear();
    droppedBy.putAll(saved.dropped());
    reissuedBy.clear();
    reissuedBy.putAll(saved.reissued());
    for (long id : unfinished) {
      Entry e = new Entry(id, 0, State.PENDING, null, 0, 0, false);
      put(e, entries.get(id));
      requeued.addLast(id);
    }
    if (!unfinished.isEmpty()) {
      reissuedBy.merge(RESUMED, (long) unfinished.size(), Long::sum);
    }
  }

  private void requeue(Entry e, String reason) {
    put(new Entry(e.promptId(), e.attempt(), State.PENDING, null, 0, e.failures(), e.suspect()), e);
    requeued.addFirst(e.promptId());
    reissuedBy.merge(reason, 1L, Long::sum);
  }

  private Entry require(long id, State state) {
    Entry e = entries.get(id);
    if (e == null || e.state() != state) {
      throw new IllegalStateException("prompt " + id + " is " + (e == null ? "not live" : e.state()) + ", expected "
          + state);
    }
    return e;
  }

  private void put(Entry next, Entry previous) {
    if (previous != null) {
      counts.merge(previous.state(), -1, Integer::sum);
    }
    counts.merge(next.state(), 1, Integer::sum);
    entries.put(next.promptId(), next);
  }

  private void remove(Entry e) {
    counts.merge(e.state(), -1, Integer::sum);
    entries.remove(e.promptId());
    requeued.remove(e.promptId());
  }
}
