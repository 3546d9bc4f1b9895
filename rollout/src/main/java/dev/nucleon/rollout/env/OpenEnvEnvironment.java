package dev.nucleon.rollout.env;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Environment;
import dev.nucleon.core.env.EnvironmentFactory;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import dev.nucleon.core.http.JsonPoster;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * Environments written in any language behind OpenEnv's server interface. Reset (the episode's {@code episode_id} and
 * {@code seed}, plus the row's metadata fields named in {@code reset-fields}) and step
 * ({@code {<action-field>: <the model's turn>}}) both answer {@code {"observation": {...}, "reward": r or null,
 * "done": bool}}. The observation's {@code observation-field} (or the whole observation as JSON when empty) is what
 * the model reads next, as a {@code user} message (the reset's only with {@code show-reset}: the row's prompt opens the
 * episode); the reward of the step that is done is the episode's.
 *
 * <p>Two transports. {@code websocket} (OpenEnv's {@code /ws}): each episode opens a session of its own, in which the
 * server keeps an environment instance for it; a server holds {@code sessions-per-server} at once (its
 * {@code max_concurrent_envs}). {@code http} ({@code POST /reset}, {@code POST /step}, {@code GET /state}): for servers
 * that keep one environment across requests, so an episode checks out one of the {@code urls} for its whole length;
 * with {@code check-state}, {@code /state} after the reset and after the last step must name the same episode and count
 * this episode's steps, so an episode another client reset or stepped in between, or one on a server whose HTTP
 * endpoints keep no episode between requests (current OpenEnv servers make an environment per HTTP request), fails
 * rather than handing on a reward it did not earn. Either way the runner starts at most {@link #capacity()} episodes
 * together; a connection that fails, a timeout, an error answer or an answer of another shape ends the episode as
 * failed with the reason; starting (opening a session, the reset) is retried with backoff, a step never is (the server
 * may have acted).
 */
public final class OpenEnvEnvironment implements Environment {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** How an episode talks to its server. */
  public enum Transport {
    HTTP,
    WEBSOCKET
  }

  private final BlockingQueue<URI> free;
  private final int capacity;
  private final Transport transport;
  private final String actionField;
  private final String observationField;
  private final List<String> resetFields;
  private final boolean showReset;
  private final boolean checkState;
  /** Resets and states: they change nothing when asked again, so they are retried with backoff. */
  private final JsonPoster idempotent;
  /** Steps: the server may have acted, so never asked twice. */
  private final JsonPoster once;
  private final int retries;
  private final Duration timeout;
  private final HttpClient sockets;

  /**
   * @param showReset whether the model reads the reset's observation before its first turn (after the row's prompt);
   *     otherwise the row's prompt alone opens the episode
   * @param transport {@code WEBSOCKET}: a session per episode; {@code HTTP}: an episode holds a server
   * @param sessionsPerServer websocket sessions a server holds at once (http: always one episode per server)
   * @param checkState (http) whether {@code GET /state} checks that the server kept the episode, and nobody else
   *     used it
   */
  public OpenEnvEnvironment(List<URI> urls, String actionField, String observationField, List<String> resetFields,
      boolean showReset, Duration timeout, int retries, Transport transport, int sessionsPerServer,
      boolean checkState) {
    if (urls.isEmpty()) {
      throw new IllegalArgumentException("name at least one server URL");
    }
    if (actionField.isEmpty()) {
      throw new IllegalArgumentException("action-field must not be empty");
    }
    if (sessionsPerServer < 1) {
      throw new IllegalArgumentException("sessions-per-server must be >= 1, got " + sessionsPerServer);
    }
    int perServer = transport == Transport.WEBSOCKET ? sessionsPerServer : 1;
    List<URI> slots = new java.util.ArrayList<>();
    for (int k = 0; k < perServer; k++) {
      slots.addAll(urls); // round robin over the servers
    }
    this.free = new ArrayBlockingQueue<>(slots.size(), true, slots);
    this.capacity = slots.size();
    this.transport = transport;
    this.actionField = actionField;
    this.observationField = observationField;
    this.resetFields = List.copyOf(resetFields);
    this.showReset = showReset;
    this.checkState = checkState && transport == Transport.HTTP; // a websocket session is the episode's alone
    this.retries = retries;
    this.timeout = timeout;
    this.sockets = transport == Transport.WEBSOCKET ? HttpClient.newBuilder().connectTimeout(timeout).build() : null;
    boolean http = transport == Transport.HTTP; // each poster or client holds a selector thread: only what is used
    this.idempotent = http ? new JsonPoster(timeout, timeout, retries, Duration.ofMillis(100), Duration.ofSeconds(2),
        urls.size() * 2, Map.of()) : null;
    this.once = http ? new JsonPoster(timeout, timeout, 0, Duration.ZERO, Duration.ZERO, urls.size() * 2, Map.of())
        : null;
  }

  /** Episodes the servers hold at once: one per server over http, {@code sessions-per-server} over websocket. */
  @Override
  public int capacity() {
    return capacity;
  }

  @Override
  public Episode start(EpisodeStart start) {
    URI server;
    try {
      server = free.take(); // the guard's timeout interrupts a wait for a free server
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for a free OpenEnv server");
    }
    boolean started = false;
    Session opened = null;
    try {
      ObjectNode body = JSON.createObjectNode();
      body.put("episode_id", start.promptId() + "-" + start.sampleIndex());
      body.put("seed", start.promptId() * 1_000_003L + start.sampleIndex());
      for (String field : resetFields) {
        String v = start.metadata().get(field);
        if (v == null) {
          throw new IllegalArgumentException("prompt " + start.promptId() + " has no field '" + field
              + "' to send to reset (reset-fields)");
        }
        body.put(field, v);
      }
      Session session = transport == Transport.WEBSOCKET ? socketSession(server, body) : httpSession(server);
      opened = session;
      StepResult first = result(session.reset(body), "reset");
      if (first.done()) {
        throw new IllegalStateException(server + " answered the reset with done: the episode is over before the "
            + "model's first turn");
      }
      JsonNode before;
      try {
        before = checkState ? session.state() : null;
      } catch (IOException e) {
        throw new IOException(e.getMessage() + " (check-state: a server without GET /state needs check-state = "
            + "false)", e);
      }
      Episode episode = new Episode() {
        private boolean released;
        private int steps;

        @Override
        public List<EnvMessage> opening() {
          return showReset ? first.observation() : List.of();
        }

        @Override
        public StepResult step(String modelTurn) {
          ObjectNode action = JSON.createObjectNode();
          action.put(actionField, modelTurn);
          StepResult r;
          try {
            r = result(session.step(action), "step");
          } catch (IOException e) {
            return StepResult.failed(e.getMessage());
          }
          steps++;
          if (!r.done() || before == null) {
            return r;
          }
          try {
            String interference = interference(before, session.state(), steps);
            return interference == null ? r : StepResult.failed(server + ": " + interference + "; the server did "
                + "not keep this episode to itself (another client used it, or its HTTP endpoints make an "
                + "environment per request: use transport = websocket), so its reward is not used");
          } catch (IOException e) {
            return StepResult.failed(e.getMessage());
          }
        }

        @Override
        public synchronized void close() {
          if (!released) {
            released = true;
            session.close(() -> free.add(server));
          }
        }
      };
      started = true;
      return episode;
    } catch (IOException e) {
      throw new IllegalStateException(e.getMessage(), e);
    } finally {
      if (!started) {
        if (opened != null) {
          opened.close(() -> free.add(server));
        } else {
          free.add(server);
        }
      }
    }
  }

  /** An episode's exchange with its server. */
  private interface Session {
    /** The reset's answer, {@code {"observation", "reward", "done"}}. */
    JsonNode reset(ObjectNode body) throws IOException;

    /** The step's answer for the action {@code {<action-field>: <turn>}}. */
    JsonNode step(ObjectNode action) throws IOException;

    /** The server's state of the episode. */
    JsonNode state() throws IOException;

    /** Ends the session without blocking; {@code release} runs once the server's slot is free again. */
    void close(Runnable release);
  }

  /** Requests to a server that keeps one environment: reset and state retried with backoff, steps once. */
  private Session httpSession(URI server) {
    return new Session() {
      @Override
      public JsonNode reset(ObjectNode body) throws IOException {
        return call(idempotent.post(server.resolve("reset"), bytes(body)));
      }

      @Override
      public JsonNode step(ObjectNode action) throws IOException {
        ObjectNode body = JSON.createObjectNode();
        body.set("action", action);
        return call(once.post(server.resolve("step"), bytes(body)));
      }

      @Override
      public JsonNode state() throws IOException {
        JsonNode s = call(idempotent.get(server.resolve("state")));
        if (!s.isObject()) {
          throw new IOException(server.resolve("state") + " answered no object: " + abbreviate(s));
        }
        return s;
      }

      @Override
      public void close(Runnable release) {
        release.run();
      }
    };
  }

  /**
   * A websocket session of its own, reset: opening it and resetting it are retried with backoff when the server
   * cannot be reached or is full (nothing has happened on the server yet); the reset's answer is the session's first.
   */
  private Session socketSession(URI server, ObjectNode resetBody) throws IOException {
    OpenEnvSocket socket = null;
    JsonNode answer = null;
    IOException last = null;
    for (int attempt = 0; attempt <= retries && socket == null; attempt++) {
      if (attempt > 0) {
        try {
          Thread.sleep(Math.min(2000L, 100L << (attempt - 1)));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted while retrying after " + last.getMessage());
        }
      }
      OpenEnvSocket opened = null;
      try {
        opened = OpenEnvSocket.open(sockets, server, timeout);
        answer = opened.call("reset", resetBody);
        socket = opened;
      } catch (OpenEnvSocket.Full e) { // the server's sessions are taken: a later try may find one free
        last = e;
        opened.closeAsync();
      } catch (OpenEnvSocket.Refused e) { // no /ws there: asking again gives the same answer
        throw e;
      } catch (IOException e) {
        if (opened != null) { // reached, then failed: not a connection problem, so not asked again
          opened.closeAsync();
          throw e;
        }
        last = e;
      }
    }
    if (socket == null) {
      throw new IOException(last.getMessage() + " (after " + (retries + 1) + " attempts)", last);
    }
    OpenEnvSocket s = socket;
    JsonNode first = answer;
    return new Session() {
      @Override
      public JsonNode reset(ObjectNode body) {
        return first; // the session was opened by its reset
      }

      @Override
      public JsonNode step(ObjectNode action) throws IOException {
        return s.call("step", action);
      }

      @Override
      public JsonNode state() throws IOException {
        return s.call("state", null);
      }

      @Override
      public void close(Runnable release) {
        s.closeAsync().whenComplete((x, e) -> release.run());
      }
    };
  }

  private static byte[] bytes(JsonNode body) {
    return body.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
  }

  /** The call's answer as JSON; a failed call or an answer that is not JSON throws with the reason. */
  private static JsonNode call(JsonPoster.Answer answer) throws IOException {
    if (!answer.ok()) {
      throw new IOException(answer.failure());
    }
    try {
      return JSON.readTree(answer.body());
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IOException("the answer is not JSON: " + e.getOriginalMessage());
    }
  }

  /**
   * What the state after the episode's last step says went wrong, or null: another episode id than after the reset,
   * or a step count that moved by other than this episode's {@code steps}. Fields a server does not report are not
   * checked.
   */
  static String interference(JsonNode before, JsonNode after, int steps) {
    JsonNode id0 = before.get("episode_id");
    JsonNode id1 = after.get("episode_id");
    if (id0 != null && !id0.isNull() && !id0.equals(id1)) {
      return "/state names episode " + id1 + " at the end, " + id0 + " after the reset";
    }
    JsonNode n0 = before.get("step_count");
    JsonNode n1 = after.get("step_count");
    if (n0 != null && n0.canConvertToInt() && n1 != null && n1.canConvertToInt()
        && n1.asInt() - n0.asInt() != steps) {
      return "/state counted " + (n1.asInt() - n0.asInt()) + " steps since the reset, the episode took " + steps;
    }
    return null;
  }

  /** The step's result: the observation's text as a user message, the reward when done. */
  private StepResult result(JsonNode answer, String what) throws IOException {
    if (answer == null || !answer.isObject() || !answer.has("observation") || !answer.path("done").isBoolean()) {
      throw new IOException(what + " answered no {\"observation\", \"done\"} object: " + abbreviate(answer));
    }
    JsonNode obs = answer.get("observation");
    String text;
    if (observationField.isEmpty()) {
      text = obs.isTextual() ? obs.asText() : obs.toString();
    } else {
      JsonNode field = obs.get(observationField);
      if (field == null) {
        throw new IOException(what + " answered an observation without '" + observationField + "': "
            + abbreviate(obs));
      }
      text = field.isTextual() ? field.asText() : field.toString();
    }
    JsonNode reward = answer.get("reward");
    if (reward != null && !reward.isNull() && !reward.isNumber()) {
      throw new IOException(what + " answered a reward that is no number: " + reward);
    }
    if (answer.get("done").asBoolean()) {
      Double r = reward == null || reward.isNull() ? null : reward.asDouble();
      if (r != null && !Double.isFinite(r)) {
        throw new IOException(what + " answered a reward that is not finite: " + reward);
      }
      return StepResult.end(r, "done");
    }
    return StepResult.observe(EnvMessage.user(text));
  }

  private static String abbreviate(Object o) {
    String s = String.valueOf(o);
    return s.length() <= 200 ? s : s.substring(0, 200) + "...";
  }

  /**
   * {@code nucleon.environment.openenv { urls, transport, sessions-per-server, action-field, observation-field,
   * reset-fields, show-reset, timeout, retries, check-state }}.
   */
  public static final class Factory implements EnvironmentFactory {
    @Override
    public String identifier() {
      return "openenv";
    }

    @Override
    public OpenEnvEnvironment create(Config config) {
      Config c = config.withFallback(ConfigFactory.defaultReference().getConfig("nucleon.environment.openenv"));
      List<URI> urls = new java.util.ArrayList<>();
      for (String u : c.getStringList("urls")) {
        URI uri;
        try {
          uri = URI.create(u.endsWith("/") ? u : u + "/");
        } catch (IllegalArgumentException e) {
          throw new ConfigException.BadValue(c.origin(), "urls", "'" + u + "' is no URL");
        }
        if (!"http".equals(uri.getScheme()) && !"https".equals(uri.getScheme())) {
          throw new ConfigException.BadValue(c.origin(), "urls", "'" + u + "' is no http(s) URL");
        }
        urls.add(uri);
      }
      if (urls.isEmpty()) {
        throw new ConfigException.BadValue(c.origin(), "urls", "name at least one OpenEnv server");
      }
      Duration timeout = c.getDuration("timeout");
      int retries = c.getInt("retries");
      if (timeout.isNegative() || timeout.isZero() || retries < 0) {
        throw new ConfigException.BadValue(c.origin(), "timeout", "timeout must be positive and retries >= 0");
      }
      Transport transport = switch (c.getString("transport")) {
        case "websocket" -> Transport.WEBSOCKET;
        case "http" -> Transport.HTTP;
        default -> throw new ConfigException.BadValue(c.origin(), "transport", "expected websocket or http, got '"
            + c.getString("transport") + "'");
      };
      int sessions = c.getInt("sessions-per-server");
      if (sessions < 1) {
        throw new ConfigException.BadValue(c.origin(), "sessions-per-server", "must be >= 1, got " + sessions);
      }
      try {
        return new OpenEnvEnvironment(urls, c.getString("action-field"), c.getString("observation-field"),
            c.getStringList("reset-fields"), c.getBoolean("show-reset"), timeout, retries, transport, sessions,
            c.getBoolean("check-state"));
      } catch (IllegalArgumentException e) {
        throw new ConfigException.BadValue(c.origin(), "action-field", e.getMessage());
      }
    }
  }
}
