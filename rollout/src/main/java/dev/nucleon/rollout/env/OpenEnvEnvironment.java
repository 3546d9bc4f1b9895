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
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * Environments written in any language behind OpenEnv's HTTP server interface: {@code POST /reset} (body: the
 * episode's {@code episode_id} and {@code seed}, plus the row's metadata fields named in {@code reset-fields}) and
 * {@code POST /step} (body {@code {"action": {<action-field>: <the model's turn>}}}) both answer
 * {@code {"observation": {...}, "reward": r or null, "done": bool}}. The observation's {@code observation-field}
 * (or the whole observation as JSON when empty) is what the model reads next, as a {@code user} message (the
 * reset's only with {@code show-reset}: the row's prompt opens the episode); the reward
 * of the step that is done is the episode's. An OpenEnv HTTP server holds one episode at a time, so each episode
 * checks out one of the {@code urls} for its whole length: their number is the concurrency limit, and an episode
 * waits for a free server. A connection that fails, a timeout, an HTTP error or an answer of another shape ends the
 * episode as failed with the reason; {@code reset} (idempotent) is retried with backoff, {@code step} is not (the
 * server may have acted). With {@code check-state}, {@code GET /state} after the reset and after the last step must
 * name the same episode and count this episode's steps: an episode another client reset or stepped in between (a
 * server listed in two runs' configs) fails rather than handing on a reward it did not earn.
 */
public final class OpenEnvEnvironment implements Environment {

  private static final ObjectMapper JSON = new ObjectMapper();

  private final BlockingQueue<URI> free;
  private final int servers;
  private final String actionField;
  private final String observationField;
  private final List<String> resetFields;
  private final boolean showReset;
  private final boolean checkState;
  /** Resets and states: they change nothing when asked again, so they are retried with backoff. */
  private final JsonPoster idempotent;
  /** Steps: the server may have acted, so never asked twice. */
  private final JsonPoster once;

  /**
   * @param showReset whether the model reads the reset's observation before its first turn (after the row's prompt);
   *     otherwise the row's prompt alone opens the episode
   * @param checkState whether {@code GET /state} checks that nobody else used the server during an episode
   */
  public OpenEnvEnvironment(List<URI> urls, String actionField, String observationField, List<String> resetFields,
      boolean showReset, Duration timeout, int retries, boolean checkState) {
    if (urls.isEmpty()) {
      throw new IllegalArgumentException("name at least one server URL");
    }
    if (actionField.isEmpty()) {
      throw new IllegalArgumentException("action-field must not be empty");
    }
    this.free = new ArrayBlockingQueue<>(urls.size(), true, urls);
    this.servers = urls.size();
    this.actionField = actionField;
    this.observationField = observationField;
    this.resetFields = List.copyOf(resetFields);
    this.showReset = showReset;
    this.checkState = checkState;
    this.idempotent = new JsonPoster(timeout, timeout, retries, Duration.ofMillis(100), Duration.ofSeconds(2),
        urls.size() * 2, Map.of());
    this.once = new JsonPoster(timeout, timeout, 0, Duration.ZERO, Duration.ZERO, urls.size() * 2, Map.of());
  }

  /** One episode per server. */
  @Override
  public int capacity() {
    return servers;
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
      JsonNode reset = call(idempotent.post(server.resolve("/reset"), bytes(body)));
      StepResult first = result(reset, "reset");
      if (first.done()) {
        throw new IllegalStateException(server + "/reset answered done: the episode is over before the model's first "
            + "turn");
      }
      JsonNode before = checkState ? state(server) : null;
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
          action.putObject("action").put(actionField, modelTurn);
          StepResult r;
          try {
            r = result(call(once.post(server.resolve("/step"), bytes(action))), "step");
          } catch (IOException e) {
            return StepResult.failed(e.getMessage());
          }
          steps++;
          if (!r.done() || before == null) {
            return r;
          }
          try {
            String interference = interference(before, state(server), steps);
            return interference == null ? r : StepResult.failed(server + ": " + interference
                + "; another client used the server during the episode, so its reward is not used");
          } catch (IOException e) {
            return StepResult.failed(e.getMessage());
          }
        }

        @Override
        public synchronized void close() {
          if (!released) {
            released = true;
            free.add(server);
          }
        }
      };
      started = true;
      return episode;
    } catch (IOException e) {
      throw new IllegalStateException(e.getMessage(), e);
    } finally {
      if (!started) {
        free.add(server);
      }
    }
  }

  /** The server's {@code GET /state} (retried like reset: it changes nothing). */
  private JsonNode state(URI server) throws IOException {
    JsonNode s = call(idempotent.get(server.resolve("/state")));
    if (!s.isObject()) {
      throw new IOException(server.resolve("/state") + " answered no object: " + abbreviate(s));
    }
    return s;
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
   * {@code nucleon.environment.openenv { urls, action-field, observation-field, reset-fields, show-reset, timeout,
   * retries, check-state }}.
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
      try {
        return new OpenEnvEnvironment(urls, c.getString("action-field"), c.getString("observation-field"),
            c.getStringList("reset-fields"), c.getBoolean("show-reset"), timeout, retries, c.getBoolean("check-state"));
      } catch (IllegalArgumentException e) {
        throw new ConfigException.BadValue(c.origin(), "action-field", e.getMessage());
      }
    }
  }
}
