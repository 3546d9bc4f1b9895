package dev.nucleon.reward.remote;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import dev.nucleon.core.http.JsonPoster;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A reward computed by a remote server: each batch is POSTed as JSON and the rewards are read back.
 *
 * <ol>
 *   <li>Split the batch into chunks of at most {@code batch-size} requests; POST each to {@code url} as
 *       {@code {"requests": [request, ...]}} (see {@link WireFormat}), holding one of {@code max-concurrent}
 *       permits while the call is in flight (shared by every caller of this reward).
 *   <li>On a connection error, a read timeout, a 429 or a 5xx status, retry up to {@code retries} times, waiting
 *       {@code backoff}, then twice that, and so on (capped at {@code max-backoff}).
 *   <li>Read {@code {"results": [result, ...]}}, one per request, in order. A 4xx status, a body that is not that
 *       JSON, or a wrong number of results fails every request of the chunk, with the reason; a result that says
 *       {@code {"error": ...}} fails only its own request.
 * </ol>
 */
public final class HttpReward implements RewardFunction {

  private final URI url;
  private final int batchSize;
  private final JsonPoster poster;

  public HttpReward(URI url, Duration connectTimeout, Duration readTimeout, int retries, Duration backoff,
      Duration maxBackoff, int maxConcurrent, int batchSize, Map<String, String> headers) {
    this(url, batchSize, new JsonPoster(connectTimeout, readTimeout, retries, backoff, maxBackoff, maxConcurrent,
        headers));
  }

  private HttpReward(URI url, int batchSize, JsonPoster poster) {
    this.url = url;
    this.batchSize = batchSize;
    this.poster = poster;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    return score(List.of(request)).get(0);
  }

  @Override
  public boolean scoresBatches() {
    return true;
  }

  @Override
  public List<RewardResult> score(List<RewardRequest> batch) {
    List<RewardResult> out = new ArrayList<>(batch.size());
    for (int from = 0; from < batch.size(); from += batchSize) {
      out.addAll(chunk(batch.subList(from, Math.min(batch.size(), from + batchSize))));
    }
    return out;
  }

  private List<RewardResult> chunk(List<RewardRequest> chunk) {
    ObjectNode body = WireFormat.JSON.createObjectNode();
    ArrayNode requests = body.putArray("requests");
    chunk.forEach(r -> requests.add(WireFormat.request(r)));
    byte[] bytes;
    try {
      bytes = WireFormat.JSON.writeValueAsBytes(body);
    } catch (JsonProcessingException e) {
      return WireFormat.allFailed(chunk.size(), "http: could not encode the request: " + e.getMessage());
    }
    JsonPoster.Answer answer = poster.post(url, bytes);
    if (!answer.ok()) {
      return WireFormat.allFailed(chunk.size(), "http: " + answer.failure());
    }
    return parse(answer.body(), chunk.size());
  }

  private List<RewardResult> parse(String body, int n) {
    try {
      JsonNode root = WireFormat.JSON.readTree(body);
      JsonNode results = root == null ? null : root.get("results");
      if (results == null || !results.isArray()) {
        return WireFormat.allFailed(n, "http: malformed answer: expected {\"results\": [...]}, got "
            + WireFormat.abbreviate(body));
      }
      if (results.size() != n) {
        return WireFormat.allFailed(n, "http: malformed answer: " + results.size() + " results for " + n
            + " requests");
      }
      List<RewardResult> out = new ArrayList<>(n);
      for (JsonNode r : results) {
        out.add(WireFormat.result(r, "http server"));
      }
      return out;
    } catch (JsonProcessingException e) {
      return WireFormat.allFailed(n, "http: malformed answer: not JSON: " + WireFormat.abbreviate(body));
    } catch (IllegalArgumentException e) {
      return WireFormat.allFailed(n, "http: " + e.getMessage());
    }
  }

  /** {@code nucleon.reward.http { url, connect-timeout, read-timeout, retries, backoff, ... }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "http";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "http");
      URI url = RemoteSettings.url(c, "url", "http://localhost:8000/score");
      return new HttpReward(url, ConfigValues.intAtLeast(c, "batch-size", 1), RemoteSettings.poster(c, Map.of()));
    }
  }
}
