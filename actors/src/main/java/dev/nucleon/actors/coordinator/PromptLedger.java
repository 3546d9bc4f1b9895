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

/**
 * Where every prompt of the run is, by id, and whether a new prompt group may start.
 *
 * <p>States: PENDING (waiting to be issued, e.g. after its worker was lost), IN_FLIGHT (issued to a worker as
 * attempt n), SCORED (its scored group was admitted into the replay buffer), CONSUMED (trained on) and DROPPED
 * (filtered by the replay buffer, e.g. a zero-variance group; terminal). Results of an attempt other than the
 * current one are refused, so a group that comes back after its prompt was re-issued is never trained twice.
 *
 * <p>Admission (AReaL's staleness rule): a new group may start only while
 * {@code accepted + running + 1 <= (maxStaleness + version + 1) * batchGroups}, where accepted counts SCORED and
 * CONSUMED groups and running counts IN_FLIGHT ones. With {@code maxStaleness = 0} no group of the next batch starts
 * before the policy version that will train on it exists: synchronous RL through the same code path.
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

  /** One prompt's record. */
  public record Entry(long promptId, int attempt, State state, String worker, long issuedAtNanos) {}

  private final int batchGroups;
  private final int maxStaleness;
  private final Map<Long, Entry> entries = new HashMap<>();
  private final Deque<Long> requeued = new ArrayDeque<>();
  private final EnumMap<State, Integer> counts = new EnumMap<>(State.class);
  private long consumedBefore;

  public PromptLedger(int batchGroups, int maxStaleness) {
    if (batchGroups < 1 || maxStaleness < 0) {
      throw new IllegalArgumentException("batch-groups must be >= 1 and max-staleness >= 0");
    }
    this.batchGroups = batchGroups;
    this.maxStaleness = maxStaleness;
    for (State s : State.values()) {
      counts.put(s, 0);
    }
  }

  /** Groups admitted into the replay buffer or trained on (the rule's "accepted"). */
  public long accepted() {
    return consumedBefore + counts.get(State.SCORED) + counts.get(State.CONSUMED);
  }

  /** Groups being generated (the rule's "running"). */
  public int running() {
    return counts.get(State.IN_FLIGHT);
  }

  public int count(State s) {
    return counts.get(s);
  }

  /** Consumed groups, including those consumed before a resume. */
  public long consumed() {
    return consumedBefore + counts.get(State.CONSUMED);
  }

  /** Whether one more group may start while the learner is at {@code version}. */
  public boolean mayStart(int version) {
    return accepted() + running() + 1 <= (long) (maxStaleness + version + 1) * batchGroups;
  }

  /** The next prompt to re-issue (a lost worker's or a stale group's), if any. */
  public Optional<Long> nextRequeued() {
    return Optional.ofNullable(requeued.peekFirst());
  }

  /** Marks a prompt issued to a worker; returns its attempt number (0 for the first issue). */
  public int issue(long promptId, String worker, long nowNanos) {
    Entry e = entries.get(promptId);
    int attempt;
    if (e == null) {
      attempt = 0;
    } else if (e.state() == State.PENDING) {
      attempt = e.attempt() + 1;
      requeued.remove(promptId);
    } else {
      throw new IllegalStateException("prompt " + promptId + " is " + e.state() + ", it cannot be issued again");
    }
    put(new Entry(promptId, attempt, State.IN_FLIGHT, worker, nowNanos), e);
    return attempt;
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
    put(new Entry(promptId, attempt, State.SCORED, e.worker(), e.issuedAtNanos()), e);
    return true;
  }

  /** Groups the learner trained on. */
  public void consumed(Collection<Long> promptIds) {
    for (long id : promptIds) {
      Entry e = require(id, State.SCORED);
      put(new Entry(id, e.attempt(), State.CONSUMED, e.worker(), e.issuedAtNanos()), e);
    }
  }

  /** Groups the replay buffer filtered out for good (zero variance, overlong): never trained, never re-issued. */
  public void dropped(Collection<Long> promptIds) {
    for (long id : promptIds) {
      Entry e = require(id, State.SCORED);
      put(new Entry(id, e.attempt(), State.DROPPED, e.worker(), e.issuedAtNanos()), e);
    }
  }

  /** Groups rejected as too stale: generated again with newer weights. */
  public void stale(Collection<Long> promptIds) {
    for (long id : promptIds) {
      Entry e = require(id, State.SCORED);
      requeue(e);
    }
  }

  /** A worker is gone: its in-flight prompts go back to pending (front of the queue). Returns their ids. */
  public List<Long> workerLost(String worker) {
    List<Long> lost = new ArrayList<>();
    for (Entry e : List.copyOf(entries.values())) {
      if (e.state() == State.IN_FLIGHT && worker.equals(e.worker())) {
        requeue(e);
        lost.add(e.promptId());
      }
    }
    return lost;
  }

  /** In-flight prompts issued before {@code deadlineNanos} go back to pending (a lost scorer or message). */
  public List<Long> expire(long deadlineNanos) {
    List<Long> expired = new ArrayList<>();
    for (Entry e : List.copyOf(entries.values())) {
      if (e.state() == State.IN_FLIGHT && e.issuedAtNanos() < deadlineNanos) {
        requeue(e);
        expired.add(e.promptId());
      }
    }
    return expired;
  }

  public Optional<Entry> entry(long promptId) {
    return Optional.ofNullable(entries.get(promptId));
  }

  /** Prompts issued but not finished (pending re-issue, in flight or scored): what a resumed run must redo. */
  public List<Long> unfinished() {
    List<Long> out = new ArrayList<>();
    for (Entry e : entries.values()) {
      if (e.state() == State.PENDING || e.state() == State.IN_FLIGHT || e.state() == State.SCORED) {
        out.add(e.promptId());
      }
    }
    out.sort(Long::compare);
    return out;
  }

  /**
   * Restores a resumed run's accounting: {@code consumed} groups were trained before, and the unfinished prompts
   * are pending again, first in line.
   */
  public void resume(long consumed, List<Long> unfinished) {
    consumedBefore = consumed;
    for (long id : unfinished) {
      Entry e = new Entry(id, 0, State.PENDING, null, 0);
      put(e, entries.get(id));
      requeued.addLast(id);
    }
  }

  private void requeue(Entry e) {
    put(new Entry(e.promptId(), e.attempt(), State.PENDING, null, 0), e);
    requeued.addFirst(e.promptId());
  }

  private Entry require(long id, State state) {
    Entry e = entries.get(id);
    if (e == null || e.state() != state) {
      throw new IllegalStateException("prompt " + id + " is " + (e == null ? "unknown" : e.state()) + ", expected "
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
}
