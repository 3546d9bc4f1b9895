package dev.nucleon.core.env;

import java.util.Objects;

/**
 * A message an environment adds to an episode: an observation, feedback, or a tool's result. It is rendered
 * through the model's chat template after the model's turn, and its tokens carry no loss.
 *
 * @param role {@code user} (observations and feedback), {@code tool} (a tool's result) or {@code system}
 * @param content the text
 * @param name the tool that answered, for {@code tool} messages; null otherwise
 */
public record EnvMessage(String role, String content, String name) {

  public EnvMessage {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(content, "content");
  }

  /** Feedback or an observation, as the user. */
  public static EnvMessage user(String content) {
    return new EnvMessage("user", content, null);
  }

  /** A tool's result. */
  public static EnvMessage tool(String name, String content) {
    return new EnvMessage("tool", content, name);
  }
}
