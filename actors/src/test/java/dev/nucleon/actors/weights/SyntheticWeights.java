package dev.nucleon.actors.weights;

import java.util.ArrayList;
import java.util.List;

/**
 * A version made up on the fly: tensor {@code t}'s element {@code i} is a function of (t, i), so a sender can
 * stream gigabytes without holding them and a receiver can check every value without a copy.
 */
final class SyntheticWeights {

  private SyntheticWeights() {}

  static float value(int tensor, long i) {
    long h = (i + 1) * 0x9E3779B97F4A7C15L + tensor * 0xC2B2AE3D27D4EB4FL;
    h ^= h >>> 29;
    return (h % 2_000_003L) / 1_000_000f; // within (-2.000003, 2.000003), exactly representable choices vary
  }

  static List<TensorSource> tensors(int count, long elementsEach) {
    List<TensorSource> out = new ArrayList<>();
    for (int t = 0; t < count; t++) {
      int index = t;
      out.add(new TensorSource() {
        @Override
        public String name() {
          return "model.layers." + index + ".mlp.weight";
        }

        @Override
        public long[] shape() {
          return new long[] {elementsEach / 1000, 1000};
        }

        @Override
        public void read(long from, int n, java.nio.FloatBuffer dst) {
          for (int i = 0; i < n; i++) {
            dst.put(value(index, from + i));
          }
        }
      });
    }
    return out;
  }

  /** Checks every value against the generator as it arrives, holding nothing. */
  static final class Check implements WeightStream.TensorSink {
    int tensors;
    long values;
    long wrong;
    private int current = -1;
    private long at;
    private final List<String> names = new ArrayList<>();

    @Override
    public void begin(String name, long[] shape) {
      current = Integer.parseInt(name.split("\\.")[2]);
      names.add(name);
      at = 0;
    }

    @Override
    public void values(java.nio.FloatBuffer chunk) {
      int n = chunk.remaining();
      for (int i = 0; i < n; i++) {
        if (Float.floatToRawIntBits(chunk.get()) != Float.floatToRawIntBits(value(current, at + i))) {
          wrong++;
        }
      }
      at += n;
      values += n;
    }

    @Override
    public void end() {
      tensors++;
    }

    List<String> names() {
      return names;
    }
  }

  /**
   * Serves one synthetic version from a JVM of its own: prints {@code PORT <port> BYTES <wire bytes>} and serves
   * until its standard input closes. Arguments: tensor count, elements per tensor.
   */
  public static void main(String[] args) throws Exception {
    var system = org.apache.pekko.actor.typed.ActorSystem.create(
        org.apache.pekko.actor.typed.javadsl.Behaviors.empty(), "synthetic-weights");
    List<TensorSource> tensors = tensors(Integer.parseInt(args[0]), Long.parseLong(args[1]));
    long bytes = WeightStream.wireBytes(tensors, false);
    WeightServer server = WeightServer.start(system, "127.0.0.1", 0, 1 << 20);
    server.publish(new WeightServer.Version(1, tensors, false, bytes));
    System.out.println("PORT " + server.port() + " BYTES " + bytes);
    System.out.flush();
    while (System.in.read() >= 0) {
      // serve until the parent closes our input (or dies)
    }
    server.close();
    system.terminate();
  }
}
