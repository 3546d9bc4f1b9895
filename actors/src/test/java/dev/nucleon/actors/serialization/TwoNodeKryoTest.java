package dev.nucleon.actors.serialization;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Two actor systems on 127.0.0.1 joined into one cluster: a message record holding a Trajectory, a scored one and
 * an ActorRef goes from one to an actor on the other over Artery and arrives equal, and the reply goes back through
 * the ref that travelled inside it. With Java serialization off and Kryo the only serializer bound to
 * NucleonMessage, delivery alone proves Kryo carried it; the counting subclass also shows it went through Artery's
 * ByteBuffer path on both sides.
 */
class TwoNodeKryoTest {
  /** A test message: what a rollout worker might send to a scorer. */
  public record Rollout(Trajectory trajectory, ScoredTrajectory previous, List<Integer> versions,
      Map<String, String> tags, ActorRef<Ack> replyTo) implements NucleonMessage {}

  /** The reply. */
  public record Ack(long promptId, int tokens) implements NucleonMessage {}

  private static Config node() {
    return ConfigFactory.parseString("""
        pekko.actor.provider = cluster
        pekko.actor.serializers.kryo = "dev.nucleon.actors.serialization.CountingKryoSerializer"
        pekko.remote.artery.canonical.hostname = 127.0.0.1
        pekko.remote.artery.canonical.port = 0
        pekko.cluster.jmx.multi-mbeans-in-same-jvm = on
        pekko.loglevel = WARNING
        """).withFallback(ConfigFactory.load());
  }

  private ActorTestKit a;
  private ActorTestKit b;

  @AfterEach
  void stop() {
    if (b != null) {
      b.shutdownTestKit();
    }
    if (a != null) {
      a.shutdownTestKit();
    }
  }

  @Test
  void aTrajectoryWithANestedRefCrossesTheNetworkThroughKryo() throws Exception {
    a = ActorTestKit.create("kryo-cluster", node());
    b = ActorTestKit.create("kryo-cluster", node());
    Cluster clusterA = Cluster.get(a.system());
    Cluster clusterB = Cluster.get(b.system());
    clusterA.manager().tell(Join.create(clusterA.selfMember().address()));
    clusterB.manager().tell(Join.create(clusterA.selfMember().address()));
    awaitUp(clusterA, 2);
    awaitUp(clusterB, 2);
    assertNotEquals(clusterA.selfMember().address(), clusterB.selfMember().address());

    // on A: an actor that hands what it got to a local probe and acknowledges to the ref inside the message
    TestProbe<Rollout> arrived = a.createTestProbe();
    Behavior<Rollout> scorer = Behaviors.receiveMessage(m -> {
      arrived.ref().tell(m);
      m.replyTo().tell(new Ack(m.trajectory().promptId(), m.trajectory().totalTokens()));
      return Behaviors.same();
    });
    ActorRef<Rollout> onA = a.spawn(scorer, "scorer");

    // on B: the same actor, known by its serialized path only (as a remote node knows it)
    String path = ActorRefResolver.get(a.system()).toSerializationFormat(onA);
    ActorRef<Rollout> fromB = ActorRefResolver.get(b.system()).resolveActorRef(path);
    TestProbe<Ack> acks = b.createTestProbe();
    int writesB = CountingKryoSerializer.writes(b.system().classicSystem());
    int readsA = CountingKryoSerializer.reads(a.system().classicSystem());

    Trajectory trajectory = KryoSamples.trajectory();
    Rollout sent = new Rollout(trajectory, new ScoredTrajectory(trajectory, RewardResult.ok(1.0, Map.of("correct", 1.0))),
        List.of(4, 5), Map.of("worker", "b-0"), acks.ref());
    fromB.tell(sent);

    Rollout got = arrived.expectMessageClass(Rollout.class, Duration.ofSeconds(15));
    DeepEquals.assertDeepEquals(sent.trajectory(), got.trajectory());
    DeepEquals.assertDeepEquals(sent.previous(), got.previous());
    assertEquals(sent.versions(), got.versions());
    assertEquals(sent.tags(), got.tags());
    assertEquals(clusterB.selfMember().address(), got.replyTo().path().address(), "the ref points back at node B");
    assertEquals(acks.ref().path().toStringWithAddress(clusterB.selfMember().address()),
        got.replyTo().path().toString(), "the ref names B's probe");

    Ack ack = acks.expectMessageClass(Ack.class, Duration.ofSeconds(15));
    assertEquals(new Ack(trajectory.promptId(), trajectory.totalTokens()), ack);

    assertTrue(CountingKryoSerializer.writes(b.system().classicSystem()) > writesB, "B wrote the message with Kryo into Artery's buffer");
    assertTrue(CountingKryoSerializer.reads(a.system().classicSystem()) > readsA, "A read it with Kryo from Artery's buffer");
    assertTrue(CountingKryoSerializer.writes(a.system().classicSystem()) > 0, "A wrote the Ack with Kryo");
  }

  private static void awaitUp(Cluster cluster, int members) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      long up = 0;
      for (var m : cluster.state().getMembers()) {
        if (m.status() == MemberStatus.up()) {
          up++;
        }
      }
      if (up >= members) {
        return;
      }
      Thread.sleep(100);
    }
    throw new AssertionError("cluster did not reach " + members + " members Up: " + cluster.state());
  }
}
