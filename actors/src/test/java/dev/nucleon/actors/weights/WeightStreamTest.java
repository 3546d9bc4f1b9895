package dev.nucleon.actors.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.model.io.HostTensor;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The weight stream's format, and its transport between a server and fetchers over TCP on 127.0.0.1. */
class WeightStreamTest {

  private static ActorSystem<Void> system;

  @BeforeAll
  static void start() {
    system = ActorSystem.create(Behaviors.empty(), "weights");
  }

  @AfterAll
  static void stop() {
    system.terminate();
  }

  static Map<String, HostTensor> tensors(long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    Map<String, HostTensor> m = new LinkedHashMap<>();
    long[][] shapes = {{37, 11}, {5}, {3, 4, 5}, {1000}, {0}};
    for (int i = 0; i < shapes.length; i++) {
      float[] d = new float[(int) HostTensor.numel(shapes[i])];
      for (int j = 0; j < d.length; j++) {
        d[j] = (float) rng.nextGaussian();
      }
      m.put("layer." + i + ".weight", new HostTensor("layer." + i + ".weight", shapes[i], d));
    }
    return m;
  }

  static List<TensorSource> sources(Map<String, HostTensor> m) {
    return m.values().stream().map(TensorSource::of).toList();
  }

  /** Feeds the encoded bytes to a decoder in pieces of random sizes (as TCP delivers them). */
  static WeightStream.Received roundTrip(Map<String, HostTensor> m, boolean bf16, int chunk, long seed) {
    List<ByteString> all = new ArrayList<>();
    Iterator<ByteString> it = WeightStream.encode(9, sources(m), bf16, chunk);
    it.forEachRemaining(all::add);
    ByteString bytes = all.stream().reduce(ByteString.emptyByteString(), ByteString::concat);
    assertEquals(WeightStream.wireBytes(sources(m), bf16), bytes.length(), "wireBytes");
    WeightStream.Collect sink = new WeightStream.Collect();
    WeightStream.Decoder d = new WeightStream.Decoder(sink, bytes.length());
    SplittableRandom rng = new SplittableRandom(seed);
    int at = 0;
    while (at < bytes.length()) {
      int n = Math.min(bytes.length() - at, 1 + rng.nextInt(97));
      d.feed(bytes.slice(at, at + n));
      at += n;
    }
    d.finish();
    return new WeightStream.Received(d.version(), d.bf16(), sink.tensors(), d.bytes());
  }

