package dev.nucleon.replay;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Packs samples into micro-batches that fit a token budget.
 *
 * <p>Samples are taken longest first (ties in input order). With {@link MicroBatchCost#PADDED} they fill
 * micro-batches one after another (a micro-batch is full when one more row of its longest length would exceed the
 * budget); with {@link MicroBatchCost#SUM} each goes into the first micro-batch it fits (first-fit decreasing). A
 * sample larger than the budget on its own gets a micro-batch of its own: no sample is ever dropped.
 */
public final class MicroBatcher {
  private MicroBatcher() {}

  /**
   * @param samples the batch's samples
   * @param budget tokens per micro-batch, {@code >= 1}
   * @param cost how a micro-batch is measured
   * @return micro-batches covering every sample exactly once
   */
  public static List<List<TrainingSample>> pack(List<TrainingSample> samples, int budget, MicroBatchCost cost) {
    if (budget < 1) {
      throw new IllegalArgumentException("micro-batch budget must be >= 1, got " + budget);
    }
    List<TrainingSample> sorted = new ArrayList<>(samples);
    sorted.sort(Comparator.comparingInt(TrainingSample::tokens).reversed()); // stable
    List<List<TrainingSample>> bins = new ArrayList<>();
    List<long[]> load = new ArrayList<>(); // per bin: {count, max, sum}
    for (TrainingSample s : sorted) {
      int tok = s.tokens();
      int target = -1;
      if (cost == MicroBatchCost.PADDED) {
        int last = bins.size() - 1;
        if (last >= 0 && fits(load.get(last), tok, budget, cost)) {
          target = last;
        }
      } else {
        for (int i = 0; i < bins.size(); i++) {
          if (fits(load.get(i), tok, budget, cost)) {
            target = i;
            break;
          }
        }
      }
      if (target < 0) {
        bins.add(new ArrayList<>());
        load.add(new long[3]);
        target = bins.size() - 1;
      }
      bins.get(target).add(s);
      long[] l = load.get(target);
      l[0]++;
      l[1] = Math.max(l[1], tok);
      l[2] += tok;
    }
    return bins;
  }

  private static boolean fits(long[] l, int tok, int budget, MicroBatchCost cost) {
    return cost.cost((int) l[0] + 1, (int) Math.max(l[1], tok), l[2] + tok) <= budget;
  }
}
