package dev.nucleon.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.core.rollout.FinishReason;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class MicroBatcherTest {

  private static TrainingSample sample(int index, int tokens) {
    return new TrainingSample(Fixtures.traj(1, index, 1, tokens - 1, FinishReason.STOP, 0), 0, 0f);
  }

  private static List<List<Integer>> sizes(List<List<TrainingSample>> mbs) {
    List<List<Integer>> out = new ArrayList<>();
    for (List<TrainingSample> mb : mbs) {
      List<Integer> s = new ArrayList<>();
      for (TrainingSample t : mb) {
        s.add(t.tokens());
      }
      out.add(s);
    }
    return out;
  }

  @Test
  void sumPacksFirstFitDecreasing() {
    List<TrainingSample> in = List.of(sample(0, 30), sample(1, 70), sample(2, 50), sample(3, 40), sample(4, 10));
    // sorted 70, 50, 40, 30, 10 into 100: [70, 30], [50, 40, 10]
    assertEquals(List.of(List.of(70, 30), List.of(50, 40, 10)), sizes(MicroBatcher.pack(in, 100, MicroBatchCost.SUM)));
  }

  @Test
  void paddedCountsRowsTimesLongest() {
    List<TrainingSample> in = List.of(sample(0, 30), sample(1, 70), sample(2, 50), sample(3, 40), sample(4, 10));
    // padded cost n * max: [70] (2 * 70 > 100), [50, 40] (2 * 50 = 100), [30, 10, ...] 3 * 30 = 90
    assertEquals(List.of(List.of(70), List.of(50, 40), List.of(30, 10)),
        sizes(MicroBatcher.pack(in, 100, MicroBatchCost.PADDED)));
  }

  @Test
  void oversizedSampleGetsItsOwnMicroBatchAndNothingIsDropped() {
    List<TrainingSample> in = List.of(sample(0, 20), sample(1, 500), sample(2, 20));
    for (MicroBatchCost cost : MicroBatchCost.values()) {
      List<List<TrainingSample>> mbs = MicroBatcher.pack(in, 100, cost);
      assertEquals(List.of(List.of(500), List.of(20, 20)), sizes(mbs), cost.id());
    }
  }

  @Test
  void everySampleExactlyOnceAndWithinBudget() {
    List<TrainingSample> in = new ArrayList<>();
    java.util.Random rnd = new java.util.Random(7);
    for (int i = 0; i < 200; i++) {
      in.add(sample(i, 2 + rnd.nextInt(300)));
    }
    for (MicroBatchCost cost : MicroBatchCost.values()) {
      List<List<TrainingSample>> mbs = MicroBatcher.pack(in, 256, cost);
      Set<Integer> seen = new HashSet<>();
      int total = 0;
      for (List<TrainingSample> mb : mbs) {
        int max = 0;
        long sum = 0;
        for (TrainingSample s : mb) {
          assertTrue(seen.add(s.trajectory().sampleIndex()));
          max = Math.max(max, s.tokens());
          sum += s.tokens();
        }
        total += mb.size();
        assertTrue(mb.size() == 1 || cost.cost(mb.size(), max, sum) <= 256, cost.id() + " over budget: " + mb.size());
      }
      assertEquals(in.size(), total);
    }
  }
}