  @Test
  void versionsRoundTripInFloat32AndRoundToNearestEvenInBfloat16() {
    Map<String, HostTensor> m = tensors(1);
    WeightStream.Received f32 = roundTrip(m, false, 64, 2);
    assertEquals(9, f32.version());
    assertEquals(m.keySet(), f32.tensors().keySet());
    for (var e : m.entrySet()) {
      assertArrayEquals(e.getValue().data(), f32.tensors().get(e.getKey()).data(), e.getKey());
      assertArrayEquals(e.getValue().shape(), f32.tensors().get(e.getKey()).shape(), e.getKey());
    }
    WeightStream.Received bf16 = roundTrip(m, true, 30, 3);
    assertTrue(bf16.bf16());
    for (var e : m.entrySet()) {
      float[] want = e.getValue().data();
      float[] got = bf16.tensors().get(e.getKey()).data();
      for (int i = 0; i < want.length; i++) {
        int bits = Float.floatToRawIntBits(want[i]);
        float rounded = Float.intBitsToFloat((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000);
        assertEquals(rounded, got[i], e.getKey() + "[" + i + "]");
      }
    }
  }

  @Test
  void corruptTruncatedAndOversizedStreamsAreRefusedNamingTheTensor() {
    Map<String, HostTensor> m = tensors(4);
    List<ByteString> parts = new ArrayList<>();
    WeightStream.encode(3, sources(m), false, 256).forEachRemaining(parts::add);
    ByteString bytes = parts.stream().reduce(ByteString.emptyByteString(), ByteString::concat);
    byte[] corrupt = bytes.toArray();
    corrupt[corrupt.length / 2] ^= 0x10;
    var e = assertThrows(WeightStream.WeightStreamException.class, () -> {
      WeightStream.Decoder d = new WeightStream.Decoder(new WeightStream.Collect(), corrupt.length);
      d.feed(ByteString.fromArray(corrupt));
      d.finish();
    });
    assertTrue(e.getMessage().contains("checksum") && e.getMessage().contains("layer."), e.getMessage());

    WeightStream.Decoder cut = new WeightStream.Decoder(new WeightStream.Collect(), bytes.length());
    cut.feed(bytes.take(bytes.length() - 100));
    e = assertThrows(WeightStream.WeightStreamException.class, cut::finish);
    assertTrue(e.getMessage().contains("ended after"), e.getMessage());

    WeightStream.Decoder small = new WeightStream.Decoder(new WeightStream.Collect(), bytes.length() - 1);
    e = assertThrows(WeightStream.WeightStreamException.class, () -> small.feed(bytes));
    assertTrue(e.getMessage().contains("announced"), e.getMessage());

    e = assertThrows(WeightStream.WeightStreamException.class,
        () -> new WeightStream.Decoder(new WeightStream.Collect(), 100).feed(ByteString.fromString("GET / HTTP/1.1\r\nHost: x\r\n")));
    assertTrue(e.getMessage().contains("not a weight stream"), e.getMessage());
  }

  @Test
  void aFetcherGetsTheNewestVersionAndACorruptTransferFailsThenSucceedsOnRetry() throws Exception {
    AtomicInteger connections = new AtomicInteger();
    // the first connection has one byte flipped in flight; later ones are clean
    WeightServer server = WeightServer.start(system, "127.0.0.1", 0, 1024, 0,
        CorruptingFlow.onConnection(1, 3000, connections));
    try {
      Map<String, HostTensor> v1 = tensors(5);
      Map<String, HostTensor> v2 = tensors(6);
      long size = WeightStream.wireBytes(sources(v2), false);
      server.publish(new WeightServer.Version(1, sources(v1), false, size));
      server.publish(new WeightServer.Version(2, sources(v2), false, size));
      var failed = assertThrows(ExecutionException.class, () -> WeightFetcher.fetchTensors(system, "127.0.0.1",
          server.port(), size, Duration.ofSeconds(5)).toCompletableFuture().get(20, TimeUnit.SECONDS));
      assertTrue(failed.getCause().getMessage().contains("checksum"), failed.getCause().toString());
      WeightStream.Received got = WeightFetcher.fetchTensors(system, "127.0.0.1", server.port(), size,
          Duration.ofSeconds(5)).toCompletableFuture().get(20, TimeUnit.SECONDS);
      assertEquals(2, got.version(), "a new connection is sent the newest version");
      for (var e : v2.entrySet()) {
        assertArrayEquals(e.getValue().data(), got.tensors().get(e.getKey()).data(), e.getKey());
      }
    } finally {
      server.close();
    }
  }

  /**
   * A receiver that goes away in the middle of a version costs the server only that connection: a receiver that
   * connects later, after a newer version was published, is sent the newest one whole.
   */
  @Test
  void aReceiverLeavingMidTransferLeavesTheServerServingTheNewest() throws Exception {
    WeightServer server = WeightServer.start(system, "127.0.0.1", 0, 512);
    try {
      // 16 MB: far more than the socket buffers hold, so the server is still sending when the receiver goes away
      float[] big = new float[4_000_000];
      java.util.Arrays.fill(big, 0.5f);
      Map<String, HostTensor> v1 = new LinkedHashMap<>(tensors(7));
      v1.put("big", new HostTensor("big", new long[] {4_000_000}, big));
      long size = WeightStream.wireBytes(sources(v1), false);
      server.publish(new WeightServer.Version(1, sources(v1), false, size));
      WeightStream.Collect kept = new WeightStream.Collect();
      WeightStream.TensorSink leaves = new WeightStream.TensorSink() {
        private int seen;

        @Override
        public void begin(String name, long[] shape) {
          kept.begin(name, shape);
        }

        @Override
        public void values(java.nio.FloatBuffer values) {
          if (++seen > 3) {
            throw new IllegalStateException("receiver killed");
          }
          kept.values(values);
        }

        @Override
        public void end() {
          kept.end();
        }
      };
      var left = assertThrows(ExecutionException.class, () -> WeightFetcher.fetch(system, "127.0.0.1",
          server.port(), leaves, size, Duration.ofSeconds(5), -1).toCompletableFuture().get(20, TimeUnit.SECONDS));
      assertTrue(left.getCause().getMessage().contains("receiver killed"), left.getCause().toString());
      Map<String, HostTensor> v3 = tensors(8);
      server.publish(new WeightServer.Version(3, sources(v3), true, WeightStream.wireBytes(sources(v3), true)));
      WeightStream.Received late = WeightFetcher.fetchTensors(system, "127.0.0.1", server.port(), size,
          Duration.ofSeconds(5)).toCompletableFuture().get(20, TimeUnit.SECONDS);
      assertEquals(3, late.version());
      assertTrue(late.bf16());
      assertEquals(v3.keySet(), late.tensors().keySet());
      for (var e : v3.entrySet()) {
        float[] want = e.getValue().data();
        float[] got = late.tensors().get(e.getKey()).data();
        for (int i = 0; i < want.length; i++) {
          int bits = Float.floatToRawIntBits(want[i]);
          assertEquals(Float.intBitsToFloat((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000), got[i]);
        }
      }
    } finally {
      server.close();
    }
  }

  /** v1 as a bf16 receiver holds it: every value rounded to bfloat16. */
  static Map<String, float[]> heldAsBf16(Map<String, HostTensor> m) {
    Map<String, float[]> out = new java.util.concurrent.ConcurrentHashMap<>();
    for (HostTensor t : m.values()) {
      float[] d = new float[t.data().length];
      for (int i = 0; i < d.length; i++) {
        int bits = Float.floatToRawIntBits(t.data()[i]);
        d[i] = Float.intBitsToFloat((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000);
      }
      out.put(t.name(), d);
    }
    return out;
  }

  /** v2: v1 with a few elements of every tensor moved (as a small learning rate moves bfloat16 weights). */
  static Map<String, HostTensor> nudged(Map<String, HostTensor> v1) {
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (HostTensor t : v1.values()) {
      float[] d = t.data().clone();
      for (int i = 0; i < d.length; i += 97) {
        d[i] += 0.5f;
      }
      out.put(t.name(), new HostTensor(t.name(), t.shape(), d));
    }
    return out;
  }

  /**
   * A delta carries only the bfloat16 elements that changed; applied to the receiver's copy of the base version it
   * rebuilds the new version exactly, and a receiver whose base differs fails the rebuilt tensor's checksum.
   */
  @Test
  void aDeltaRebuildsTheNewVersionFromTheBaseAndRefusesAWrongBase() {
    Map<String, HostTensor> v1 = tensors(11);
    float[] big = new float[50_000];
    for (int i = 0; i < big.length; i++) {
      big[i] = (float) Math.sin(i);
    }
    v1.put("big", new HostTensor("big", new long[] {50_000}, big));
    Map<String, HostTensor> v2 = nudged(v1);
    Map<String, short[]> baseBits = WeightStream.bf16Bits(sources(v1));
    List<ByteString> parts = new ArrayList<>();
    WeightStream.encodeDelta(2, sources(v2), 4096, 1, baseBits).forEachRemaining(parts::add);
    ByteString bytes = parts.stream().reduce(ByteString.emptyByteString(), ByteString::concat);
    long dense = WeightStream.wireBytes(sources(v2), true);
    assertTrue(bytes.length() < dense / 3, "a delta of ~1% of the elements takes " + bytes.length() + " bytes, "
        + "the whole version " + dense);
    assertTrue(bytes.length() <= WeightStream.maxWireBytes(sources(v2), true));

    WeightStream.Collect sink = new WeightStream.Collect(heldAsBf16(v1));
    WeightStream.Decoder d = new WeightStream.Decoder(sink, WeightStream.maxWireBytes(sources(v2), true));
    SplittableRandom rng = new SplittableRandom(12);
    for (int at = 0; at < bytes.length(); ) {
      int n = Math.min(bytes.length() - at, 1 + rng.nextInt(3000));
      d.feed(bytes.slice(at, at + n));
      at += n;
    }
    d.finish();
    assertEquals(1, d.base());
    Map<String, float[]> want = heldAsBf16(v2);
    for (var e : want.entrySet()) {
      assertArrayEquals(e.getValue(), sink.tensors().get(e.getKey()).data(), e.getKey());
    }

    Map<String, float[]> wrong = heldAsBf16(v1);
    wrong.get("big")[7] += 1f;
    var e = assertThrows(WeightStream.WeightStreamException.class, () -> {
      WeightStream.Decoder bad = new WeightStream.Decoder(new WeightStream.Collect(wrong), bytes.length());
      bad.feed(bytes);
      bad.finish();
    });
    assertTrue(e.getMessage().contains("'big'") && e.getMessage().contains("base differs"), e.getMessage());
    e = assertThrows(WeightStream.WeightStreamException.class,
        () -> new WeightStream.Decoder(new WeightStream.Collect(), bytes.length()).feed(bytes));
    assertTrue(e.getMessage().contains("does not hold"), e.getMessage());
  }

  /**
   * A server with deltas on sends a receiver that names the previous version only what changed, a receiver that
   * names nothing (or an older version) the whole version, and every few versions the whole version to all.
   */
  @Test
  void aServerSendsDeltasToReceiversThatHoldThePreviousVersion() throws Exception {
    WeightServer server = WeightServer.start(system, "127.0.0.1", 0, 4096, 3, Flow.create());
    try {
      Map<String, HostTensor> v1 = tensors(13);
      float[] big = new float[40_000];
      java.util.Arrays.fill(big, 0.25f);
      v1.put("big", new HostTensor("big", new long[] {40_000}, big));
      Map<String, HostTensor> v2 = nudged(v1);
      long max = WeightStream.maxWireBytes(sources(v1), true);
      server.publish(new WeightServer.Version(1, sources(v1), true, max));
      server.publish(new WeightServer.Version(2, sources(v2), true, max));
      WeightStream.Collect withBase = new WeightStream.Collect(heldAsBf16(v1));
      WeightStream.Decoder d = WeightFetcher.fetch(system, "127.0.0.1", server.port(), withBase, max,
          Duration.ofSeconds(5), 1).toCompletableFuture().get(20, TimeUnit.SECONDS);
      assertEquals(1, d.base(), "a delta against version 1");
      assertTrue(d.bytes() < WeightStream.wireBytes(sources(v2), true) / 2, "delta bytes " + d.bytes());
      Map<String, float[]> want = heldAsBf16(v2);
      for (var e : want.entrySet()) {
        assertArrayEquals(e.getValue(), withBase.tensors().get(e.getKey()).data(), e.getKey());
      }
      WeightStream.Decoder whole = WeightFetcher.fetch(system, "127.0.0.1", server.port(), new WeightStream.Collect(),
          max, Duration.ofSeconds(5), -1).toCompletableFuture().get(20, TimeUnit.SECONDS);
      assertEquals(-1, whole.base(), "a receiver without a base gets the whole version");
      server.publish(new WeightServer.Version(3, sources(nudged(v2)), true, max));
      WeightStream.Decoder third = WeightFetcher.fetch(system, "127.0.0.1", server.port(),
          new WeightStream.Collect(heldAsBf16(v2)), max, Duration.ofSeconds(5), 2).toCompletableFuture()
          .get(20, TimeUnit.SECONDS);
      assertEquals(-1, third.base(), "version 3 is a whole one (every 3rd)");
    } finally {
      server.close();
    }
  }
}
