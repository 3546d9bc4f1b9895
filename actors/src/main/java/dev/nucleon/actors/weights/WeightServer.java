package dev.nucleon.actors.weights;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.stream.ActorAttributes;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.stream.javadsl.Tcp;
import org.apache.pekko.util.ByteString;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves the newest policy version on a TCP port of its own (Pekko Streams TCP, outside Artery, so control messages
 * never queue behind weights). A receiver connects and is sent the version published at that moment, streamed with
 * back-pressure from the tensors as they are (no copy of the whole version is made), then the connection closes. A
 * receiver that goes away mid-transfer only ends its own connection. Encoding and checksums run on the
 * {@code nucleon.weights-dispatcher}, not on the actors' dispatcher.
 */
public final class WeightServer implements AutoCloseable {

  /** The dispatcher that packs, hashes and unpacks weights. */
  public static final String DISPATCHER = "nucleon.weights-dispatcher";

  private static final Logger LOG = LoggerFactory.getLogger(WeightServer.class);

  /** A connection whose receiver takes nothing for this long is closed. */
  static final java.time.Duration IDLE = java.time.Duration.ofSeconds(60);

  /** What a connection is sent. */
  public record Version(int version, List<? extends TensorSource> tensors, boolean bf16, long wireBytes) {}

  private final Tcp.ServerBinding binding;
  private final State state;

  /** What every connection reads: the version to send and how. */
  private static final class State {
    private final int chunkBytes;
    private final Flow<ByteString, ByteString, ?> outbound;
    private final int deltaEvery;
    private volatile Version current;
    private volatile Version previous;
    private Map<String, short[]> previousBits; // computed on the first delta request, guarded by this

    State(int chunkBytes, Flow<ByteString, ByteString, ?> outbound, int deltaEvery) {
      this.chunkBytes = chunkBytes;
      this.outbound = outbound;
      this.deltaEvery = deltaEvery;
    }

    synchronized void publish(Version v) {
      previous = current;
      previousBits = null;
      current = v;
    }

    /** The bfloat16 bits of {@code prev}, once (on the weights dispatcher, not the publisher's thread). */
    private synchronized Map<String, short[]> bitsOf(Version prev) {
      if (previous != prev) {
        return null; // replaced meanwhile
      }
      if (previousBits == null) {
        previousBits = WeightStream.bf16Bits(prev.tensors());
      }
      return previousBits;
    }

    /** The bytes for a receiver that holds version {@code base}: a delta against it where one is allowed. */
    Source<ByteString, ?> response(int base) {
      Version v = current;
      if (v == null) {
        return Source.empty();
      }
      Version prev = previous;
      boolean delta = deltaEvery > 0 && v.bf16() && prev != null && prev.bf16() && base == prev.version()
          && v.version() % deltaEvery != 0;
      return Source.fromIterator(() -> {
            Map<String, short[]> bits = delta ? bitsOf(prev) : null;
            return bits != null ? WeightStream.encodeDelta(v.version(), v.tensors(), chunkBytes, base, bits)
                : WeightStream.encode(v.version(), v.tensors(), v.bf16(), chunkBytes);
          })
          .withAttributes(ActorAttributes.dispatcher(DISPATCHER))
          .async()
          .via(outbound);
    }

    Flow<ByteString, ByteString, ?> handler() {
      // the receiver sends its request and half-closes; the answer is the newest version, whole or as a delta
      return Flow.<ByteString>create()
          .fold(ByteString.emptyByteString(), ByteString::concat)
          .flatMapConcat(request -> response(WeightStream.requestedBase(request)))
          // a receiver that stops reading without closing (a frozen host) releases the version after this
          .idleTimeout(IDLE);
    }
  }

  private WeightServer(Tcp.ServerBinding binding, State state) {
    this.binding = binding;
    this.state = state;
  }

  /**
   * Binds {@code host} on {@code port} (0: any free port).
   *
   * @param chunkBytes bytes per stream element
   */
  public static WeightServer start(ClassicActorSystemProvider system, String host, int port, int chunkBytes) {
    return start(system, host, port, chunkBytes, 0, Flow.create());
  }

  /**
   * As {@link #start}; with {@code deltaEvery} > 0, a receiver that holds the version before the newest gets only
   * what changed in bfloat16 (a whole version every {@code deltaEvery} versions, and to anyone else); every
   * outgoing stream passes through {@code outbound} (tests corrupt bytes here).
   */
  public static WeightServer start(ClassicActorSystemProvider system, String host, int port, int chunkBytes,
      int deltaEvery, Flow<ByteString, ByteString, ?> outbound) {
    Materializer mat = Materializer.matFromSystem(system);
    State state = new State(chunkBytes, outbound, deltaEvery);
    // half-close: the receiver ends its side after its request, and this side still sends the version
    CompletionStage<Tcp.ServerBinding> bound = Tcp.get(system).bind(host, port, 100, List.of(), true,
            java.util.Optional.empty())
        .to(Sink.foreach(connection -> connection.handleWith(state.handler(), mat)))
        .run(mat);
    Tcp.ServerBinding binding;
    try {
      binding = bound.toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("cannot bind the weight server on " + host + ":" + port + ": " + e, e);
    }
    LOG.info("weight server listening on {}", binding.localAddress());
    return new WeightServer(binding, state);
  }

  public String host() {
    return binding.localAddress().getHostString();
  }

  public int port() {
    return binding.localAddress().getPort();
  }

  /** Makes {@code v} the version new connections are sent. */
  public void publish(Version v) {
    state.publish(v);
  }

  /** The version new connections are sent, or null before the first. */
  public Version current() {
    return state.current;
  }

  @Override
  public void close() {
    try {
      binding.unbind().toCompletableFuture().get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      LOG.warn("weight server unbind: {}", e.toString());
    }
  }
}
