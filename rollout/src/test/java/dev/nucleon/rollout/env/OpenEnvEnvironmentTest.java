package dev.nucleon.rollout.env;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The OpenEnv HTTP client against servers that speak OpenEnv's interface (an echo environment, as OpenEnv's own
 * example): reset and step bodies and answers, one episode per server at a time; a server that is down, fails,
 * answers nonsense or is slower than the timeout fails the episode naming why, never a zero.
 */
class OpenEnvEnvironmentTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private final List<HttpServer> servers = new ArrayList<>();
  private final List<JsonNode> requests = new CopyOnWriteArrayList<>();
  private final AtomicInteger busy = new AtomicInteger();
  private final AtomicInteger mostBusy = new AtomicInteger();

  /**
   * An echo environment: echoes the message; "stop" ends the episode with reward 1, "wrong" answers nonsense. Its
   * {@code GET /state} names the episode the last reset started and counts the steps since, as OpenEnv's servers do
   * (status "no-state": a server without /state).
   */
  private String echo(String status) throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    java.util.concurrent.atomic.AtomicReference<String> episode = new java.util.concurrent.atomic.AtomicReference<>();
    AtomicInteger steps = new AtomicInteger();
    server.createContext("/state", ex -> {
      reply(ex, status.equals("no-state") ? 404 : 200, "{\"episode_id\": \"" + episode.get()
          + "\", \"step_count\": " + steps.get() + "}");
    });
    server.createContext("/reset", ex -> {
      JsonNode body = JSON.readTree(ex.getRequestBody());
      requests.add(body);
      episode.set(body.path("episode_id").asText(java.util.UUID.randomUUID().toString()));
      steps.set(0);
      mostBusy.accumulateAndGet(busy.incrementAndGet(), Math::max);
      reply(ex, status.equals("ok") || status.equals("no-state") ? 200 : Integer.parseInt(status),
          "{\"observation\": {\"echoed_message\": \"ready\", \"message_length\": 0}, \"reward\": null, "
              + "\"done\": false}");
    });
    server.createContext("/step", ex -> {
      JsonNode body = JSON.readTree(ex.getRequestBody());
      requests.add(body);
      steps.incrementAndGet();
      String msg = body.at("/action/message").asText();
      if (msg.equals("slow")) {
        try {
          Thread.sleep(3000);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      if (msg.equals("stop")) {
        busy.decrementAndGet();
        reply(ex, 200, "{\"observation\": {\"echoed_message\": \"bye\"}, \"reward\": 1.0, \"done\": true}");
      } else if (msg.equals("wrong")) {
        reply(ex, 200, "[1, 2]");
      } else {
        reply(ex, 200, "{\"observation\": {\"echoed_message\": \"" + msg + "\", \"message_length\": "
            + msg.length() + "}, \"reward\": 0.0, \"done\": false}");
      }
    });
    server.start();
    servers.add(server);
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private static void reply(com.sun.net.httpserver.HttpExchange ex, int status, String body) throws IOException {
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    ex.sendResponseHeaders(status, b.length);
    ex.getResponseBody().write(b);
    ex.close();
  }

  @AfterEach
  void stop() {
    servers.forEach(s -> s.stop(0));
    if (system != null) {
      system.terminate();
    }
  }

  private org.apache.pekko.actor.ActorSystem system;
  private final AtomicInteger sessions = new AtomicInteger();
  private final AtomicInteger mostSessions = new AtomicInteger();

  /**
   * OpenEnv's {@code /ws} (Pekko HTTP): each connection an echo environment of its own, as OpenEnv's server gives
   * each session its own environment instance; at most {@code maxSessions} at once (more are answered with
   * CAPACITY_REACHED). Messages: "stop" ends the episode with reward 1, "wrong" answers nonsense, "boom" an error,
   * "slow" answers after 3 s.
   */
  private String socketEcho(int maxSessions) throws Exception {
    if (system == null) {
      system = org.apache.pekko.actor.ActorSystem.create("openenv-test");
    }
    AtomicInteger open = new AtomicInteger(); // this server's sessions
    org.apache.pekko.http.javadsl.server.Route route = org.apache.pekko.http.javadsl.server.Directives.path("ws",
        () -> org.apache.pekko.http.javadsl.server.Directives.extractRequest(request ->
            org.apache.pekko.http.javadsl.server.Directives.handleWebSocketMessages(session(open, maxSessions))));
    var binding = org.apache.pekko.http.javadsl.Http.get(system).newServerAt("127.0.0.1", 0).bind(route)
        .toCompletableFuture().get(10, java.util.concurrent.TimeUnit.SECONDS);
    return "http://127.0.0.1:" + binding.localAddress().getPort();
  }

  /** One session: its own episode id and step count. */
  private org.apache.pekko.stream.javadsl.Flow<org.apache.pekko.http.javadsl.model.ws.Message,
      org.apache.pekko.http.javadsl.model.ws.Message, org.apache.pekko.NotUsed> session(AtomicInteger open,
      int maxSessions) {
    boolean full = open.incrementAndGet() > maxSessions;
    mostSessions.accumulateAndGet(sessions.incrementAndGet(), Math::max);
    if (full) { // as OpenEnv's server: the error as soon as the connection opens, then the close
      return org.apache.pekko.stream.javadsl.Flow.fromSinkAndSourceCoupled(
          org.apache.pekko.stream.javadsl.Sink.<org.apache.pekko.http.javadsl.model.ws.Message>ignore(),
          org.apache.pekko.stream.javadsl.Source.single((org.apache.pekko.http.javadsl.model.ws.Message)
              org.apache.pekko.http.javadsl.model.ws.TextMessage.create("{\"type\": \"error\", \"data\": "
                  + "{\"message\": \"Server at capacity\", \"code\": \"CAPACITY_REACHED\"}}")))
          .watchTermination((mat, done) -> {
            done.whenComplete((x, e) -> {
              open.decrementAndGet();
              sessions.decrementAndGet();
            });
            return mat;
          });
    }
    String[] episode = {null};
    int[] steps = {0};
    return org.apache.pekko.stream.javadsl.Flow.<org.apache.pekko.http.javadsl.model.ws.Message>create()
        .mapAsync(1, m -> m.asTextMessage().getStreamedText()
            .runFold("", String::concat, org.apache.pekko.stream.Materializer.matFromSystem(system)))
        .takeWhile(text -> !text.matches("(?s)\\{\\s*\"type\"\\s*:\\s*\"close\"\\s*}"))
        .map(text -> {
          JsonNode m = JSON.readTree(text);
          requests.add(m);
          String reply = switch (m.path("type").asText()) {
              case "reset" -> {
                episode[0] = m.at("/data/episode_id").asText();
                steps[0] = 0;
                yield observation("ready", null, false);
              }
              case "state" -> "{\"type\": \"state\", \"data\": {\"episode_id\": \"" + episode[0]
                  + "\", \"step_count\": " + steps[0] + "}}";
              case "step" -> {
                steps[0]++;
                String msg = m.at("/data/message").asText();
                if (msg.equals("slow")) {
                  Thread.sleep(3000);
                }
                yield switch (msg) {
                  case "stop" -> observation(episode[0] + " done after " + steps[0], 1.0, true);
                  case "wrong" -> "{\"type\": \"observation\"}";
                  case "boom" -> "{\"type\": \"error\", \"data\": {\"message\": \"step raised "
                      + "ValueError\", \"code\": \"EXECUTION_ERROR\"}}";
                  default -> observation(episode[0] + ": " + msg, 0.0, false);
                };
              }
              default -> "{\"type\": \"error\", \"data\": {\"message\": \"Unknown message type\", "
                  + "\"code\": \"UNKNOWN_TYPE\"}}";
            };
          return (org.apache.pekko.http.javadsl.model.ws.Message)
              org.apache.pekko.http.javadsl.model.ws.TextMessage.create(reply);
        })
        .watchTermination((mat, done) -> {
          done.whenComplete((x, e) -> {
            open.decrementAndGet();
            sessions.decrementAndGet();
          });
          return mat;
        });
  }

  private static String observation(String text, Double reward, boolean done) {
    return "{\"type\": \"observation\", \"data\": {\"observation\": {\"echoed_message\": \"" + text
        + "\"}, \"reward\": " + reward + ", \"done\": " + done + "}}";
  }

  private OpenEnvEnvironment sockets(String extra, String... urls) {
    StringBuilder list = new StringBuilder();
    for (String u : urls) {
      list.append(list.isEmpty() ? "" : ", ").append('"').append(u).append('"');
    }
    return new OpenEnvEnvironment.Factory().create(ConfigFactory.parseString("urls = [" + list + "], "
        + "observation-field = echoed_message, reset-fields = [level], timeout = 2s, retries = 1" + extra));
  }

  /**
   * Over websocket (the default transport) each episode has a session of its own: episodes that share a server at
   * once keep apart (each sees its own id and step count), never more than sessions-per-server per server, and every
   * session is closed when its episode ends.
   */
  @Test
  void websocketSessionsHoldAnEpisodeEach() throws Exception {
    String a = socketEcho(2);
    String b = socketEcho(2);
    try (GuardedEnvironment env = new GuardedEnvironment(sockets(", sessions-per-server = 2", a, b), "openenv",
        Duration.ofSeconds(10))) {
      assertEquals(4, env.capacity());
      List<Thread> players = new ArrayList<>();
      List<String> failures = new CopyOnWriteArrayList<>();
      // the first four episodes hold their sessions until all four are open: the capacity is reached, never passed
      java.util.concurrent.CountDownLatch together = new java.util.concurrent.CountDownLatch(4);
      for (int i = 0; i < 8; i++) {
        int id = i;
        Thread player = new Thread(() -> {
          try (GuardedEnvironment.GuardedEpisode ep = env.start(new EpisodeStart(id, 0, "", "",
              Map.of("level", "2")))) {
            String me = id + "-0";
            if (ep.failedStart() != null) {
              failures.add("start " + ep.failedStart());
              return;
            }
            check(failures, ep.step("hello").observation().equals(List.of(EnvMessage.user(me + ": hello"))),
                "episode " + me + " saw another's answer");
            together.countDown();
            together.await(10, java.util.concurrent.TimeUnit.SECONDS);
            StepResult end = ep.step("stop");
            check(failures, end.equals(StepResult.end(1.0, "done")), me + " ended " + end);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        });
        player.start();
        players.add(player);
      }
      for (Thread t : players) {
        t.join();
      }
      assertEquals(List.of(), failures);
    }
    assertEquals(4, mostSessions.get(), "two servers, two sessions each");
    long deadline = System.nanoTime() + 5_000_000_000L;
    while (sessions.get() > 0 && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertEquals(0, sessions.get(), "every session closed");
    JsonNode reset = requests.stream().filter(r -> r.path("type").asText().equals("reset")).findFirst()
        .orElseThrow();
    assertEquals("2", reset.at("/data/level").asText(), "reset-fields go in the reset's data");
    assertTrue(reset.at("/data/seed").isNumber(), reset.toString());
  }

  private static void check(List<String> failures, boolean ok, String what) {
    if (!ok) {
      failures.add(what);
    }
  }

  /**
   * A server that is down, has no /ws, is full (it says so at once and closes, as OpenEnv's), answers an error,
   * nonsense or too late fails the episode naming why.
   */
  @Test
  void websocketFailuresFailTheEpisodeNamingWhy() throws Exception {
    String down = "http://127.0.0.1:" + freePort();
    try (GuardedEnvironment env = new GuardedEnvironment(sockets("", down), "openenv", Duration.ofSeconds(10))) {
      StepResult noServer = env.start(row(1)).failedStart();
      assertFailed(noServer, "cannot open ws://127.0.0.1:");
    }
    String httpOnly = echo("ok"); // a server without /ws
    try (GuardedEnvironment env = new GuardedEnvironment(sockets("", httpOnly), "openenv", Duration.ofSeconds(10))) {
      StepResult refused = env.start(row(1)).failedStart();
      assertTrue(refused.isFailed() && refused.failure().contains("refused the WebSocket upgrade with HTTP 404")
          && refused.failure().contains("transport = http"), refused.failure());
    }
    String one = socketEcho(1);
    try (GuardedEnvironment env = new GuardedEnvironment(sockets(", sessions-per-server = 2", one), "openenv",
        Duration.ofSeconds(10))) {
      GuardedEnvironment.GuardedEpisode first = env.start(row(2));
      assertNull(first.failedStart());
      StepResult full = env.start(row(3)).failedStart();
      assertFailed(full, "error CAPACITY_REACHED");
      StepResult boom = first.step("boom");
      assertFailed(boom, "error EXECUTION_ERROR: step raised ValueError");
      first.close();
      GuardedEnvironment.GuardedEpisode second = env.start(row(5));
      StepResult nonsense = second.step("wrong");
      assertFailed(nonsense, "no {\"type\": \"observation\", \"data\"}");
      second.close();
      GuardedEnvironment.GuardedEpisode third = env.start(row(6));
      assertSlowStepFailsAtTheTimeout(third, "no answer from ws://");
      third.close();
      // its slot is free again: a new episode gets a session of its own
      long deadline = System.nanoTime() + 5_000_000_000L;
      GuardedEnvironment.GuardedEpisode next;
      do {
        Thread.sleep(100); // the server notices the aborted connection
        next = env.start(row(4));
        if (next.failedStart() != null) {
          next.close();
        }
      } while (next.failedStart() != null && System.nanoTime() < deadline);
      assertNull(next.failedStart());
      assertEquals(StepResult.end(1.0, "done"), next.step("stop"));
      next.close();
    }
  }

  private OpenEnvEnvironment client(String extra, String... urls) {
    StringBuilder list = new StringBuilder();
    for (String u : urls) {
      list.append(list.isEmpty() ? "" : ", ").append('"').append(u).append('"');
    }
    return new OpenEnvEnvironment.Factory().create(ConfigFactory.parseString("urls = [" + list + "], "
        + "transport = http, observation-field = echoed_message, reset-fields = [level], timeout = 2s, retries = 1"
        + extra));
  }

  @Test
  void episodesSpeakOpenEnvsInterfaceOneEpisodePerServerAtATime() throws Exception {
    String a = echo("ok");
    String b = echo("ok");
    try (GuardedEnvironment env = new GuardedEnvironment(client("", a, b), "openenv", Duration.ofSeconds(5))) {
      List<Thread> players = new ArrayList<>();
      List<StepResult> ends = new CopyOnWriteArrayList<>();
      for (int i = 0; i < 6; i++) {
        int id = i;
        Thread player = new Thread(() -> {
          try (GuardedEnvironment.GuardedEpisode ep = env.start(new EpisodeStart(id, 1, "say stop", "",
              Map.of("level", "3")))) {
            assertNull(ep.failedStart());
            assertEquals(List.of(), ep.opening(), "the row's prompt opens the episode, not the reset's text");
            assertEquals(List.of(EnvMessage.user("hello " + id)), ep.step("hello " + id).observation());
            ends.add(ep.step("stop"));
          }
        });
        player.start();
        players.add(player);
      }
      for (Thread t : players) {
        t.join();
      }
      assertEquals(6, ends.size());
      for (StepResult r : ends) {
        assertEquals(StepResult.end(1.0, "done"), r);
      }
      assertEquals(2, mostBusy.get(), "two servers, at most two episodes at once");
    }
    JsonNode reset = requests.stream().filter(r -> r.has("episode_id")).findFirst().orElseThrow();
    assertTrue(reset.get("episode_id").asText().endsWith("-1") && reset.has("seed"), reset.toString());
    assertEquals("3", reset.get("level").asText(), "reset-fields come from the row");
    assertTrue(requests.stream().anyMatch(r -> r.at("/action/message").asText().equals("hello 0")));
  }

  @Test
  void serversThatFailOrAnswerNonsenseFailTheEpisodeNamingWhy() throws Exception {
    String down = "http://127.0.0.1:" + freePort();
    String broken = echo("500");
    String ok = echo("ok");
    try (GuardedEnvironment env = new GuardedEnvironment(client("", down), "openenv", Duration.ofSeconds(10))) {
      StepResult noServer = env.start(row(1)).failedStart();
      assertFailed(noServer, "/reset");
    }
    try (GuardedEnvironment env = new GuardedEnvironment(client("", broken), "openenv", Duration.ofSeconds(10))) {
      StepResult error = env.start(row(1)).failedStart();
      assertFailed(error, "/reset answered 500");
    }
    try (GuardedEnvironment env = new GuardedEnvironment(client(", show-reset = true", ok), "openenv",
        Duration.ofSeconds(10))) {
      StepResult noField = env.start(new EpisodeStart(1, 0, "", "", Map.of())).failedStart();
      assertFailed(noField, "no field 'level'");
      GuardedEnvironment.GuardedEpisode ep = env.start(row(2));
      assertEquals(List.of(EnvMessage.user("ready")), ep.opening(), "show-reset: the reset's observation");
      StepResult nonsense = ep.step("wrong");
      assertFailed(nonsense, "no {\"observation\", \"done\"} object");
      ep.close();
      // a step slower than the request timeout (2 s) fails the episode, and its server comes back
      GuardedEnvironment.GuardedEpisode slow = env.start(row(4));
      assertSlowStepFailsAtTheTimeout(slow, "/step");
      slow.close();
      // the server is free again once the episode is closed
      GuardedEnvironment.GuardedEpisode next = env.start(row(3));
      assertNull(next.failedStart());
      next.close();
    }
  }

  /**
   * A server another client resets or steps during an episode (it was listed for two runs, say): the episode's last
   * step fails naming what changed instead of handing on the reward. A server without /state is refused at the
   * reset with check-state, and serves with check-state = false.
   */
  @Test
  void anEpisodeAnotherClientInterferedWithFails() throws Exception {
    String url = echo("ok");
    java.net.http.HttpClient other = java.net.http.HttpClient.newHttpClient();
    try (GuardedEnvironment env = new GuardedEnvironment(client("", url), "openenv", Duration.ofSeconds(10))) {
      GuardedEnvironment.GuardedEpisode clean = env.start(row(1));
      clean.step("hello");
      assertEquals(StepResult.end(1.0, "done"), clean.step("stop"), "nobody else: the reward stands");
      clean.close();
      for (String intruder : List.of("/reset", "/step")) {
        GuardedEnvironment.GuardedEpisode ep = env.start(row(2));
        ep.step("hello");
        other.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(url + intruder))
            .POST(java.net.http.HttpRequest.BodyPublishers.ofString(intruder.equals("/reset")
                ? "{\"episode_id\": \"someone-else\"}" : "{\"action\": {\"message\": \"hi\"}}")).build(),
            java.net.http.HttpResponse.BodyHandlers.ofString());
        StepResult end = ep.step("stop");
        assertTrue(end.isFailed(), intruder + ": " + end);
        assertTrue(end.failure().contains(intruder.equals("/reset") ? "names episode \"someone-else\""
            : "counted 3 steps since the reset, the episode took 2"), end.failure());
        assertTrue(end.failure().contains("did not keep this episode to itself"), end.failure());
        ep.close();
      }
    }
    String noState = echo("no-state");
    try (GuardedEnvironment env = new GuardedEnvironment(client("", noState), "openenv", Duration.ofSeconds(10))) {
      StepResult refused = env.start(row(3)).failedStart();
      assertTrue(refused.isFailed() && refused.failure().contains("/state answered 404")
          && refused.failure().contains("needs check-state = false"), refused.failure());
    }
    try (GuardedEnvironment env = new GuardedEnvironment(client(", check-state = false", noState), "openenv",
        Duration.ofSeconds(10))) {
      GuardedEnvironment.GuardedEpisode ep = env.start(row(4));
      assertNull(ep.failedStart());
      assertEquals(StepResult.end(1.0, "done"), ep.step("stop"));
      ep.close();
    }
  }

  /** A row of the echo environments' dataset (reset-fields = [level]). */
  private static EpisodeStart row(long id) {
    return new EpisodeStart(id, 0, "", "", Map.of("level", "1"));
  }

  private static void assertFailed(StepResult r, String reason) {
    assertTrue(r.isFailed() && r.failure().contains(reason), String.valueOf(r.failure()));
  }

  /** A step slower than the request timeout (2 s) fails the episode, naming {@code reason}, at the timeout. */
  private static void assertSlowStepFailsAtTheTimeout(GuardedEnvironment.GuardedEpisode episode, String reason) {
    long before = System.nanoTime();
    assertFailed(episode.step("slow"), reason);
    assertTrue((System.nanoTime() - before) / 1e9 < 2.9, "ended at the request timeout");
  }

  private static int freePort() throws IOException {
    try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}
