package dev.nucleon.actors.weights;

import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;

/** A weight server's outgoing flow for tests: flips one bit in flight on one chosen connection. */
public final class CorruptingFlow {

  private CorruptingFlow() {}

  /**
   * Counts connections in {@code connections}; connection number {@code which} (1 = the first) has one bit flipped
   * once {@code after} bytes have gone by.
   */
  public static Flow<ByteString, ByteString, ?> onConnection(int which, int after, AtomicInteger connections) {
    return Flow.<ByteString>create().statefulMap(() -> new int[] {connections.incrementAndGet(), 0}, (s, b) -> {
      s[1] += b.length();
      if (s[0] == which && s[1] > after && b.length() > 8) {
        byte[] a = b.toArray();
        a[a.length / 2] ^= 4;
        s[0] = -1; // once
        return Pair.create(s, ByteString.fromArray(a));
      }
      return Pair.create(s, b);
    }, s -> Optional.empty());
  }
}
