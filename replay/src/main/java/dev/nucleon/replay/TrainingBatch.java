package dev.nucleon.replay;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;

/**
 * One optimizer step's worth of samples, already cut into micro-batches (one forward/backward pass each; the
 * learner accumulates gradients over them so the step equals one large batch).
 *
 * @param samples every sample in canonical order: groups by prompt id, samples within a group by sample index
 * @param microBatches the same samples packed into micro-batches within the token budget; every sample appears in
 *     exactly one
 * @param policyVersion the buffer's policy version when the batch was cut
 * @param stats counts and reward statistics for metrics
 */
public record TrainingBatch(
    List<TrainingSample> samples, List<List<TrainingSample>> microBatches, int policyVersion, BatchStats stats) {

  public TrainingBatch {
    samples = List.copyOf(samples);
    List<List<TrainingSample>> mb = new ArrayList<>(microBatches.size());
    for (List<TrainingSample> m : microBatches) {
      mb.add(List.copyOf(m));
    }
    microBatches = List.copyOf(mb);
  }

  /** The prompts whose groups this batch consumes, in batch order. */
  public List<Long> promptIds() {
    LinkedHashSet<Long> ids = new LinkedHashSet<>();
    for (TrainingSample s : samples) {
      ids.add(s.trajectory().promptId());
    }
    return List.copyOf(ids);
  }

  /** Prompt + completion tokens of every sample. */
  public long totalTokens() {
    long n = 0;
    for (TrainingSample s : samples) {
      n += s.tokens();
    }
    return n;
  }
}
