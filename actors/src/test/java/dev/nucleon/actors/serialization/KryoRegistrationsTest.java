package dev.nucleon.actors.serialization;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.esotericsoftware.kryo.Kryo;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.Trajectory;
import java.io.NotSerializableException;
import java.io.Serializable;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every registered class round-trips through the real Pekko serialization of a cluster-capable actor system
 * (Artery on 127.0.0.1, so refs carry a remote address), found through the NucleonMessage binding of
 * reference.conf; plus the failure modes: unregistered classes, a different registration list, oversized buffers.
 */
class KryoRegistrationsTest {
  /** A message the registration list does not know. */
  record NotRegistered(int x) implements NucleonMessage {}

  /** Serializable, but not a NucleonMessage: with Java serialization off it has no serializer. */
  record PlainSerializable(int x) implements Serializable {}

  static final Config CLUSTER = ConfigFactory.parseString("""
      pekko.actor.provider = cluster
      pekko.remote.artery.canonical.hostname = 127.0.0.1
      pekko.remote.artery.canonical.port = 0
      pekko.cluster.jmx.multi-mbeans-in-same-jvm = on
      pekko.loglevel = WARNING
      """);

  static ActorTestKit kit;
  static Serialization serialization;
  static KryoSerializer kryo;
  static TestProbe<String> probe;

  @BeforeAll
  static void start() throws NotSerializableException {
    kit = ActorTestKit.create("kryo-test", CLUSTER.withFallback(ConfigFactory.load()));
    serialization = SerializationExtension.get(kit.system().classicSystem());
    // the serializer the NucleonMessage binding of reference.conf selects
    kryo = assertInstanceOf(KryoSerializer.class, serialization.serializerFor(NucleonMessage.class));
    probe = kit.createTestProbe();
  }

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  // ---------------------------------------------------------------- the registration list and its samples

  @Test
  void everyRegisteredClassHasASample() {
    Map<Class<?>, Object> samples = KryoSamples.samples(probe.ref());
    List<String> missing = KryoRegistrations.classes().stream()
        .filter(c -> !samples.containsKey(c)).map(Class::getName).toList();
    assertTrue(missing.isEmpty(), "registered in KryoRegistrations but without a sample in KryoSamples (add one): "
        + missing);
    List<String> stale = samples.keySet().stream()
        .filter(c -> !KryoRegistrations.classes().contains(c)).map(Class::getName).toList();
    assertTrue(stale.isEmpty(), "samples in KryoSamples for classes that are not registered: " + stale);
    for (KryoRegistrations.Entry e : KryoRegistrations.entries()) {
      Object sample = samples.get(e.type());
      boolean exercises = e.family() ? e.type().isInstance(sample) : sample.getClass() == e.type()
          || (e.type().isEnum() && e.type().isInstance(sample));
      assertTrue(exercises, "the sample for " + e.type().getName() + " is a " + sample.getClass().getName()
          + ", so it does not exercise that registration");
    }
  }

  @TestFactory
  Stream<DynamicTest> everySampleRoundTrips() {
    return KryoSamples.samples(probe.ref()).entrySet().stream().map(e -> DynamicTest.dynamicTest(
        e.getKey().getName(), () -> {
          Object sample = e.getValue();
          if (sample instanceof NucleonMessage) {
            assertSame(kryo, serialization.findSerializerFor(sample), "binding of " + e.getKey().getName());
          }
          Object back = roundTripBytes(sample);
          DeepEquals.assertDeepEquals(sample, back);
          assertEquals(sample.getClass(), back.getClass());
          DeepEquals.assertDeepEquals(sample, roundTripBuffer(sample, false));
          DeepEquals.assertDeepEquals(sample, roundTripBuffer(sample, true));
        }));
  }

