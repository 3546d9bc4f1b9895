package dev.nucleon.actors.serialization;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.ByteBufferInput;
import com.esotericsoftware.kryo.io.ByteBufferOutput;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.KryoBufferOverflowException;
import com.esotericsoftware.kryo.io.Output;
import com.esotericsoftware.kryo.util.Pool;
import java.io.NotSerializableException;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.util.List;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.ByteBufferSerializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * The Pekko serializer for every {@link NucleonMessage}: Kryo with the classes of {@link KryoRegistrations},
 * registration required. Bound in reference.conf ({@code pekko.actor.serializers.kryo},
 * {@code serialization-bindings}).
 *
 * <p>It is a {@link ByteBufferSerializer}, so Artery has Kryo write straight into its envelope buffer (no
 * intermediate byte[]); a message larger than the buffer (the frame size) fails with a
 * {@link BufferOverflowException}, which Artery logs as an oversized payload and drops. Local callers of
 * {@code SerializationExtension} get byte arrays as usual.
 *
 * <p>The manifest is the registration list's fingerprint (the class itself is in the bytes, as its Kryo id): a node
 * whose list differs refuses the message with a message saying so.
 *
 * <p>Kryo instances are not thread-safe: each call borrows one from a pool.
 */
public class KryoSerializer extends SerializerWithStringManifest implements ByteBufferSerializer {
  /** The serializer id in Pekko's envelope ("NUCL" in ASCII); must differ from every other serializer's. */
  public static final int IDENTIFIER = 0x4E55434C;

  private static final int OUTPUT_INITIAL_BYTES = 4096;
  /** Pooled outputs that grew beyond this (a big weight chunk) are shrunk again before going back to the pool. */
  private static final int OUTPUT_KEEP_BYTES = 1 << 20;

  private final ExtendedActorSystem system;
  private final List<KryoRegistrations.Entry> registrations;
  private final String fingerprint;
  private final Pool<Kryo> kryos;
  private final Pool<Output> outputs;

  /** Called by Pekko (reflectively) with the system it serves. */
  public KryoSerializer(ExtendedActorSystem system) {
    this(system, KryoRegistrations.entries());
  }

  /** A serializer with a registration list of its own (tests that send classes of their own). */
  protected KryoSerializer(ExtendedActorSystem system, List<KryoRegistrations.Entry> registrations) {
    this.system = system;
    this.registrations = List.copyOf(registrations);
    this.fingerprint = KryoRegistrations.fingerprint(this.registrations);
    KryoRegistrations.newKryo(null, this.registrations); // fail at start, not at the first message, on a bad list
    int capacity = Math.max(8, 2 * Runtime.getRuntime().availableProcessors());
    this.kryos = new Pool<>(true, false, capacity) {
      @Override
      protected Kryo create() {
        // built lazily, on first use: the typed view of the system is then complete
        return KryoRegistrations.newKryo(typedSystem(), KryoSerializer.this.registrations);
      }
    };
    this.outputs = new Pool<>(true, false, capacity) {
      @Override
      protected Output create() {
        return new Output(OUTPUT_INITIAL_BYTES, -1);
      }
    };
  }

  private ActorSystem<?> typedSystem() {
    return system == null ? null : Adapter.toTyped(system);
  }

  @Override
  public int identifier() {
    return IDENTIFIER;
  }

  /** The registration list's fingerprint, the same for every message. */
  @Override
  public String manifest(Object o) {
    return fingerprint;
  }

  /** The fingerprint of this serializer's registration list (its manifest). */
  public String registrationFingerprint() {
    return fingerprint;
  }

  @Override
  public byte[] toBinary(Object o) {
    Kryo kryo = kryos.obtain();
    Output output = outputs.obtain();
    try {
      output.reset();
      kryo.writeClassAndObject(output, o);
      return output.toBytes();
    } catch (RuntimeException e) {
      throw cannotSerialize(o, e);
    } finally {
      if (output.getBuffer().length > OUTPUT_KEEP_BYTES) {
        output.setBuffer(new byte[OUTPUT_INITIAL_BYTES], -1);
      }
      outputs.free(output);
      kryos.free(kryo);
    }
  }

  /** Writes {@code o} from the buffer's position on; never writes past its limit. */
  @Override
  public void toBinary(Object o, ByteBuffer buf) {
    Kryo kryo = kryos.obtain();
    try {
      // maximum = the limit, so Kryo never swaps in a bigger buffer of its own: it throws instead
      ByteBufferOutput output = new ByteBufferOutput(buf, buf.limit());
      kryo.writeClassAndObject(output, o);
    } catch (RuntimeException e) {
      if (isOverflow(e)) {
        throw new FrameOverflowException("a " + o.getClass().getName() + " does not fit in the " + buf.limit()
            + "-byte buffer (the remoting frame size): send it in smaller chunks or raise maximum-frame-size");
      }
      throw cannotSerialize(o, e);
    } finally {
      kryos.free(kryo);
    }
  }

  @Override
  public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
    checkManifest(manifest);
    return read(new Input(bytes), bytes.length);
  }

  /** Reads a message from the buffer's position up to its limit. */
  @Override
  public Object fromBinary(ByteBuffer buf, String manifest) throws NotSerializableException {
    checkManifest(manifest);
    return read(new ByteBufferInput(buf), buf.remaining());
  }

  private Object read(Input input, int size) throws NotSerializableException {
    Kryo kryo = kryos.obtain();
    try {
      return kryo.readClassAndObject(input);
    } catch (RuntimeException e) {
      NotSerializableException ex = new NotSerializableException("Kryo could not read a " + size + "-byte message "
          + "(registration list " + fingerprint + "): " + e.getMessage());
      ex.initCause(e);
      throw ex;
    } finally {
      kryos.free(kryo);
    }
  }

  private void checkManifest(String manifest) throws NotSerializableException {
    if (!fingerprint.equals(manifest)) {
      throw new NotSerializableException("Kryo registration lists differ between nodes: the message was written with "
          + "list [" + manifest + "], this node has [" + fingerprint + "] (" + registrations.size() + " classes, "
          + KryoRegistrations.class.getName() + "). Run the same Nucleon build on every node.");
    }
  }

  private static IllegalArgumentException cannotSerialize(Object o, RuntimeException e) {
    return new IllegalArgumentException("Kryo could not serialize a " + (o == null ? "null" : o.getClass().getName())
        + ": " + e.getMessage(), e);
  }

  private static boolean isOverflow(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof KryoBufferOverflowException || t instanceof BufferOverflowException) {
        return true;
      }
    }
    return false;
  }

  /** A message larger than the buffer Artery gave: Artery recognizes the type and drops the message as oversized. */
  public static final class FrameOverflowException extends BufferOverflowException {
    private static final long serialVersionUID = 1L;
    private final String message;

    FrameOverflowException(String message) {
      this.message = message;
    }

    @Override
    public String getMessage() {
      return message;
    }
  }
}
