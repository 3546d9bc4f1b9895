package dev.nucleon.reward.remote;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON shapes exchanged with remote and process rewards.
 *
 * <p>A request: {@code {"prompt": "...", "completion": "...", "completion_tokens": [..], "ground_truth": "...",
 * "metadata": {"k": "v"}}}. A result: a bare number, or {@code {"reward": R, "components": {"name": x}}}, or
 * {@code {"error": "why"}} (that request fails with the reason).
 */
final class WireFormat {

  static final ObjectMapper JSON = new ObjectMapper();

  private WireFormat() {}

  static ObjectNode request(RewardRequest r) {
    ObjectNode n = JSON.createObjectNode();
    n.put("prompt", r.prompt());
    n.put("completion", r.completion());
    ArrayNode tokens = n.putArray("completion_tokens");
    for (int t : r.completionTokens()) {
      tokens.add(t);
    }
    n.put("ground_truth", r.groundTruth());
    ObjectNode meta = n.putObject("metadata");
    r.metadata().forEach(meta::put);
    return n;
  }

  /** One result from its JSON; a malformed one throws {@link IllegalArgumentException} naming what is wrong. */
  static RewardResult result(JsonNode node, String source) {
    if (node == null || node.isNull()) {
      throw new IllegalArgumentException("malformed answer from " + source + ": a result is null");
    }
    if (node.isNumber()) {
      return finite(node.doubleValue(), Map.of(), source);
    }
    if (!node.isObject()) {
      throw new IllegalArgumentException("malformed answer from " + source + ": a result is " + node.getNodeType()
          + ", expected a number or {\"reward\": ...}");
    }
    if (node.has("error")) {
      return RewardResult.failed(source + " reported: " + node.get("error").asText());
    }
    JsonNode reward = node.get("reward");
    if (reward == null || !reward.isNumber()) {
      throw new IllegalArgumentException("malformed answer from " + source + ": a result has no numeric \"reward\": "
          + abbreviate(node.toString()));
    }
    Map<String, Double> components = new LinkedHashMap<>();
    JsonNode c = node.get("components");
    if (c != null && !c.isNull()) {
      if (!c.isObject()) {
        throw new IllegalArgumentException("malformed answer from " + source + ": \"components\" is not an object");
      }
      for (Iterator<Map.Entry<String, JsonNode>> it = c.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        if (!e.getValue().isNumber()) {
          throw new IllegalArgumentException("malformed answer from " + source + ": component '" + e.getKey()
              + "' is not a number");
        }
        components.put(e.getKey(), e.getValue().doubleValue());
      }
    }
    return finite(reward.doubleValue(), components, source);
  }

  private static RewardResult finite(double value, Map<String, Double> components, String source) {
    if (!Double.isFinite(value)) {
      return RewardResult.failed(source + " returned a non-finite reward " + value);
    }
    return RewardResult.ok(value, components);
  }

  static String abbreviate(String s) {
    String t = s.strip();
    return t.length() <= 300 ? t : t.substring(0, 300) + "...";
  }

  static List<RewardResult> allFailed(int n, String reason) {
    return java.util.Collections.nCopies(n, RewardResult.failed(reason));
  }
}
