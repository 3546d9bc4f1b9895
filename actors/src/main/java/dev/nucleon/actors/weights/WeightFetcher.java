package dev.nucleon.actors.weights;

import java.time.Duration;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.stream.ActorAttributes;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.stream.javadsl.Tcp;
import org.apache.pekko.util.ByteString;

/**
 * Pulls one version from a {@link WeightServer}: connects, decodes the stream into a {@link WeightStream.TensorSink}
 * on the {@code nucleon.weights-dispatcher}, and completes once every tensor's checksum matched. A transfer that
 * sends nothing for {@code idle} fails with a timeout; a corrupt or truncated one fails naming the tensor.
 */
public final class WeightFetcher {

  private WeightFetcher() {}

  /**
   * Fetches the version the server holds now.
   *
   * @param maxBytes the most bytes the version may take (its announcement's size)
   * @param base the version whose values the sink can give as delta bases ({@link
   *     WeightStream.TensorSink#deltaBase}), or -1
   * @return the decoder after the whole version arrived and checked (its sink holds the values)
   */
  public static CompletionStage<WeightStream.Decoder> fetch(ClassicActorSystemProvider system, String host, int port,
      WeightStream.TensorSink sink, long maxBytes, Duration idle, int base) {
    Materializer mat = Materializer.matFromSystem(system);
    WeightStream.Decoder decoder = new WeightStream.Decoder(sink, maxBytes);
    // the request, then this side half-closes; the connection stays open for the answer, which ends it
    return Source.single(WeightStream.request(base))
        .via(Tcp.get(system).outgoingConnection(host, port))
        .idleTimeout(idle)
        .toMat(Sink.fold(decoder, (d, piece) -> {
          d.feed(piece);
          return d;
        }), Keep.right())
        .withAttributes(ActorAttributes.dispatcher(WeightServer.DISPATCHER))
        .run(mat)
        .thenApply(d -> {
          d.finish();
          return d;
        });
  }

  /** As {@link #fetch}, collecting the tensors as host arrays. */
  public static CompletionStage<WeightStream.Received> fetchTensors(ClassicActorSystemProvider system, String host,
      int port, long maxBytes, Duration idle) {
    WeightStream.Collect sink = new WeightStream.Collect();
    return fetch(system, host, port, sink, maxBytes, idle, -1)
        .thenApply(d -> new WeightStream.Received(d.version(), d.bf16(), sink.tensors(), d.bytes()));
  }
}
