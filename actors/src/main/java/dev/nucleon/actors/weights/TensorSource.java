package dev.nucleon.actors.weights;

import dev.nucleon.model.io.HostTensor;
import java.nio.FloatBuffer;

/**
 * A tensor to stream: its name, its shape, and its float32 values read in order, a window at a time, so a version
 * can be sent from host arrays or from a generator without holding the whole version as one array.
 */
public interface TensorSource {

  String name();

  long[] shape();

  /** Puts elements {@code [from, from + n)} into {@code dst} at its position (advancing it by n). */
  void read(long from, int n, FloatBuffer dst);

  /** Elements in the tensor. */
  default long elements() {
    return HostTensor.numel(shape());
  }

  /** A host tensor's values, read in place. */
  static TensorSource of(HostTensor t) {
    return new TensorSource() {
      @Override
      public String name() {
        return t.name();
      }

      @Override
      public long[] shape() {
        return t.shape();
      }

      @Override
      public void read(long from, int n, FloatBuffer dst) {
        dst.put(t.data(), (int) from, n);
      }
    };
  }
}
