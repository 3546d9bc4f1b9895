package dev.nucleon.rollout.data;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One prompt of a dataset.
 *
 * @param id stable id, unique within a {@link Dataset} (train and eval together): the row's index in its file (a
 *     separate eval file's rows continue after the training file's), or the arithmetic problem's code
 * @param prompt the prompt as the model sees it: the template rendered, and the chat template when configured
 * @param groundTruth the reference answer the reward compares with (GSM8K: the final number; Countdown: the target)
 * @param metadata further fields for the reward (Countdown: {@code numbers} and {@code target}), in a fixed order
 */
public record DatasetRow(long id, String prompt, String groundTruth, Map<String, String> metadata) {

  public DatasetRow {
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(groundTruth, "groundTruth");
    metadata = metadata == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
  }
}
