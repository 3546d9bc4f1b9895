package dev.nucleon.core.http;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Semaphore;

/**
 * JSON calls to a remote server with the policy every remote reward and environment needs: at most
 * {@code maxConcurrent} calls in flight (shared by every caller), a read timeout per call, and retries with
 * exponential backoff on connection errors, timeouts, 429 and 5xx answers; any other status than 200 is final.
 */
public final class JsonPoster {

  /**
   * How a call ended: the body of a 200 answer, or why there is none.
   *
   * @param body the answer's body, or null
   * @param failure why the call failed (after its retries), or null
   */
  public record Answer(String body, String failure) {
    public boolean ok() {
      return failure == null;
    }
  }

  private final Duration readTimeout;
  private final int retries;
  private final Duration backoff;
  private final Duration maxBackoff;
  private final Map<String, String> headers;
  private final Semaphore permits;
  private final HttpClient client;

  public JsonPoster(Duration connectTimeout, Duration readTimeout, int retries, Duration backoff, Duration maxBackoff,
      int maxConcurrent, Map<String, String> headers) {
    this.readTimeout = readTimeout;
    this.retries = retries;
    this.backoff = backoff;
    this.maxBackoff = maxBackoff;
    this.headers = Map.copyOf(headers);
    try { // a header the HTTP client refuses (Host, Connection) is refused now, not at every call
      HttpRequest.Builder probe = HttpRequest.newBuilder(URI.create("http://localhost/"));
      this.headers.forEach(probe::header);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("headers: " + e.getMessage(), e);
    }
    this.permits = new Semaphore(maxConcurrent, true);
    this.client = HttpClient.newBuilder().connectTimeout(connectTimeout).version(HttpClient.Version.HTTP_1_1)
        .build();
  }

  /** POSTs {@code body} as JSON. */
  public Answer post(URI url, byte[] body) {
    return call(url, HttpRequest.BodyPublishers.ofByteArray(body));
  }

  /** GETs {@code url}. */
  public Answer get(URI url) {
    return call(url, null);
  }

  private Answer call(URI url, HttpRequest.BodyPublisher body) {
    HttpRequest.Builder builder = HttpRequest.newBuilder(url).timeout(readTimeout).header("Accept",
        "application/json");
    if (body != null) {
      builder.header("Content-Type", "application/json").POST(body);
    }
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
          return new Answer(null, "interrupted while retrying after " + lastProblem);
        }
        wait = Math.min(maxBackoff.toMillis(), wait * 2);
      }
      HttpResponse<String> response;
      try {
        permits.acquire();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return new Answer(null, "interrupted while waiting for a connection slot");
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
        return new Answer(null, "interrupted while calling " + url);
      } finally {
        permits.release();
      }
      int status = response.statusCode();
      if (status >= 500 || status == 429) {
        lastProblem = url + " answered " + status + ": " + abbreviate(response.body());
        continue;
      }
      if (status != 200) {
        return new Answer(null, url + " answered " + status + ": " + abbreviate(response.body()));
      }
      return new Answer(response.body(), null);
    }
    return new Answer(null, lastProblem + " (after " + (retries + 1) + " attempts)");
  }

  private static String abbreviate(String s) {
    String t = s.strip();
    return t.length() <= 300 ? t : t.substring(0, 300) + "...";
  }
}
