package dev.nucleon.actors.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class PromptLedgerTest {

  @Test
  void synchronousAdmissionStartsOnlyOneBatchPerVersion() {
    PromptLedger l = new PromptLedger(2, 0);
    assertTrue(l.mayStart(0));
    l.issue(1, "w", 0);
    l.issue(2, "w", 0);
    assertFalse(l.mayStart(0), "two groups make the batch of version 0");
    assertTrue(l.admit(1, 0));
    assertTrue(l.admit(2, 0));
    assertFalse(l.mayStart(0));
    l.consumed(List.of(1L, 2L));
    assertFalse(l.mayStart(0), "nothing more until version 1 exists");
    assertTrue(l.mayStart(1));
  }

  @Test
  void staleness1AllowsOneBatchAhead() {
    PromptLedger l = new PromptLedger(2, 1);
    for (long id = 0; id < 4; id++) {
      assertTrue(l.mayStart(0));
      l.issue(id, "w", 0);
    }
    assertFalse(l.mayStart(0));
  }

  @Test
  void onlyTheCurrentAttemptIsAdmittedAndLostWorkIsReissued() {
    PromptLedger l = new PromptLedger(4, 1);
    l.issue(7, "worker-a", 0);
    l.issue(8, "worker-b", 0);
    assertEquals(List.of(7L), l.workerLost("worker-a"));
    assertEquals(PromptLedger.State.PENDING, l.entry(7).orElseThrow().state());
    assertEquals(Optional.of(7L), l.nextRequeued());
    assertEquals(1, l.issue(7, "worker-b", 1), "second attempt");
    assertFalse(l.admit(7, 0), "the lost worker's late result is refused");
    assertTrue(l.admit(7, 1));
    assertFalse(l.admit(7, 1), "and admitted once only");
    assertEquals(1, l.running());
    assertEquals(1, l.accepted());
  }

  @Test
  void staleGroupsAreRegeneratedDroppedOnesAreNot() {
    PromptLedger l = new PromptLedger(4, 1);
    l.issue(1, "w", 0);
    l.issue(2, "w", 0);
    l.admit(1, 0);
    l.admit(2, 0);
    l.stale(List.of(1L));
    l.dropped(List.of(2L));
    assertEquals(Optional.of(1L), l.nextRequeued());
    assertEquals(PromptLedger.State.DROPPED, l.entry(2).orElseThrow().state());
    assertEquals(0, l.accepted());
    assertThrows(IllegalStateException.class, () -> l.consumed(List.of(2L)));
  }

  @Test
  void expiryAndResumeKeepEveryPromptAccountedFor() {
    PromptLedger l = new PromptLedger(2, 1);
    l.issue(1, "w", 100);
    l.issue(2, "w", 500);
    l.issue(3, "w", 600);
    l.admit(3, 0);
    assertEquals(List.of(1L), l.expire(200));
    assertEquals(List.of(1L, 2L, 3L), l.unfinished());
    PromptLedger resumed = new PromptLedger(2, 1);
    resumed.resume(10, l.unfinished());
    assertEquals(10, resumed.consumed());
    assertEquals(3, resumed.count(PromptLedger.State.PENDING));
    assertEquals(Optional.of(1L), resumed.nextRequeued());
    assertEquals(1, resumed.issue(1, "w", 0));
  }
}
