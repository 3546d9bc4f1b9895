package dev.nucleon.replay;

import static dev.nucleon.replay.Fixtures.addGroup;
import static dev.nucleon.replay.Fixtures.failed;
import static dev.nucleon.replay.Fixtures.ok;
import static dev.nucleon.replay.Fixtures.scored;
import static dev.nucleon.replay.Fixtures.settings;
import static dev.nucleon.replay.Fixtures.traj;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.core.rollout.FinishReason;
import java.util.List;
import org.junit.jupiter.api.Test;

class ReplaySnapshotTest {

  private static ReplaySettings settings4() {
    ReplaySettings s = Fixtures.withFilters(settings(4, "reinforce-pp", 2), 1, true, true);
    return Fixtures.with(s, FailedRewardPolicy.DROP_GROUP);
  }

  /** A buffer with a cut batch behind it, two queued groups, a doomed pending group and a plain pending one. */
  private static ReplayBuffer populated() {
    ReplayBuffer b = new ReplayBuffer(settings4());
    addGroup(b, 1, 1, 0, 0, 0);
    addGroup(b, 2, 1, 1, 0, 0);
    b.pollBatch().orElseThrow();
    addGroup(b, 3, 0, 0, 0, 0); // zero variance: dropped
    b.add(scored(traj(4, 0, 2, 3, FinishReason.LENGTH, 0), 1.0)); // overlong
    b.add(ok(4, 1, 0.5));
    b.add(ok(4, 2, 0.0));
    b.add(ok(4, 3, 0.0));
    b.setPolicyVersion(1);
    addGroup(b, 5, 0, 1, 1, 1);
    b.add(failed(6, 2)); // doomed pending group
    b.add(ok(6, 0, 1.0));
    b.add(scored(traj(7, 3, 2, 3, FinishReason.STOP, 1), 0.25)); // plain pending group
    return b;
  }

  /** The same continuation applied to a buffer; returns the batches' advantages and prompt ids. */
  private static List<Object> continueRun(ReplayBuffer b) {
    b.add(ok(6, 1, 0.0));
    assertEquals(AddResult.GroupStatus.DROPPED, b.add(ok(6, 3, 0.0)).group());
    for (int i = 0; i < 3; i++) {
      b.add(scored(traj(7, i, 2, 3, FinishReason.STOP, 1), i * 0.5));
    }
    TrainingBatch x = b.pollBatch().orElseThrow();
    TrainingBatch y = b.flush().orElseThrow();
    return List.of(x.promptIds(), Fixtures.advantages(x), y.promptIds(), Fixtures.advantages(y), x.stats(),
        y.stats(), b.counters());
  }

  @Test
  void jsonRoundTripRestoresAnEquivalentBuffer() throws Exception {
    ReplayBuffer original = populated();
    ReplaySnapshot snap = original.snapshot();
    assertEquals(2, snap.pending().size());
    assertEquals(2, snap.ready().size());

    ObjectMapper mapper = new ObjectMapper();
    String json = mapper.writeValueAsString(snap);
    assertFalse(json.contains("NaN"), json);
    ReplaySnapshot read = mapper.readValue(json, ReplaySnapshot.class);
    ReplayBuffer restored = ReplayBuffer.restore(settings4(), read);

    assertEquals(original.counters(), restored.counters());
    assertEquals(original.pendingGroups(), restored.pendingGroups());
    assertEquals(original.readyGroups(), restored.readyGroups());
    assertEquals(original.readyTokens(), restored.readyTokens());
    assertEquals(original.policyVersion(), restored.policyVersion());
    assertEquals(mapper.writeValueAsString(snap), mapper.writeValueAsString(restored.snapshot()));

    List<Object> a = continueRun(original);
    List<Object> b = continueRun(restored);
    assertEquals(a.get(0), b.get(0));
    assertArrayEquals((float[]) a.get(1), (float[]) b.get(1));
    assertEquals(a.get(2), b.get(2));
    assertArrayEquals((float[]) a.get(3), (float[]) b.get(3));
    assertEquals(a.get(4), b.get(4));
    assertEquals(a.get(5), b.get(5));
    assertEquals(a.get(6), b.get(6));
    // sanity: the continuation did what the test intends
    assertEquals(List.of(4L, 5L), a.get(0));
    assertEquals(List.of(7L), a.get(2));
    assertEquals(1, ((ReplayCounters) a.get(6)).droppedGroups(DropReason.FAILED_REWARD));
    assertEquals(1, ((ReplayCounters) a.get(6)).droppedSamples(DropReason.OVERLONG));
  }

  @Test
  void restoreWithAnotherGroupSizeIsRefused() {
    ReplaySnapshot snap = populated().snapshot();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ReplayBuffer.restore(settings4().withGroupSize(8), snap));
    assertTrue(e.getMessage().contains(ReplaySettings.GROUP_SIZE), e.getMessage());
  }

  @Test
  void duplicateDetectionSurvivesRestore() {
    ReplayBuffer restored = ReplayBuffer.restore(settings4(), populated().snapshot());
    assertThrows(DuplicateSampleException.class, () -> restored.add(ok(7, 3, 0.0)));
    assertThrows(DuplicateSampleException.class, () -> restored.add(ok(6, 2, 0.0)));
  }
}
