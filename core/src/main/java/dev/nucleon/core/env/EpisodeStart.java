package dev.nucleon.core.env;

import java.util.Map;

/**
 * The dataset row an episode starts from.
 *
 * @param promptId the row's id
 * @param sampleIndex which of the group's samples this episode is (episodes of one group are independent)
 * @param prompt the row's prompt text (before the chat template)
 * @param groundTruth the row's reference answer; may be empty
 * @param metadata the row's other fields
 */
public record EpisodeStart(long promptId, int sampleIndex, String prompt, String groundTruth,
    Map<String, String> metadata) {

  public EpisodeStart {
    prompt = prompt == null ? "" : prompt;
    groundTruth = groundTruth == null ? "" : groundTruth;
    metadata = metadata == null ? Map.of() : Map.copyOf(metadata);
  }
}
