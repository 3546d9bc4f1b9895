package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.typesafe.config.ConfigFactory;
import java.awt.image.BufferedImage;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Headless Chromium (Debian's {@code chromium}; skipped when it is not installed) opens the dashboard of a run and
 * the charts hold data points; a screenshot is kept in {@code target/test-artifacts/dashboard.png}.
 */
class DashboardBrowserTest {

  @TempDir
  Path runDir;

  @Test
  void chartsHoldDataPoints() throws Exception {
    Optional<Path> chromium = ExternalTools.find("chromium", "chromium-browser", "google-chrome");
    assumeTrue(chromium.isPresent(), "chromium is not installed (apt-get install chromium)");

    // a run in progress: 30 steps in metrics.jsonl and live figures of two rollout workers
    NucleonMetrics metrics = new NucleonMetrics("127.0.0.1:25520", List.of("coordinator", "rollout", "learner"));
    StringBuilder rows = new StringBuilder();
    for (int s = 1; s <= 30; s++) {
      metrics.rolloutTokens("rollout-0", 4000);
      metrics.rolloutTokens("rollout-1", 3000);
      metrics.learnerStep(0.4, 5000, 16);
      metrics.trajectoryStaleness(s % 3);
      // step 17's gradient was a spike, step 23's update was skipped: the page must say so
      String flags = s == 17 ? ",\"grad_spike\":1,\"grad_norm\":4200.0,\"grad_norm_max_param\":3900.0"
          : s == 23 ? ",\"skipped_update\":1" : "";
      rows.append(String.format(Locale.ROOT, "{\"type\":\"step\",\"step\":%d,\"reward_mean\":%.3f,\"accuracy\":%.3f,"
          + "\"loss\":%.4f,\"kl\":%.4f,\"learner_step_seconds\":%.3f,\"staleness_max\":%d%s}%n",
          s, 0.2 + 0.01 * s, 0.1 + 0.012 * s, -0.02 / s, 0.001 * s, 0.4 + 0.01 * (s % 5), s % 3, flags));
    }
    Files.writeString(runDir.resolve("metrics.jsonl"), rows, StandardCharsets.UTF_8);
    metrics.busyTracker("rollout", "rollout-0").record(200_000_000L);
    metrics.busyTracker("rollout", "rollout-1").record(100_000_000L);
    metrics.busyTracker("learner", "learner").record(150_000_000L);
    long start = System.currentTimeMillis();

    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "dashboard-browser-test",
        ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = WARNING")
            .withFallback(ConfigFactory.load()));
    try {
      DashboardServer server = DashboardServer.start(system, new MonitorSettings.Endpoint(true, "127.0.0.1", 0),
          () -> {
            metrics.rolloutTokens("rollout-0", 500);
            Map<String, Long> prompts = new LinkedHashMap<>();
            prompts.put("pending", 90L);
            prompts.put("in_flight", 10L);
            return CompletableFuture.completedFuture(new ClusterStatus(System.currentTimeMillis(), "running",
                "browser-test", runDir.toString(), 30, 100, 30, (System.currentTimeMillis() - start) / 1000.0 + 60,
                new ArrayList<>(List.of(new ClusterStatus.Member("pekko://nucleon@127.0.0.1:25520", "Up",
                    new ArrayList<>(List.of("coordinator", "learner", "rollout")), true))),
                prompts, List.of(metrics.snapshot())));
          }, () -> runDir, metrics).toCompletableFuture().get(20, TimeUnit.SECONDS);
      try {
        Path artifacts = Files.createDirectories(Path.of("target", "test-artifacts"));
        String dom = chromium(chromium.get(), runDir.resolve("profile-dom"), "--dump-dom", server.url());
        Map<String, Integer> points = new LinkedHashMap<>();
        Matcher m = Pattern.compile("<canvas id=\"(chart-[a-z-]+)\"[^>]*data-points=\"(\\d+)\"").matcher(dom);
        while (m.find()) {
          points.put(m.group(1), Integer.parseInt(m.group(2)));
        }
        Files.writeString(artifacts.resolve("dashboard-dom.html"), dom, StandardCharsets.UTF_8);
        assertEquals(List.of("chart-reward", "chart-tokens", "chart-step-time", "chart-staleness", "chart-busy",
            "chart-signals"), List.copyOf(points.keySet()), "charts with data: " + points + "\n" + dom);
        assertEquals(60, points.get("chart-reward"), "reward_mean and accuracy, 30 steps each");
        assertEquals(30, points.get("chart-step-time"));
        assertEquals(30, points.get("chart-staleness"));
        assertEquals(3, points.get("chart-busy"));
        assertEquals(61, points.get("chart-signals"), "loss and kl by default (30 each), grad_norm (one row)");
        assertTrue(points.get("chart-tokens") >= 2, "one live point per rollout worker at least");
        assertTrue(dom.contains("pekko://nucleon@127.0.0.1:25520"), "members table");
        assertTrue(dom.contains("<div id=\"error\" hidden=\"\"></div>"), "no error shown");
        Matcher w = Pattern.compile("<div id=\"warnings\"([^>]*)>([^<]*)</div>").matcher(dom);
        assertTrue(w.find(), "warnings element\n" + dom);
        assertTrue(w.group(1).contains("data-spikes=\"1\"") && w.group(1).contains("data-skipped=\"1\"")
            && !w.group(1).contains("hidden"), w.group(0));
        assertTrue(w.group(2).contains("gradient spikes in 1 step(s), latest at step 17")
            && w.group(2).contains("updates skipped in 1 step(s), latest at step 23"), w.group(2));

        Path shot = artifacts.resolve("dashboard.png");
        Files.deleteIfExists(shot);
        chromium(chromium.get(), runDir.resolve("profile-shot"), "--screenshot=" + shot.toAbsolutePath(),
            server.url());
        BufferedImage img = ImageIO.read(shot.toFile());
        assertNotNull(img, "screenshot decodes");
        assertEquals(1400, img.getWidth());
      } finally {
        server.stop(Duration.ofSeconds(2)).toCompletableFuture().get(10, TimeUnit.SECONDS);
      }
    } finally {
      system.terminate();
    }
  }

  /** Runs headless Chromium on {@code url} and returns its standard output. */
  private static String chromium(Path chromium, Path profile, String action, String url) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(chromium.toString(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + profile,
        "--window-size=1400,1600", "--virtual-time-budget=6000", action, url));
    Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    byte[] out = p.getInputStream().readAllBytes();
    if (!p.waitFor(90, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("chromium did not finish: " + cmd);
    }
    return new String(out, StandardCharsets.UTF_8);
  }
}
