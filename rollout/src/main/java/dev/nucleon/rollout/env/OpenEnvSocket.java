package dev.nucleon.rollout.env;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
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
 * {@code {"type": "close"}} ends the session. A server that cannot open a session (full, its environment factory
 * failing) sends the error as soon as the connection opens and closes it: that message answers the first request.
 */
final class OpenEnvSocket implements WebSocket.Listener {

  private static final ObjectMapper JSON = new ObjectMapper();
  /** Largest answer accepted: an observation is text for a model, not a download. */
  static final int MAX_ANSWER_CHARS = 16 << 20;

  private final URI uri;
  private final Duration timeout;
  private final StringBuilder partial = new StringBuilder();
  private WebSocket socket;
  /** The answer the one request in flight waits for; null when none is. */
  private CompletableFuture<String> pending;
  /** A message that came while no request waited (a server's error at connection time); answers the next request. */
  private String early;
  /** Why the connection ended, once it has. */
  private String ended;
  /** Completes when the connection is over: the server's close, a failure, or an abort. */
  private final CompletableFuture<Void> over = new CompletableFuture<>();

  private OpenEnvSocket(URI uri, Duration timeout) {
    this.uri = uri;
    this.timeout = timeout;
  }

  /** The session URL of an OpenEnv server: its base URL with ws(s) for http(s) and {@code ws} appended. */
  static URI sessionUri(URI server) {
    String scheme = "https".equals(server.getScheme()) ? "wss" : "ws";
    return URI.create(scheme + server.toString().substring(server.getScheme().length())).resolve("ws");
  }

  /** A server that answered the upgrade with an HTTP status: asking again gives the same answer. */
  static final class Refused extends IOException {
    private static final long serialVersionUID = 1L;

    Refused(String message) {
      super(message);
    }
  }

  /** The server holds as many sessions as it may: asking again later may succeed. */
  static final class Full extends IOException {
    private static final long serialVersionUID = 1L;

    Full(String message) {
      super(message);
    }
  }

  /**
   * Opens a session; throws naming the URL when the server cannot be reached ({@link IOException}) or refuses the
   * upgrade ({@link Refused}, with its HTTP status). A handshake that finishes after this gave up is aborted.
   */
  static OpenEnvSocket open(HttpClient client, URI server, Duration timeout) throws IOException {
    OpenEnvSocket s = new OpenEnvSocket(sessionUri(server), timeout);
    CompletableFuture<WebSocket> opening = client.newWebSocketBuilder().connectTimeout(timeout)
        .buildAsync(s.uri, s);
    try {
      s.socket = opening.get(2 * timeout.toMillis(), TimeUnit.MILLISECONDS); // the connection, then the upgrade
      return s;
    } catch (ExecutionException e) {
      Throwable c = e.getCause() == null ? e : e.getCause();
      if (c instanceof WebSocketHandshakeException h) {
        throw new Refused(s.uri + " refused the WebSocket upgrade with HTTP " + h.getResponse().statusCode()
            + " (a server without OpenEnv's /ws: transport = http)");
      }
      throw new IOException("cannot open " + s.uri + ": " + c, c);
    } catch (TimeoutException e) {
      opening.whenComplete((ws, t) -> abort(ws));
      throw new IOException("cannot open " + s.uri + " within " + 2 * timeout.toMillis() + " ms");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      opening.whenComplete((ws, t) -> abort(ws));
      throw new IOException("interrupted while opening " + s.uri);
    }
  }

  private static void abort(WebSocket ws) {
    if (ws != null) {
      ws.abort();
    }
  }

  /** Sends a reset, a step or a state request with its data; the answer's {@code data}. */
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
    String body;
    synchronized (this) {
      body = early;
      early = null;
      if (body == null && ended != null) {
        throw new IOException(uri + " " + ended);
      }
      pending = body == null ? answer : null;
    }
    try {
      if (body == null) {
        try {
          socket.sendText(text, true).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
          abort("could not send within " + timeout.toMillis() + " ms");
          throw new IOException("could not send to " + uri + " within " + timeout.toMillis() + " ms");
        }
        try {
          body = answer.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
          abort("gave no answer in time"); // a late answer must not be taken for the next request's
          throw new IOException("no answer from " + uri + " within " + timeout.toMillis() + " ms");
        }
      }
      return JSON.readTree(body);
    } catch (JsonProcessingException e) {
      throw new IOException(uri + " answered no JSON: " + e.getOriginalMessage());
    } catch (ExecutionException e) {
      Throwable c = e.getCause() == null ? e : e.getCause();
      throw new IOException(c instanceof IOException && c.getMessage() != null ? c.getMessage() : uri + ": " + c, c);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      abort("was interrupted");
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
        if (done == null && early == null) {
          early = text;
        }
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
    return null;
  }

  @Override
  public void onError(WebSocket webSocket, Throwable error) {
    fail("failed: " + error);
  }

  /** Records why the connection is over and fails the request waiting, if any. */
  private void fail(String why) {
    CompletableFuture<String> waiting;
    synchronized (this) {
      if (ended == null) {
        ended = why;
      }
      waiting = pending;
    }
    if (waiting != null) {
      waiting.completeExceptionally(new IOException(uri + " " + why));
    }
    over.complete(null);
  }

  /** Drops the connection now (the JDK calls no listener after an abort, so this records the end itself). */
  private void abort(String why) {
    socket.abort();
    fail(why);
  }

  /**
   * Ends the session without blocking: a {@code close} message and the connection's close; the returned stage
   * completes when the server's close arrives (OpenEnv's server sends it once the session's environment is gone, so
   * its slot is free there) or, failing that, after the timeout, when the connection is aborted.
   */
  CompletableFuture<Void> closeAsync() {
    synchronized (this) {
      if (ended != null) {
        socket.abort();
        return CompletableFuture.completedFuture(null);
      }
      ended = "session closed";
    }
    socket.sendText("{\"type\": \"close\"}", true)
        .thenCompose(ws -> ws.sendClose(WebSocket.NORMAL_CLOSURE, ""))
        .whenComplete((ws, e) -> {
          if (e != null) {
            socket.abort();
            over.complete(null);
          }
        });
    return over.completeOnTimeout(null, 2 * timeout.toMillis(), TimeUnit.MILLISECONDS)
        .whenComplete((x, e) -> socket.abort()); // a no-op once the server has closed
  }

  private static String abbreviate(String s) {
    return s.length() <= 200 ? s : s.substring(0, 200) + "...";
  }
}
