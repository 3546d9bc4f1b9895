package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.actors.weights.CorruptingFlow;
import dev.nucleon.actors.weights.TensorSource;
import dev.nucleon.actors.weights.WeightServer;
import dev.nucleon.actors.weights.WeightStream;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.tokenizer.HfTokenizer;
import dev.nucleon.rollout.RolloutEngine;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A rollout worker's side of the weight stream, on the real worker actor and model: it fetches what is announced,
 * takes the newest of several announcements, survives a corrupted transfer by fetching again, and ends holding
 * exactly the weights the server sent.
 */
class WorkerWeightFetchTest {

  private static final Path BASE = TestRuns.REPO.resolve("conf/models/quickstart-base");
  private static ActorTestKit kit;

  @BeforeAll
  static void start() {
    kit = ActorTestKit.create();
  }

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  /** The base model's weights with every value moved by {@code delta}: a new version that is easy to recognize. */
  private static Map<String, HostTensor> version(Map<String, HostTensor> base, float delta) {
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (HostTensor t : base.values()) {
      float[] d = t.data().clone();
      for (int i = 0; i < d.length; i++) {
        d[i] += delta;
      }
      out.put(t.name(), new HostTensor(t.name(), t.shape(), d));
    }
    return out;
  }

  private static WeightServer.Version serve(int v, Map<String, HostTensor> w) {
    List<TensorSource> s = w.values().stream().map(TensorSource::of).toList();
    return new WeightServer.Version(v, s, false, WeightStream.wireBytes(s, false));
  }

  @Test
  void aWorkerTakesTheNewestVersionAndFetchesAgainAfterACorruptTransfer() throws Exception {
    Engines.start();
    ModelFiles.Checkpoint ckpt = ModelFiles.read(BASE);
    AtomicInteger connections = new AtomicInteger();
    // the second connection has one byte flipped in flight
    WeightServer server = WeightServer.start(kit.system(), "127.0.0.1", 0, 4096, 0,
        CorruptingFlow.onConnection(2, 20_000, connections));
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ckpt.instantiate(m);
        HfTokenizer tok = HfTokenizer.load(BASE)) {
      Map<String, HostTensor> base = model.toHostTensors();
      RolloutEngine engine = new RolloutEngine(new Generator(model, 0), tok, SamplingParams.greedy(4));
      TestProbe<Coordinator.Command> coordinator = kit.createTestProbe();
      NucleonMetrics metrics = new NucleonMetrics("test", List.of("rollout"));
      ActorRef<RolloutWorker.Command> worker = kit.spawn(RolloutWorker.create("rollout-t", engine,
          coordinator.getRef(), 1, metrics));

      Map<String, HostTensor> v1 = version(base, 0.001f);
      server.publish(serve(1, v1));
      worker.tell(announcement(server, 1, serve(1, v1).wireBytes()));
      awaitVersion(engine, 1);
      assertEquals(v1.get("model.norm.weight").data()[0], model.toHostTensors().get("model.norm.weight").data()[0]);

      // two announcements in a row; the newest (3) is what the server holds; its first transfer is corrupted
      Map<String, HostTensor> v3 = version(base, 0.003f);
      server.publish(serve(3, v3));
      long bytes = serve(3, v3).wireBytes();
      worker.tell(announcement(server, 2, bytes));
      worker.tell(announcement(server, 3, bytes));
      awaitVersion(engine, 3);
      assertTrue(connections.get() >= 3, "the corrupted transfer was fetched again (" + connections.get() + ")");
      String scrape = metrics.scrapeText();
      assertTrue(scrape.contains("nucleon_weights_fetch_failures_total{actor=\"rollout-t\",node=\"test\",role=\"rollout\"} 1.0"),
          scrape);
      assertTrue(scrape.contains("nucleon_weights_fetch_seconds_count{actor=\"rollout-t\",node=\"test\",role=\"rollout\"} 2"),
          scrape);
      Map<String, HostTensor> held = model.toHostTensors();
      for (var e : v3.entrySet()) {
        assertArrayEquals(e.getValue().data(), held.get(e.getKey()).data(), e.getKey());
      }
      kit.stop(worker);
    } finally {
      server.close();
    }
  }

  /**
   * A worker told there is no work asks again as soon as new weights arrive, with their version, not when its retry
   * timer fires: the staleness bound that held work back moves with the version (here the timer is a minute, so only
   * the weights can have prompted the second request). A version that arrives while its request is unanswered does
   * not make it ask twice.
   */
  @Test
  void aWorkerToldThereIsNoWorkAsksAgainWhenNewWeightsArrive() throws Exception {
    Engines.start();
    ModelFiles.Checkpoint ckpt = ModelFiles.read(BASE);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ckpt.instantiate(m);
        HfTokenizer tok = HfTokenizer.load(BASE)) {
      Map<String, HostTensor> base = model.toHostTensors();
      RolloutEngine engine = new RolloutEngine(new Generator(model, 0), tok, SamplingParams.greedy(4));
      TestProbe<Coordinator.Command> coordinator = kit.createTestProbe();
      TestProbe<RewardScorer.Command> scorer = kit.createTestProbe();
      ActorRef<RewardScorer.Command> silent = kit.spawn(ScorerHandoffTest.silent(scorer.getRef()));
      ActorRef<RolloutWorker.Command> worker = kit.spawn(RolloutWorker.create("rollout-w", engine,
          coordinator.getRef(), 1, new NucleonMetrics("test", List.of("rollout")), null, Duration.ofMinutes(1)));
      Coordinator.RequestWork ask = coordinator.expectMessageClass(Coordinator.RequestWork.class,
          Duration.ofSeconds(30));
      assertEquals(0, ask.version());
      ask.replyTo().tell(new Coordinator.NoWork(false));
      coordinator.expectNoMessage(Duration.ofMillis(300));
      worker.tell(new RolloutWorker.LocalWeights(1, version(base, 0.001f)));
      Coordinator.RequestWork again = coordinator.expectMessageClass(Coordinator.RequestWork.class,
          Duration.ofSeconds(10));
      assertEquals(1, again.version(), "asks with the version it will sample with");
      // answered NoWork again, it waits again, and the next version makes it ask once more
      again.replyTo().tell(new Coordinator.NoWork(false));
      worker.tell(new RolloutWorker.LocalWeights(2, version(base, 0.002f)));
      assertEquals(2, coordinator.expectMessageClass(Coordinator.RequestWork.class, Duration.ofSeconds(10))
          .version());
      worker.tell(new RolloutWorker.LocalWeights(3, version(base, 0.003f))); // that request is still unanswered
      coordinator.expectNoMessage(Duration.ofMillis(500));
      kit.stop(worker);
      kit.stop(silent);
    }
  }

  private static RolloutWorker.WeightsAvailable announcement(WeightServer server, int version, long bytes) {
    return new RolloutWorker.WeightsAvailable(version, server.host(), server.port(), bytes, null, server.host(),
        server.port());
  }

  private static void awaitVersion(RolloutEngine engine, int version) throws InterruptedException {
    long deadline = System.nanoTime() + 30_000_000_000L;
    while (engine.version() < version && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertEquals(version, engine.version(), "the worker's model holds version " + version);
  }
}
