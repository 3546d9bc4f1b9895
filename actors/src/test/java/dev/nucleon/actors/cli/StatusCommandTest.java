package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import dev.nucleon.actors.monitor.MonitorFixtures;
import dev.nucleon.actors.monitor.StatusView;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class StatusCommandTest {

  private HttpServer server;
  private volatile int code = 200;
  private volatile String body;

  @BeforeEach
  void start() throws Exception {
    body = StatusView.render(MonitorFixtures.twoNodeStatus());
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/api/status", ex -> {
      byte[] b = body.getBytes(StandardCharsets.UTF_8);
      ex.getResponseHeaders().add("Content-Type", "application/json");
      ex.sendResponseHeaders(code, b.length);
      ex.getResponseBody().write(b);
      ex.close();
    });
    server.start();
  }

  @AfterEach
  void stop() {
    server.stop(0);
  }

  private String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private static String[] run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cli = new CommandLine(new StatusCommand());
    cli.setOut(new PrintWriter(out, true));
    cli.setErr(new PrintWriter(err, true));
    cli.setExecutionExceptionHandler((ex, line, parsed) -> {
      line.getErr().println("nucleon status: " + ex.getMessage());
      return 1;
    });
    int exit = cli.execute(args);
    return new String[] {Integer.toString(exit), out.toString(), err.toString()};
  }

  @Test
  void printsTheClusterViewAsTables() {
    String[] r = run("--url", url() + "/");
    assertEquals("0", r[0], r[2]);
    String out = r[1];
    assertTrue(out.startsWith("run quickstart  state running  step 3/10  policy v3  elapsed 6s  ETA 14s"), out);
    assertTrue(out.contains("MEMBER") && out.contains("pekko://nucleon@127.0.0.1:25521  Up      reward,rollout"),
        out);
    assertTrue(out.lines().anyMatch(l -> l.startsWith("rollout-0") && l.contains("5,000")), out);
    assertTrue(out.contains("prompts") || out.contains("pending 100"), out);
    assertTrue(out.contains("learner  steps 1"), out);
    assertTrue(out.contains("training  loss -  reward_mean 0.4000"), out);
  }

  @Test
  void jsonOptionPrintsTheRawView() throws Exception {
    String[] r = run("--url", url(), "--json");
    assertEquals("0", r[0], r[2]);
    assertEquals(3, new ObjectMapper().readTree(r[1]).at("/run/step").asInt());
  }

  @Test
  void errorsSayWhatIsWrong() {
    code = 503;
    body = "{\"error\":\"coordinator not up\"}";
    String[] r = run("--url", url());
    assertEquals("1", r[0]);
    assertTrue(r[2].contains("HTTP 503: coordinator not up"), r[2]);
    int port = server.getAddress().getPort();
    server.stop(0);
    r = run("--url", "http://127.0.0.1:" + port, "--timeout", "2s");
    assertEquals("1", r[0]);
    assertTrue(r[2].contains("no run answers at http://127.0.0.1:" + port), r[2]);
  }
}