  @Test
  void idsArePositionsAndAppendingKeepsThem() {
    Kryo k = KryoRegistrations.newKryo(kit.system());
    List<Class<?>> classes = KryoRegistrations.classes();
    for (int i = 0; i < classes.size(); i++) {
      assertEquals(KryoRegistrations.FIRST_ID + i, k.getRegistration(classes.get(i)).getId(), classes.get(i).getName());
    }
    // a concrete ref class resolves to the ActorRef family's id
    assertEquals(KryoRegistrations.FIRST_ID + classes.indexOf(ActorRef.class),
        k.getRegistration(probe.ref().getClass()).getId());

    List<KryoRegistrations.Entry> longer = KryoRegistrations.withExtra(NotRegistered.class);
    Kryo k2 = KryoRegistrations.newKryo(kit.system(), longer);
    for (int i = 0; i < classes.size(); i++) {
      assertEquals(k.getRegistration(classes.get(i)).getId(), k2.getRegistration(classes.get(i)).getId());
    }
    assertEquals(KryoRegistrations.FIRST_ID + classes.size(), k2.getRegistration(NotRegistered.class).getId());
    assertNotEquals(KryoRegistrations.fingerprint(KryoRegistrations.entries()), KryoRegistrations.fingerprint(longer));
    assertEquals(KryoRegistrations.fingerprint(KryoRegistrations.entries()), kryo.registrationFingerprint());
  }

  @Test
  void aClassListedTwiceIsRefused() {
    List<KryoRegistrations.Entry> twice = KryoRegistrations.withExtra(Trajectory.class);
    IllegalStateException ex = assertThrows(IllegalStateException.class, () -> KryoRegistrations.newKryo(null, twice));
    assertTrue(ex.getMessage().contains(Trajectory.class.getName()), ex.getMessage());
  }

  // ---------------------------------------------------------------- failures are loud and named

  @Test
  void anUnregisteredMessageFailsNamingTheClass() {
    Throwable failure = serialization.serialize(new NotRegistered(1)).failed().get();
    String message = failure.getMessage();
    assertTrue(message.contains(NotRegistered.class.getName()), message);
    assertTrue(message.contains("KryoRegistrations"), message);
  }

