package dev.nucleon.reward.remote;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;

/**
 * A reward computed by a remote server: each batch is POSTed as JSON and the rewards are read back.
 *
 * <ol>
 *   <li>Split the batch into chunks of at most {@code batch-size} requests; POST each to {@code url} as
 *       {@code {"requests": [request, ...]}} (see {@link WireFormat}), holding one of {@code max-concurrent}
 *       permits while the call is in flight (shared by every caller of this reward).
 *   <li>On a connection error, a read timeout or a 5xx status, retry up to {@code retries} times, waiting
 *       {@code backoff}, then twice that, and so on (capped at {@code max-backoff}).
 *   <li>Read {@code {"results": [result, ...]}}, one per request, in order. A 4xx status, a body that is not that
 *       JSON, or a wrong number of results fails every request of the chunk, with the reason; a result that says
 *       {@code {"error": ...}} fails only its own request.
 * </ol>
 */
public final class HttpReward implements RewardFunction {

  private final URI url;
  private final Duration readTimeout;
  private final int retries;
  private final Duration backoff;
  private final Duration maxBackoff;
  private final int batchSize;
  private final Map<String, String> headers;
  private final Semaphore permits;
  private final HttpClient client;

  public HttpReward(URI url, Duration connectTimeout, Duration readTimeout, int retries, Duration backoff,
      Duration maxBackoff, int maxConcurrent, int batchSize, Map<String, String> headers) {
    this.url = url;
    this.readTimeout = readTimeout;
    this.retries = retries;
    this.backoff = backoff;
    this.maxBackoff = maxBackoff;
    this.batchSize = batchSize;
    this.headers = Map.copyOf(headers);
    this.permits = new Semaphore(maxConcurrent, true);
    this.client = HttpClient.newBuilder().connectTimeout(connectTimeout).version(HttpClient.Version.HTTP_1_1)
        .build();
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
    HttpRequest.Builder builder = HttpRequest.newBuilder(url).timeout(readTimeout)
        .header("Content-Type", "application/json").header("Accept", "application/json")
        .POST(HttpRequest.BodyPublishers.ofByteArray(bytes));
    headers.forEach(builder::header);
    HttpRequest request = builder.build();

    String lastProblem = null;
    long wait = backoff.toMillis();
    for (int attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        try {
          Thread.sleep(wait);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return WireFormat.allFailed(chunk.size(), "http: interrupted while retrying after " + lastProblem);
        }
        wait = Math.min(maxBackoff.toMillis(), wait * 2);
      }
      HttpResponse<String> response;
      try {
        permits.acquire();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return WireFormat.allFailed(chunk.size(), "http: interrupted while waiting for a connection slot");
      }
      try {
        response = client.send(request, HttpResponse.BodyHandlers.ofString());
      } catch (HttpTimeoutException e) {
        lastProblem = "no answer from " + url + " within " + readTimeout.toMillis() + " ms";
        continue;
      } catch (IOException e) {
        lastProblem = "cannot reach " + url + ": " + e.getClass().getSimpleName()
            + (e.getMessage() == null ? "" : " " + e.getMessage());
        continue;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return WireFormat.allFailed(chunk.size(), "http: interrupted while calling " + url);
      } finally {
        permits.release();
      }
      int status = response.statusCode();
      if (status >= 500) {
        lastProblem = url + " answered " + status + ": " + WireFormat.abbreviate(response.body());
        continue;
      }
      if (status != 200) {
        return WireFormat.allFailed(chunk.size(), "http: " + url + " answered " + status + ": "
            + WireFormat.abbreviate(response.body()));
      }
      return parse(response.body(), chunk.size());
    }
    return WireFormat.allFailed(chunk.size(), "http: " + lastProblem + " (after " + (retries + 1) + " attempts)");
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
      String raw = ConfigValues.string(c, "url").trim();
      if (raw.isEmpty()) {
        throw ConfigValues.bad(c, "url", "is empty: set the reward server's URL (e.g. http://localhost:8000/score)");
      }
      URI url;
      try {
        url = new URI(raw);
      } catch (URISyntaxException e) {
        throw ConfigValues.bad(c, "url", "not a valid URL: " + e.getMessage());
      }
      if (!"http".equals(url.getScheme()) && !"https".equals(url.getScheme()) || url.getHost() == null) {
        throw ConfigValues.bad(c, "url", "must be an http:// or https:// URL with a host, got '" + raw + "'");
      }
      Map<String, String> headers = new LinkedHashMap<>();
      if (c.hasPath("headers")) {
        Config h = c.getConfig("headers");
        for (String key : h.root().keySet()) {
          headers.put(key, h.getString("\"" + key + "\""));
        }
      }
      return new HttpReward(url,
          ConfigValues.positiveDuration(c, "connect-timeout"),
          ConfigValues.positiveDuration(c, "read-timeout"),
          ConfigValues.intAtLeast(c, "retries", 0),
          ConfigValues.duration(c, "backoff"),
          ConfigValues.duration(c, "max-backoff"),
          ConfigValues.intAtLeast(c, "max-concurrent", 1),
          ConfigValues.intAtLeast(c, "batch-size", 1),
          headers);
    }
  }
}
