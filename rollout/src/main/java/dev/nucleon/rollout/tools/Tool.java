package dev.nucleon.rollout.tools;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;

/**
 * A tool the model may call in an episode: declared to the chat template (OpenAI's function format) and executed by
 * the {@code tools} environment. Implementations must be safe to call from several threads at once.
 */
public interface Tool {

  String name();

  String description();

  /** The arguments' JSON schema (an object schema). */
  Map<String, Object> parameters();

  /**
   * Runs the call and returns what the model reads back. Bad arguments or a failure throw
   * {@link IllegalArgumentException} with a message the model can act on.
   */
  String call(JsonNode arguments);

  /** The declaration a chat template's {@code tools} takes: {@code {"type": "function", "function": {...}}}. */
  default Map<String, Object> declaration() {
    return Map.of("type", "function", "function", Map.of("name", name(), "description", description(),
        "parameters", parameters()));
  }
}
