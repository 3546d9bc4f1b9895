package dev.nucleon.actors.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
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
    l.dropped(List.of(2L), "zero-variance");
    assertEquals(Optional.of(1L), l.nextRequeued());
    assertEquals(Optional.empty(), l.entry(2), "a dropped prompt is counted, not kept");
    assertEquals(1, l.count(PromptLedger.State.DROPPED));
    assertEquals(0, l.accepted());
    assertThrows(IllegalStateException.class, () -> l.consumed(List.of(2L)));
    assertEquals(Map.of("zero-variance", 1L), l.accounting().dropped());
    assertEquals(Map.of("stale", 1L), l.accounting().reissued());
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
    resumed.resume(new PromptLedger.Accounting(13, 10, Map.of(), Map.of()), l.unfinished());
    assertEquals(10, resumed.consumed());
    assertEquals(Map.of("resumed", 3L), resumed.accounting().reissued());
    assertEquals(3, resumed.accounting().live());
    assertEquals(3, resumed.count(PromptLedger.State.PENDING));
    assertEquals(Optional.of(1L), resumed.nextRequeued());
    assertEquals(1, resumed.issue(1, "w", 0));
  }

  @Test
  void everyPromptReadIsTrainedDroppedOrLiveAndTerminalOnesAreForgotten() {
    PromptLedger l = new PromptLedger(4, 1);
    l.droppedAtRead("too-long", 2);
    for (long id = 1; id <= 6; id++) {
      l.issue(id, "w", 0);
    }
    l.admit(1, 0);
    l.admit(2, 0);
    l.consumed(List.of(1L));
    l.dropped(List.of(2L), "zero-variance");
    assertTrue(l.rejected(3, 0, "too-long"));
    assertFalse(l.rejected(3, 0, "too-long"), "once");
    assertFalse(l.failed(4, 0, false, 2), "its batch failed: issued again, alone");
    assertTrue(l.entry(4).orElseThrow().suspect());
    assertEquals(1, l.issue(4, "w", 0));
    assertFalse(l.failed(4, 1, true, 2), "first failure alone: issued again");
    assertEquals(2, l.issue(4, "w", 0));
    assertTrue(l.failed(4, 2, true, 2), "second failure alone: dropped");
    assertFalse(l.failed(5, 7, true, 2), "an attempt that is not current is ignored");
    l.workerLost("w");

    PromptLedger.Accounting a = l.accounting();
    assertEquals(8, a.read(), "2 dropped at read + 6 issued");
    assertEquals(1, a.trained());
    assertEquals(Map.of("too-long", 3L, "zero-variance", 1L, "generation-failed", 1L), a.dropped());
    assertEquals(Map.of("generation-failed", 2L, "worker-lost", 2L), a.reissued());
    assertEquals(2, a.live(), "prompts 5 and 6, pending again");
    assertEquals(a.live(), l.size(), "only live prompts keep an entry");
    assertEquals(a.read(), a.trained() + a.droppedTotal() + a.live());
  }

  @Test
  void withATokenBudgetAdmissionCountsTheGroupsNotYetTrained() {
    // a token-budget batch may take more groups than batch-groups: here version 1 was made from 6 short groups
    PromptLedger byGroups = new PromptLedger(2, 1);
    PromptLedger byTokens = new PromptLedger(2, 1, true);
    for (PromptLedger l : List.of(byGroups, byTokens)) {
      for (long id = 0; id < 6; id++) {
        l.issue(id, "w", 0);
        l.admit(id, 0);
        l.consumed(List.of(id));
      }
    }
    assertFalse(byGroups.mayStart(1), "by group count, 6 accepted groups use up versions 0..3 and nothing starts");
    for (int i = 0; i < 4; i++) {
      assertTrue(byTokens.mayStart(1), "by tokens, the next batch's groups start");
      byTokens.issue(100 + i, "w", 0);
    }
    assertFalse(byTokens.mayStart(1), "(max-staleness + 1) x batch-groups = 4 groups wait at most");
  }
}
