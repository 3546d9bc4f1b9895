package dev.nucleon.actors.serialization;

import java.io.NotSerializableException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.ExtendedActorSystem;

/**
 * The Kryo serializer with the test messages of {@link TwoNodeKryoTest} appended to the registration list, counting
 * the ByteBuffer writes and reads (Artery's path) per actor system (keyed by the classic system object), so a test can prove that a message crossed the
 * network through Kryo. Selected with {@code pekko.actor.serializers.kryo = <this class>}.
 */
public class CountingKryoSerializer extends KryoSerializer {
  static final Map<Object, AtomicInteger> BUFFER_WRITES = new ConcurrentHashMap<>();
  static final Map<Object, AtomicInteger> BUFFER_READS = new ConcurrentHashMap<>();

  private final ExtendedActorSystem system;

  public CountingKryoSerializer(ExtendedActorSystem system) {
    super(system, KryoRegistrations.withExtra(TwoNodeKryoTest.Rollout.class, TwoNodeKryoTest.Ack.class));
    this.system = system;
  }

  @Override
  public void toBinary(Object o, ByteBuffer buf) {
    super.toBinary(o, buf);
    BUFFER_WRITES.computeIfAbsent(system, k -> new AtomicInteger()).incrementAndGet();
  }

  @Override
  public Object fromBinary(ByteBuffer buf, String manifest) throws NotSerializableException {
    Object o = super.fromBinary(buf, manifest);
    BUFFER_READS.computeIfAbsent(system, k -> new AtomicInteger()).incrementAndGet();
    return o;
  }

  static int writes(org.apache.pekko.actor.ActorSystem system) {
    return BUFFER_WRITES.getOrDefault(system, new AtomicInteger()).get();
  }

  static int reads(org.apache.pekko.actor.ActorSystem system) {
    return BUFFER_READS.getOrDefault(system, new AtomicInteger()).get();
  }
}
