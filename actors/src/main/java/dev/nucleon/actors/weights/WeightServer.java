package dev.nucleon.actors.weights;

import java.util.List;
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
    private volatile Version current;

    State(int chunkBytes, Flow<ByteString, ByteString, ?> outbound) {
      this.chunkBytes = chunkBytes;
      this.outbound = outbound;
    }

    Flow<ByteString, ByteString, ?> handler() {
      Version v = current;
      Source<ByteString, ?> out = v == null ? Source.empty()
          : Source.fromIterator(() -> WeightStream.encode(v.version(), v.tensors(), v.bf16(), chunkBytes))
              .withAttributes(ActorAttributes.dispatcher(DISPATCHER))
              .async()
              .via(outbound)
              // a receiver that stops reading without closing (a frozen host) releases the version after this
              .idleTimeout(IDLE);
      // coupled: the stream ends when the version was sent or when the receiver went away, whichever comes first
      return Flow.fromSinkAndSourceCoupled(Sink.ignore(), out);
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
    return start(system, host, port, chunkBytes, Flow.create());
  }

  /** As {@link #start}, with every outgoing stream passed through {@code outbound} (tests corrupt bytes here). */
  public static WeightServer start(ClassicActorSystemProvider system, String host, int port, int chunkBytes,
      Flow<ByteString, ByteString, ?> outbound) {
    Materializer mat = Materializer.matFromSystem(system);
    State state = new State(chunkBytes, outbound);
    CompletionStage<Tcp.ServerBinding> bound = Tcp.get(system).bind(host, port)
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
    state.current = v;
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
