package dev.nucleon.core.reward;

import java.util.Map;
import java.util.Objects;

/**
 * One completion to score, with what a verifier needs to judge it.
 *
 * @param prompt the prompt text as the model saw it (after templating)
 * @param completion the generated text (decoded completion tokens, stop token excluded)
 * @param completionTokens the generated token ids
 * @param groundTruth the dataset row's reference answer; may be empty for rewards that need none
 * @param metadata other fields of the dataset row (for example Countdown's numbers and target)
 */
public record RewardRequest(
    String prompt, String completion, int[] completionTokens, String groundTruth, Map<String, String> metadata) {

  public RewardRequest {
    prompt = prompt == null ? "" : prompt;
    Objects.requireNonNull(completion, "completion");
    completionTokens = completionTokens == null ? new int[0] : completionTokens;
    groundTruth = groundTruth == null ? "" : groundTruth;
    metadata = metadata == null ? Map.of() : Map.copyOf(metadata);
  }

  /** A request with only a completion and a reference answer (for tests and the {@code score} command). */
  public static RewardRequest of(String completion, String groundTruth) {
    return new RewardRequest("", completion, new int[0], groundTruth, Map.of());
  }
}
