package dev.nucleon.rollout.tools;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Objects;

/**
 * A call the model wrote: the tool's name and its arguments (a JSON object).
 *
 * @param name the tool's name
 * @param arguments the arguments, a JSON object (possibly empty)
 */
public record ToolCall(String name, JsonNode arguments) {

  public ToolCall {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(arguments, "arguments");
  }
}
