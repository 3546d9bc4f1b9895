package dev.nucleon.core.rollout;

import java.util.Map;
import java.util.Objects;

/**
 * One prompt to sample {@code groupSize} completions of: the unit of work the coordinator hands to a rollout
 * worker.
 *
 * @param promptId the dataset prompt's id (stable across epochs and resumes: the row's index in the dataset)
 * @param attempt counts re-issues of the same prompt after a worker was lost; only the current attempt's results
 *     are accepted, so nothing is trained twice
 * @param prompt the rendered prompt text
 * @param groundTruth the reference answer the reward compares against
 * @param metadata other dataset fields the reward may need
 * @param groupSize completions to sample (G)
 * @param seed seeds the group's sampling (sample i uses a stream derived from it)
 */
public record PromptGroup(long promptId, int attempt, String prompt, String groundTruth,
    Map<String, String> metadata, int groupSize, long seed) {

  public PromptGroup {
    Objects.requireNonNull(prompt, "prompt");
    groundTruth = groundTruth == null ? "" : groundTruth;
    metadata = metadata == null ? Map.of() : Map.copyOf(metadata);
    if (groupSize < 1) {
      throw new IllegalArgumentException("group size must be >= 1, got " + groupSize);
    }
  }
}
