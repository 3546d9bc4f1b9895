package dev.nucleon.rollout.env;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One OpenEnv WebSocket session ({@code /ws}): the server gives each connection an environment of its own, which
 * holds the episode between messages. Requests go one at a time: {@code {"type": "reset" | "step", "data": {...}}}
 * answered by {@code {"type": "observation", "data": {"observation", "reward", "done"}}}, {@code {"type": "state"}} by
 * {@code {"type": "state", "data": {...}}}, and a failure by {@code {"type": "error", "data": {"message", "code"}}};
 * {@code {"type": "close"}} ends the session.
 */
final class OpenEnvSocket implements WebSocket.Listener, AutoCloseable {

  private static final ObjectMapper JSON = new ObjectMapper();
  /** Largest answer accepted: an observation is text for a model, not a download. */
  static final int MAX_ANSWER_CHARS = 16 << 20;

  private final URI uri;
  private final Duration timeout;
  private final StringBuilder partial = new StringBuilder();
  private WebSocket socket;
  /** The answer the one request in flight waits for; null when none is. */
  private CompletableFuture<String> pending;
  /** Why the connection ended, once it has. */
  private String ended;
  /** Completes when the server's close arrives (or the connection fails). */
  private final CompletableFuture<Void> closedByServer = new CompletableFuture<>();

  private OpenEnvSocket(URI uri, Duration timeout) {
    this.uri = uri;
    this.timeout = timeout;
  }

  /** The session URL of an OpenEnv server: its base URL with ws(s) for http(s) and {@code ws} appended. */
  static URI sessionUri(URI server) {
    String scheme = "https".equals(server.getScheme()) ? "wss" : "ws";
    return URI.create(scheme + server.toString().substring(server.getScheme().length())).resolve("ws");
  }

  /** Opens a session; throws naming the URL when the server cannot be reached or refuses the upgrade. */
  static OpenEnvSocket open(HttpClient client, URI server, Duration timeout) throws IOException {
    OpenEnvSocket s = new OpenEnvSocket(sessionUri(server), timeout);
    try {
      s.socket = client.newWebSocketBuilder().connectTimeout(timeout).buildAsync(s.uri, s)
          .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      Throwable c = e.getCause() == null ? e : e.getCause();
      throw new IOException("cannot open " + s.uri + ": " + c.getClass().getSimpleName()
          + (c.getMessage() == null ? "" : " " + c.getMessage()), c);
    } catch (TimeoutException e) {
      throw new IOException("cannot open " + s.uri + " within " + timeout.toMillis() + " ms");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while opening " + s.uri);
    }
    return s;
  }

  /** Sends a reset or a step with its data; the answer's {@code data}. */
  JsonNode call(String type, JsonNode data) throws IOException {
    ObjectNode m = JSON.createObjectNode();
    m.put("type", type);
    if (data != null) {
      m.set("data", data);
    }
    JsonNode answer = request(m.toString());
    String expected = type.equals("state") ? "state" : "observation";
    String got = answer.path("type").asText();
    if (got.equals("error")) {
      JsonNode d = answer.path("data");
      String message = uri + " answered the " + type + " with error " + d.path("code").asText("?") + ": "
          + d.path("message").asText(d.toString());
      throw "CAPACITY_REACHED".equals(d.path("code").asText()) ? new Full(message) : new IOException(message);
    }
    if (!got.equals(expected) || !answer.has("data")) {
      throw new IOException(uri + " answered the " + type + " with no {\"type\": \"" + expected
          + "\", \"data\"} message: " + abbreviate(answer.toString()));
    }
    return answer.get("data");
  }

  private JsonNode request(String text) throws IOException {
    CompletableFuture<String> answer = new CompletableFuture<>();
    synchronized (this) {
      if (ended != null) {
        throw new IOException(uri + " " + ended);
      }
      pending = answer;
    }
    try {
      socket.sendText(text, true).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      String body = answer.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      return JSON.readTree(body);
    } catch (JsonProcessingException e) {
      throw new IOException(uri + " answered no JSON: " + e.getOriginalMessage());
    } catch (TimeoutException e) {
      socket.abort(); // an answer may still come; the session cannot be trusted to pair the next one
      throw new IOException("no answer from " + uri + " within " + timeout.toMillis() + " ms");
    } catch (ExecutionException e) {
      throw new IOException(e.getCause().getMessage(), e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      socket.abort();
      throw new IOException("interrupted while waiting for " + uri);
    } finally {
      synchronized (this) {
        pending = null;
      }
    }
  }

  @Override
  public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
    CompletableFuture<String> done = null;
    String text = null;
    synchronized (this) {
      if (partial.length() + data.length() > MAX_ANSWER_CHARS) {
        partial.setLength(0);
        fail("sent a message over " + MAX_ANSWER_CHARS + " characters");
        webSocket.abort();
        return null;
      }
      partial.append(data);
      if (last) {
        text = partial.toString();
        partial.setLength(0);
        done = pending;
      }
    }
    if (done != null) {
      done.complete(text);
    }
    webSocket.request(1);
    return null;
  }

  @Override
  public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
    fail("closed the session (" + statusCode + (reason == null || reason.isEmpty() ? "" : " " + reason) + ")");
    closedByServer.complete(null);
    return null;
  }

  @Override
  public void onError(WebSocket webSocket, Throwable error) {
    fail("failed: " + error);
    closedByServer.complete(null);
  }

  private synchronized void fail(String why) {
    if (ended == null) {
      ended = why;
    }
    if (pending != null) {
      pending.completeExceptionally(new IOException(uri + " " + why));
    }
  }

  /**
   * Ends the session: a {@code close} message, the connection's close, and a wait (at most the timeout) for the
   * server's close, which OpenEnv's server sends once the session's environment is gone, so the slot is free on the
   * server when this returns.
   */
  @Override
  public void close() {
    synchronized (this) {
      if (ended != null) {
        socket.abort();
        return;
      }
      ended = "session closed";
    }
    try {
      socket.sendText("{\"type\": \"close\"}", true).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      socket.sendClose(WebSocket.NORMAL_CLOSURE, "").get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      closedByServer.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException | TimeoutException e) {
      socket.abort();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      socket.abort();
    }
  }

  /** The server holds as many sessions as it may: asking again later may succeed. */
  static final class Full extends IOException {
    private static final long serialVersionUID = 1L;

    Full(String message) {
      super(message);
    }
  }

  private static String abbreviate(String s) {
    return s.length() <= 200 ? s : s.substring(0, 200) + "...";
  }
}
