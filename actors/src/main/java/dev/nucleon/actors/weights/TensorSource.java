package dev.nucleon.actors.weights;

import dev.nucleon.model.io.HostTensor;

/**
 * A tensor to stream: its name, its shape, and its float32 values read in order, a window at a time, so a version
 * can be sent from host arrays or from a generator without holding the whole version as one array.
 */
public interface TensorSource {

  String name();

  long[] shape();

  /** Copies elements {@code [from, from + n)} into {@code dst[0, n)}. */
  void read(long from, float[] dst, int n);

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
      public void read(long from, float[] dst, int n) {
        System.arraycopy(t.data(), (int) from, dst, 0, n);
      }
    };
  }
}
