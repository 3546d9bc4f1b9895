package dev.nucleon.actors.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code nucleon status [--url URL]}: the running cluster's /api/status as terminal tables. */
@Command(name = "status", mixinStandardHelpOptions = true,
    description = {"Prints the cluster-wide status of a running run (members, step, policy version, throughput "
        + "per actor, queues, staleness) from its dashboard's /api/status."})
final class StatusCommand implements Callable<Integer> {

  private static final ObjectMapper JSON = new ObjectMapper();

  @Spec
  CommandSpec spec;

  @Option(names = "--url", defaultValue = "http://127.0.0.1:8765", paramLabel = "URL",
      description = "the dashboard of the run's coordinator node (nucleon.monitor.dashboard; default: "
          + "${DEFAULT-VALUE})")
  String url;

  @Option(names = "--json", description = "print the raw JSON instead of tables")
  boolean json;

  @Option(names = "--timeout", defaultValue = "10s", paramLabel = "DURATION",
      description = "how long to wait for an answer, e.g. 10s (default: ${DEFAULT-VALUE})")
  String timeout;

  @Override
  public Integer call() throws Exception {
    Duration wait = Duration.parse("PT" + timeout.trim().toUpperCase(Locale.ROOT));
    String base = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
    URI uri = URI.create(base + "/api/status");
    HttpClient http = HttpClient.newBuilder().connectTimeout(wait).build();
    HttpResponse<String> response;
    try {
      response = http.send(HttpRequest.newBuilder(uri).timeout(wait).GET().build(),
          HttpResponse.BodyHandlers.ofString());
    } catch (ConnectException e) {
      throw new IOException("no run answers at " + base + " (is a run going, with nucleon.monitor.dashboard "
          + "enabled on that host and port?)", e);
    }
    if (response.statusCode() != 200) {
      String detail = response.body();
      try {
        detail = JSON.readTree(detail).path("error").asText(detail);
      } catch (IOException ignored) {
        // not JSON: print as it is
      }
      throw new IOException(uri + " answered HTTP " + response.statusCode() + ": " + detail);
    }
    PrintWriter out = spec.commandLine().getOut();
    JsonNode s = JSON.readTree(response.body());
    if (json) {
      out.println(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(s));
    } else {
      print(s, out);
    }
    out.flush();
    return 0;
  }

  static void print(JsonNode s, PrintWriter out) {
    JsonNode run = s.path("run");
    StringBuilder head = new StringBuilder("run ").append(run.path("name").asText("-"))
        .append("  state ").append(s.path("state").asText("-"))
        .append("  step ").append(run.path("step").asLong());
    if (run.path("total_steps").asLong() > 0) {
      head.append('/').append(run.path("total_steps").asLong());
    }
    head.append("  policy v").append(run.path("policy_version").asInt())
        .append("  elapsed ").append(duration(run.path("elapsed_seconds")))
        .append("  ETA ").append(duration(run.path("eta_seconds")));
    out.println(head);
    if (!run.path("dir").isNull() && run.has("dir")) {
      out.println("dir " + run.path("dir").asText());
    }
    JsonNode t = s.path("throughput");
    out.println("throughput  rollout " + num(t.path("rollout_tokens_per_s"), 0) + " tok/s, "
        + num(t.path("rollout_trajectories_per_s"), 2) + " traj/s  |  reward " + num(t.path("reward_scored_per_s"), 1)
        + " scored/s  |  learner " + num(t.path("learner_tokens_per_s"), 0) + " tok/s");
    JsonNode st = s.path("staleness");
    StringBuilder q = new StringBuilder("staleness max " + num(st.path("max"), 0) + " mean "
        + num(st.path("mean"), 2) + "  |  replay groups " + num(s.path("replay").path("groups"), 0));
    for (Iterator<Map.Entry<String, JsonNode>> it = s.path("prompts").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      q.append("  |  ").append(e.getKey()).append(' ').append(num(e.getValue(), 0));
    }
    out.println(q);

    out.println();
    List<String[]> members = new ArrayList<>();
    members.add(new String[] {"MEMBER", "STATUS", "ROLES", "REACHABLE"});
    for (JsonNode m : s.path("members")) {
      List<String> roles = new ArrayList<>();
      m.path("roles").forEach(r -> roles.add(r.asText()));
      members.add(new String[] {m.path("address").asText(), m.path("status").asText(), String.join(",", roles),
          m.path("reachable").asBoolean(true) ? "yes" : "NO"});
    }
    table(members, out, 4);

    out.println();
    List<String[]> actors = new ArrayList<>();
    actors.add(new String[] {"ACTOR", "ROLE", "NODE", "TOK/S", "TRAJ/S", "TOKENS", "BATCH S", "BUSY", "MAILBOX"});
    for (JsonNode a : s.path("actors")) {
      JsonNode busy = a.path("busy_ratio");
      actors.add(new String[] {a.path("actor").asText(), a.path("role").asText(), a.path("node").asText(),
          num(a.path("tokens_per_s"), 0), num(a.path("trajectories_per_s"), 2), num(a.path("tokens"), 0),
          num(a.path("batch_seconds_mean"), 3),
          busy.isNumber() ? String.format(Locale.ROOT, "%.0f%%", 100 * busy.asDouble()) : "-",
          num(a.path("mailbox_depth"), 0)});
    }
    table(actors, out, 3);

    JsonNode l = s.path("learner");
    if (l.isObject()) {
      out.println();
      out.println("learner  steps " + num(l.path("steps"), 0) + "  step " + num(l.path("step_seconds_last"), 3)
          + " s (mean " + num(l.path("step_seconds_mean"), 3) + " s)  tokens " + num(l.path("tokens"), 0)
          + "  weights " + num(l.path("weights_publishes"), 0) + " publishes, last "
          + num(l.path("weights_publish_seconds_last"), 3) + " s, " + num(l.path("weights_bytes"), 0) + " bytes");
    }
    JsonNode training = s.path("training");
    if (training.size() > 0) {
      StringBuilder sb = new StringBuilder("training");
      training.fields().forEachRemaining(e -> sb.append("  ").append(e.getKey()).append(' ')
          .append(num(e.getValue(), 4)));
      out.println(sb);
    }
  }

  /** Left-aligned columns; columns from {@code firstNumeric} on are right-aligned. */
  static void table(List<String[]> rows, PrintWriter out, int firstNumeric) {
    int cols = rows.get(0).length;
    int[] width = new int[cols];
    for (String[] r : rows) {
      for (int i = 0; i < cols; i++) {
        width[i] = Math.max(width[i], r[i].length());
      }
    }
    for (String[] r : rows) {
      StringBuilder sb = new StringBuilder();
      for (int i = 0; i < cols; i++) {
        if (i > 0) {
          sb.append("  ");
        }
        String pad = " ".repeat(width[i] - r[i].length());
        sb.append(i >= firstNumeric ? pad + r[i] : r[i] + (i == cols - 1 ? "" : pad));
      }
      out.println(sb.toString().stripTrailing());
    }
  }

  static String num(JsonNode v, int digits) {
    if (v == null || !v.isNumber()) {
      return "-";
    }
    return String.format(Locale.ROOT, "%,." + digits + "f", v.asDouble());
  }

  static String duration(JsonNode v) {
    if (v == null || !v.isNumber()) {
      return "-";
    }
    long s = Math.round(v.asDouble());
    return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm%02ds", s / 3600, s % 3600 / 60, s % 60)
        : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
  }
}