  @Test
  @SuppressWarnings({"unchecked", "rawtypes"})
  void anUnregisteredClassNestedInARegisteredRecordFailsNamingTheClass() {
    Map metadata = Map.of("key", new NotRegistered(2));
    PromptGroup group = new PromptGroup(1L, 0, "p", "a", metadata, 2, 3L);
    IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> kryo.toBinary(group));
    assertTrue(ex.getMessage().contains(NotRegistered.class.getName()), ex.getMessage());
    assertTrue(ex.getMessage().contains("KryoRegistrations"), ex.getMessage());
    ByteBuffer buf = ByteBuffer.allocate(1024);
    IllegalArgumentException ex2 = assertThrows(IllegalArgumentException.class, () -> kryo.toBinary(group, buf));
    assertTrue(ex2.getMessage().contains(NotRegistered.class.getName()), ex2.getMessage());
  }

  @Test
  void javaSerializationIsOff() {
    assertFalse(kit.system().settings().config().getBoolean("pekko.actor.allow-java-serialization"));
    assertTrue(serialization.serialize(new PlainSerializable(1)).isFailure(),
        "a Serializable class without a binding must not fall back to Java serialization");
  }

  @Test
  void aDifferentRegistrationListIsRefused() {
    byte[] bytes = kryo.toBinary(KryoSamples.trajectory());
    NotSerializableException ex = assertThrows(NotSerializableException.class,
        () -> kryo.fromBinary(bytes, "0123456789ab"));
    assertTrue(ex.getMessage().contains("registration lists differ"), ex.getMessage());
    assertTrue(serialization.deserialize(bytes, KryoSerializer.IDENTIFIER, "0123456789ab").isFailure());
  }

  @Test
  void garbageIsRefusedWithAClearError() {
    NotSerializableException ex = assertThrows(NotSerializableException.class,
        () -> kryo.fromBinary(new byte[] {(byte) 0xff, (byte) 0xff, 0x7f}, kryo.registrationFingerprint()));
    assertTrue(ex.getMessage().contains("Kryo could not read"), ex.getMessage());
  }

  @Test
  void aMessageLargerThanTheBufferIsABufferOverflow() {
    ByteBuffer buf = ByteBuffer.allocateDirect(1024);
    buf.position(100); // Artery's header comes first
    BufferOverflowException ex = assertThrows(BufferOverflowException.class,
        () -> kryo.toBinary(new byte[4096], buf));
    assertTrue(ex.getMessage().contains("1024"), ex.getMessage());
    // one that just fits goes through
    ByteBuffer fits = ByteBuffer.allocate(1024);
    kryo.toBinary(new byte[900], fits);
    assertTrue(fits.position() > 900);
  }

  // ---------------------------------------------------------------- actor refs

  @Test
  void anActorRefResolvesToTheSameActorWithARemoteCapableAddress() {
    TestProbe<String> target = kit.createTestProbe();
    String format = ActorRefResolver.get(kit.system()).toSerializationFormat(target.ref());
    assertTrue(format.contains("@127.0.0.1:"), format);

    @SuppressWarnings("unchecked")
    ActorRef<String> back = (ActorRef<String>) roundTripBytes(target.ref());
    assertEquals(target.ref(), back);
    assertEquals(target.ref().path(), back.path());
    back.tell("hello");
    target.expectMessage("hello");

    // nested in collections, through the ByteBuffer path
    @SuppressWarnings("unchecked")
    List<Object> list = (List<Object>) roundTripBuffer(new ArrayList<>(List.of(target.ref(), Optional.of(target.ref()))),
        true);
    assertEquals(target.ref(), list.get(0));
    assertEquals(Optional.of(target.ref()), list.get(1));
  }

  // ---------------------------------------------------------------- collections and big payloads

  @Test
  void immutableCollectionsComeBackImmutableWithTheSameContents() {
    List<Object> withNull = Stream.<Object>of("a", null, "c").toList();
    Map<String, Integer> big = IntStream.range(0, 50).boxed().collect(Collectors.toMap(i -> "k" + i, i -> i));
    LinkedHashMap<String, Double> ordered = new LinkedHashMap<>();
    ordered.put("z", 1.0);
    ordered.put("a", 2.0);
    ordered.put("m", 3.0);
    List<Object> values = List.of(List.of(), List.of(1), List.of(1, 2), List.of(1, 2, 3, 4, 5),
        List.copyOf(new ArrayList<>(List.of("x", "y"))), Set.of(), Set.of(1), Set.of(1, 2, 3), Map.of(),
        Map.of("a", 1), Map.of("a", 1, "b", 2, "c", 3), Map.copyOf(big));
    for (Object v : values) {
      Object back = roundTripBytes(v);
      assertEquals(v, back);
      assertEquals(v.getClass(), back.getClass());
      assertImmutable(back);
    }
    @SuppressWarnings("unchecked")
    List<Object> nullBack = (List<Object>) roundTripBytes(withNull);
    assertEquals(withNull, nullBack);
    assertImmutable(nullBack);

    @SuppressWarnings("unchecked")
    Map<String, Double> orderedBack = (Map<String, Double>) roundTripBytes(Collections.unmodifiableMap(ordered));
    assertEquals(List.of("z", "a", "m"), new ArrayList<>(orderedBack.keySet()));
    assertImmutable(orderedBack);
  }

  private static void assertImmutable(Object collection) {
    if (collection instanceof List<?> l) {
      assertThrows(UnsupportedOperationException.class, () -> ((List<Object>) l).add("more"));
    } else if (collection instanceof Set<?> s) {
      assertThrows(UnsupportedOperationException.class, () -> ((Set<Object>) s).add("more"));
    } else if (collection instanceof Map<?, ?> m) {
      assertThrows(UnsupportedOperationException.class, () -> ((Map<Object, Object>) m).put("more", 1));
    } else {
      fail("not a collection: " + collection);
    }
  }

  @Test
  void a16MiBByteArrayRoundTrips() {
    byte[] chunk = new byte[16 << 20];
    new java.util.Random(7).nextBytes(chunk);
    byte[] back = (byte[]) roundTripBytes(chunk);
    assertTrue(java.util.Arrays.equals(chunk, back));
    byte[] viaBuffer = (byte[]) roundTripBuffer(chunk, true);
    assertTrue(java.util.Arrays.equals(chunk, viaBuffer));
    // the pool gave its grown output buffer back at normal size: a small message still works after it
    DeepEquals.assertDeepEquals(KryoSamples.trajectory(), roundTripBytes(KryoSamples.trajectory()));
  }

  @Test
  void bigFloatArraysCrossBetweenTheByteArrayAndByteBufferPaths() throws NotSerializableException {
    int n = 5000;
    int[] tokens = new int[n];
    float[] logProbs = new float[n];
    int[] versions = new int[n];
    java.util.Random random = new java.util.Random(3);
    for (int i = 0; i < n; i++) {
      tokens[i] = random.nextInt(50_000);
      logProbs[i] = (float) -random.nextDouble() * 10;
      versions[i] = i / 1000;
    }
    logProbs[7] = Float.NaN;
    logProbs[8] = Float.NEGATIVE_INFINITY;
    logProbs[9] = -0.0f;
    Trajectory t = new Trajectory(1L, 0, new int[] {1, 2}, tokens, logProbs, versions,
        dev.nucleon.core.rollout.FinishReason.LENGTH, "long");
    // written into a buffer, read from a byte[]
    ByteBuffer buf = ByteBuffer.allocateDirect(64 * n);
    kryo.toBinary(t, buf);
    byte[] bytes = new byte[buf.position()];
    buf.flip();
    buf.get(bytes);
    DeepEquals.assertDeepEquals(t, kryo.fromBinary(bytes, kryo.registrationFingerprint()));
    // written into a byte[], read from a buffer
    byte[] fromArrayPath = kryo.toBinary(t);
    assertTrue(java.util.Arrays.equals(bytes, fromArrayPath));
    DeepEquals.assertDeepEquals(t, kryo.fromBinary(ByteBuffer.wrap(fromArrayPath), kryo.registrationFingerprint()));
    // a float[] that does not fit is an overflow, not a write past the limit
    ByteBuffer small = ByteBuffer.allocate(1000);
    assertThrows(BufferOverflowException.class, () -> kryo.toBinary(logProbs, small));
    assertTrue(small.position() <= small.limit());
  }

  @Test
  void concurrentUseFromManyThreads() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Callable<Void>> tasks = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        final int thread = t;
        tasks.add(() -> {
          for (int i = 0; i < 300; i++) {
            Map<String, Object> m = new HashMap<>();
            m.put("thread", thread);
            m.put("i", i);
            m.put("trajectory", KryoSamples.trajectory());
            Object back = (i % 2 == 0) ? roundTripBytes(m) : roundTripBuffer(m, false);
            DeepEquals.assertDeepEquals(m, back);
          }
          return null;
        });
      }
      for (Future<Void> f : pool.invokeAll(tasks)) {
        f.get();
      }
    } finally {
      pool.shutdownNow();
    }
  }

  // ---------------------------------------------------------------- helpers

  /** Through the byte[] path, deserialized by Pekko from serializer id and manifest (as a receiving node does). */
  static Object roundTripBytes(Object value) {
    byte[] bytes = kryo.toBinary(value);
    String manifest = Serializers.manifestFor(kryo, value);
    assertEquals(kryo.registrationFingerprint(), manifest);
    return serialization.deserialize(bytes, kryo.identifier(), manifest).get();
  }

  /**
   * Through the ByteBuffer path Artery uses: written after a header into a (direct or heap) buffer, read back by
   * Pekko from the position after the header.
   */
  static Object roundTripBuffer(Object value, boolean direct) {
    byte[] bytes = kryo.toBinary(value);
    int size = bytes.length;
    ByteBuffer buf = direct ? ByteBuffer.allocateDirect(size + 64) : ByteBuffer.allocate(size + 64);
    buf.position(17);
    kryo.toBinary(value, buf);
    assertEquals(17 + size, buf.position(), "bytes written into the buffer");
    byte[] written = new byte[size];
    buf.duplicate().position(17).get(written);
    // the same bytes either way, so one node may write with one path and another read with the other
    assertTrue(java.util.Arrays.equals(bytes, written), "the ByteBuffer path writes the byte[] path's bytes");
    buf.flip();
    buf.position(17);
    Serializer found = serialization.serializerByIdentity().apply(KryoSerializer.IDENTIFIER);
    assertSame(kryo, found);
    try {
      return serialization.deserializeByteBuffer(buf, KryoSerializer.IDENTIFIER, Serializers.manifestFor(kryo, value));
    } catch (NotSerializableException ex) {
      throw new AssertionError(ex);
    }
  }
}
