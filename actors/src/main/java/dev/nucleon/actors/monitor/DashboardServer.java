package dev.nucleon.actors.monitor;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import org.apache.pekko.Done;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.CacheControl;
import org.apache.pekko.http.javadsl.model.headers.CacheDirectives;
import org.apache.pekko.http.javadsl.server.Directives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The run's web dashboard on the coordinator's node (Pekko HTTP, 127.0.0.1 by default):
 * <ul>
 *   <li>{@code GET /}: the dashboard page (charts drawn with the Chart.js bundle packed into the jar at build
 *       time; the page fetches nothing from outside this server);</li>
 *   <li>{@code GET /api/status}: the cluster-wide JSON of {@link StatusView}, from the status the coordinator
 *       hands in;</li>
 *   <li>{@code GET /api/history?from=OFFSET}: rows of {@code RUN_DIR/metrics.jsonl} from a byte offset:
 *       {@code {"rows": [...], "next": OFFSET, "skipped": n}} (the page polls with the last {@code next});</li>
 *   <li>{@code GET /metrics}: this node's Prometheus text, when a {@link NucleonMetrics} is given.</li>
 * </ul>
 */
public final class DashboardServer {

  private static final Logger LOG = LoggerFactory.getLogger(DashboardServer.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Rows per {@code /api/history} answer at most. */
  static final int HISTORY_ROWS_MAX = 5000;

  private final ServerBinding binding;
  private final String host;

  private DashboardServer(ServerBinding binding, String host) {
    this.binding = binding;
    this.host = host;
  }

  /**
   * Binds the dashboard.
   *
   * @param system the actor system (typed or classic) whose Pekko HTTP serves it
   * @param settings host and port ({@code nucleon.monitor.dashboard}; {@code enabled} is the caller's to check)
   * @param status asks the coordinator for the current {@link ClusterStatus} (called once per request)
   * @param runDir the run directory whose {@code metrics.jsonl} is the history (called once per request; may
   *     return null before the run directory exists)
   * @param metrics this node's metrics for {@code /metrics}, or null to leave that path out
   * @return the bound server; fails when the port cannot be bound
   */
  public static CompletionStage<DashboardServer> start(ClassicActorSystemProvider system,
      MonitorSettings.Endpoint settings, Supplier<CompletionStage<ClusterStatus>> status, Supplier<Path> runDir,
      NucleonMetrics metrics) {
    Route route = routes(status, runDir, metrics);
    return Http.get(system).newServerAt(settings.host(), settings.port()).bind(route)
        .thenApply(b -> {
          DashboardServer s = new DashboardServer(b, settings.host());
          LOG.info("Dashboard on {}", s.url());
          return s;
        });
  }

  static Route routes(Supplier<CompletionStage<ClusterStatus>> status, Supplier<Path> runDir,
      NucleonMetrics metrics) {
    CacheControl noStore = CacheControl.create(CacheDirectives.NO_STORE);
    return Directives.get(() -> Directives.concat(
        Directives.pathSingleSlash(() -> Directives.getFromResource("dashboard/index.html",
            ContentTypes.TEXT_HTML_UTF8)),
        Directives.path(PathMatchers.segment("api").slash("status"), () -> Directives.respondWithHeader(noStore,
            () -> Directives.completeWithFuture(statusResponse(status, runDir)))),
        Directives.path(PathMatchers.segment("api").slash("history"), () -> Directives.respondWithHeader(noStore,
            () -> Directives.parameterOptional("from", from -> Directives.complete(historyResponse(runDir, from))))),
        Directives.path("metrics", () -> metrics == null ? Directives.reject()
            : Directives.respondWithHeader(noStore, () -> Directives.complete(HttpResponse.create().withEntity(
                HttpEntities.create(ContentTypes.parse("text/plain; version=0.0.4; charset=utf-8"),
                    metrics.scrapeText().getBytes(StandardCharsets.UTF_8)))))),
        Directives.path(PathMatchers.segment("vendor").slash("chart.umd.min.js"),
            () -> Directives.getFromResource(CHART_JS, ContentTypes.create(
                org.apache.pekko.http.javadsl.model.MediaTypes.APPLICATION_JAVASCRIPT,
                org.apache.pekko.http.javadsl.model.HttpCharsets.UTF_8))),
        Directives.getFromResourceDirectory("dashboard")));
  }

  /**
   * Chart.js's browser bundle inside its WebJar ({@code org.webjars.npm:chart.js} on Maven Central, a dependency of
   * this module), at the version the WebJar's own Maven metadata names, so the pom alone pins it.
   */
  static final String CHART_JS = "META-INF/resources/webjars/chart.js/" + webJarVersion("chart.js")
      + "/dist/chart.umd.min.js";

  private static String webJarVersion(String artifact) {
    String file = "META-INF/maven/org.webjars.npm/" + artifact + "/pom.properties";
    try (var in = DashboardServer.class.getClassLoader().getResourceAsStream(file)) {
      if (in == null) {
        throw new IllegalStateException(file + " is not on the class path: the " + artifact + " WebJar is missing");
      }
      java.util.Properties p = new java.util.Properties();
      p.load(in);
      return p.getProperty("version");
    } catch (java.io.IOException e) {
      throw new IllegalStateException("cannot read " + file, e);
    }
  }

  /**
   * The coordinator's status as JSON; its run folder is the one this server reads the history from (the dashboard
   * runs on the coordinator's node).
   */
  private static CompletionStage<HttpResponse> statusResponse(Supplier<CompletionStage<ClusterStatus>> status,
      Supplier<Path> runDir) {
    CompletionStage<ClusterStatus> asked;
    try {
      asked = status.get();
    } catch (RuntimeException e) {
      asked = CompletableFuture.failedFuture(e);
    }
    return asked.handle((s, e) -> {
      if (e != null || s == null) {
        ObjectNode err = JSON.createObjectNode();
        err.put("error", e == null ? "no status yet" : String.valueOf(rootCause(e).getMessage()));
        return json(StatusCodes.SERVICE_UNAVAILABLE, err);
      }
      Path dir = runDir.get();
      return json(StatusCodes.OK, StatusView.toJson(s.runDir().isEmpty() && dir != null
          ? s.withRunDir(dir.toAbsolutePath().toString()) : s));
    });
  }

  private static HttpResponse historyResponse(Supplier<Path> runDir, Optional<String> from) {
    long offset;
    try {
      offset = from.map(Long::parseLong).orElse(0L);
    } catch (NumberFormatException e) {
      ObjectNode err = JSON.createObjectNode();
      err.put("error", "from must be a byte offset, got '" + from.get() + "'");
      return json(StatusCodes.BAD_REQUEST, err);
    }
    Path dir = runDir.get();
    ObjectNode out = JSON.createObjectNode();
    ArrayNode rows = out.putArray("rows");
    if (dir == null) {
      out.put("next", 0);
      out.put("skipped", 0);
      return json(StatusCodes.OK, out);
    }
    RunHistory.Chunk chunk = RunHistory.read(dir.resolve(RunHistory.FILE), offset, HISTORY_ROWS_MAX);
    chunk.rows().forEach(rows::add);
    out.put("next", chunk.next());
    out.put("skipped", chunk.skipped());
    return json(StatusCodes.OK, out);
  }

  private static HttpResponse json(org.apache.pekko.http.javadsl.model.StatusCode code, Object tree) {
    try {
      return HttpResponse.create().withStatus(code)
          .withEntity(HttpEntities.create(ContentTypes.APPLICATION_JSON, JSON.writeValueAsBytes(tree)));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static Throwable rootCause(Throwable e) {
    while (e.getCause() != null && e.getCause() != e) {
      e = e.getCause();
    }
    return e;
  }

  /** The bound port (the real one when the configured port was 0). */
  public int port() {
    return binding.localAddress().getPort();
  }

  /** The bound address. */
  public InetSocketAddress address() {
    return binding.localAddress();
  }

  /** The page's URL, e.g. {@code http://127.0.0.1:8765/}. */
  public String url() {
    String h = host.contains(":") ? "[" + host + "]" : host;
    return "http://" + h + ":" + port() + "/";
  }

  /** Unbinds and lets open requests finish (up to {@code deadline}). */
  public CompletionStage<Done> stop(Duration deadline) {
    return binding.terminate(deadline).thenApply(t -> Done.getInstance());
  }

  /** Names of the static resources the page needs, for checks. */
  static List<String> resources() {
    return List.of("dashboard/index.html", "dashboard/app.js", "dashboard/app.css", CHART_JS);
  }
}
