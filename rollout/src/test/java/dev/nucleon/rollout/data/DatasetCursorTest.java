package dev.nucleon.rollout.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import org.junit.jupiter.api.Test;

class DatasetCursorTest {

  private static List<DatasetRow> rows(int n) {
    List<DatasetRow> rows = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      rows.add(new DatasetRow(i, "p" + i, Integer.toString(i), Map.of()));
    }
    return rows;
  }

  private static List<Long> take(DatasetCursor c, int n) {
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      ids.add(c.next().id());
    }
    return ids;
  }

  @Test
  void sameSeedSameOrderEveryEpochAPermutationReshuffled() {
    List<DatasetRow> rows = rows(50);
    DatasetCursor a = new DatasetCursor(rows, true, 42, 3);
    DatasetCursor b = new DatasetCursor(rows, true, 42, 3);
    List<Long> all = take(a, 150);
    assertEquals(all, take(b, 150));
    assertFalse(a.hasNext());
    assertThrows(NoSuchElementException.class, a::next);
    List<Long> e0 = all.subList(0, 50);
    List<Long> e1 = all.subList(50, 100);
    List<Long> e2 = all.subList(100, 150);
    for (List<Long> epoch : List.of(e0, e1, e2)) {
      assertEquals(50, new HashSet<>(epoch).size(), "each epoch hands out every row once");
    }
    assertNotEquals(e0, e1);
    assertNotEquals(e1, e2);
    List<Long> fileOrder = new ArrayList<>();
    for (long i = 0; i < 50; i++) {
      fileOrder.add(i);
    }
    assertNotEquals(fileOrder, e0, "shuffled");
    assertNotEquals(e0, take(new DatasetCursor(rows, true, 43, 1), 50), "another seed, another order");
    assertEquals(fileOrder, take(new DatasetCursor(rows, false, 42, 1), 50), "shuffle = false keeps file order");
  }

  @Test
  void positionAndEpochAccounting() {
    DatasetCursor c = new DatasetCursor(rows(4), true, 1, 2);
    assertEquals(0, c.epoch());
    assertEquals(0, c.position());
    take(c, 4);
    assertEquals(0, c.epoch(), "epoch of the row handed out last");
    assertEquals(4, c.position());
    assertTrue(c.hasNext());
    take(c, 1);
    assertEquals(1, c.epoch());
    assertEquals(1, c.position());
    assertEquals(5, c.handedOut());

    DatasetCursor unlimited = new DatasetCursor(rows(3), true, 1, 0);
    take(unlimited, 30);
    assertTrue(unlimited.hasNext());
    assertEquals(9, unlimited.epoch());

    assertFalse(new DatasetCursor(List.of(), true, 1, 0).hasNext());
  }

  @Test
  void snapshotRestoreContinuesIdentically() throws Exception {
    List<DatasetRow> rows = rows(37);
    DatasetCursor original = new DatasetCursor(rows, true, 7, 4);
    for (int cut : new int[] {0, 1, 36, 37, 38, 74, 100}) {
      DatasetCursor run = new DatasetCursor(rows, true, 7, 4);
      take(run, cut);
      byte[] saved = run.snapshot().toJson();
      List<Long> expected = new ArrayList<>();
      while (run.hasNext()) {
        expected.add(run.next().id());
      }
      DatasetCursor resumed = new DatasetCursor(rows, true, 7, 4);
      resumed.restore(DatasetCursor.State.fromJson(saved));
      assertEquals(cut, resumed.handedOut());
      List<Long> actual = new ArrayList<>();
      while (resumed.hasNext()) {
        actual.add(resumed.next().id());
      }
      assertEquals(expected, actual, "resumed after " + cut);
      assertEquals(4 * 37 - cut, actual.size());
    }
    // the state is a plain record Jackson writes and reads
    ObjectMapper json = new ObjectMapper();
    take(original, 40);
    DatasetCursor.State state = original.snapshot();
    assertEquals(state, json.readValue(json.writeValueAsString(state), DatasetCursor.State.class));
    assertEquals(1, state.epoch());
    assertEquals(3, state.position());
  }

  @Test
  void restoreRefusesAnotherDatasetOrOrder() {
    DatasetCursor c = new DatasetCursor(rows(10), true, 7, 2);
    take(c, 3);
    DatasetCursor.State s = c.snapshot();
    assertThrows(IllegalStateException.class, () -> new DatasetCursor(rows(11), true, 7, 2).restore(s));
    List<DatasetRow> changed = rows(10);
    changed.set(4, new DatasetRow(4, "other prompt", "4", Map.of()));
    assertThrows(IllegalStateException.class, () -> new DatasetCursor(changed, true, 7, 2).restore(s));
    assertThrows(IllegalStateException.class, () -> new DatasetCursor(rows(10), true, 8, 2).restore(s));
    assertThrows(IllegalStateException.class, () -> new DatasetCursor(rows(10), false, 7, 2).restore(s));
    new DatasetCursor(rows(10), true, 7, 2).restore(s); // the same rows and order are fine
  }

  @Test
  void heldOutArithmeticProblemsNeverTrainedAcrossEpochs() {
    Dataset d = Dataset.load(DatasetSettings.parse(
        "nucleon.dataset { format = arithmetic, arithmetic.max-operand = 29, eval.size = 100, epochs = 3 }"));
    Set<Long> evalIds = new HashSet<>();
    Set<String> evalPrompts = new HashSet<>();
    for (DatasetRow r : d.eval()) {
      evalIds.add(r.id());
      evalPrompts.add(r.prompt());
    }
    assertEquals(100, evalIds.size());
    DatasetCursor c = d.cursor();
    int n = 0;
    Set<Long> seen = new HashSet<>();
    while (c.hasNext()) {
      DatasetRow r = c.next();
      assertFalse(evalIds.contains(r.id()) || evalPrompts.contains(r.prompt()), r.prompt());
      seen.add(r.id());
      n++;
    }
    assertEquals(3 * (900 - 100), n);
    assertEquals(800, seen.size());
  }

  @Test
  void cursorFromSettingsUsesShuffleSeed() {
    String base = "nucleon.dataset { format = arithmetic, arithmetic.max-operand = 9, eval.size = 10, ";
    Dataset a = Dataset.load(DatasetSettings.parse(base + "shuffle-seed = 1 }"));
    Dataset b = Dataset.load(DatasetSettings.parse(base + "shuffle-seed = 2 }"));
    assertEquals(a.eval(), b.eval(), "the held-out set does not move with the shuffle seed");
    assertNotEquals(take(a.cursor(), 90), take(b.cursor(), 90));
    assertArrayEquals(a.cursor().order(0), a.cursor().order(0));
  }
}
