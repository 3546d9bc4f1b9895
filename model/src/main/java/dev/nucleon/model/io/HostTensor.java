package dev.nucleon.model.io;

import java.util.Arrays;
import java.util.Objects;

/**
 * A named float32 tensor in Java heap memory, row-major. This is how weights travel between files, the model and
 * the network: plain arrays that need no native memory and no NDManager.
 *
 * @param name the tensor's name (Hugging Face naming, e.g. {@code model.layers.0.self_attn.q_proj.weight})
 * @param shape dimensions, outermost first
 * @param data {@code product(shape)} values
 */
public record HostTensor(String name, long[] shape, float[] data) {

  public HostTensor {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(shape, "shape");
    Objects.requireNonNull(data, "data");
    long n = numel(shape);
    if (n != data.length) {
      throw new IllegalArgumentException(name + ": shape " + Arrays.toString(shape) + " holds " + n
          + " values but data has " + data.length);
    }
  }

  /** The number of elements a shape holds. */
  public static long numel(long[] shape) {
    long n = 1;
    for (long s : shape) {
      if (s < 0) {
        throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
      }
      n = Math.multiplyExact(n, s);
    }
    return n;
  }

  /** Same data under another name. */
  public HostTensor renamed(String newName) {
    return new HostTensor(newName, shape, data);
  }

  /** Size in bytes as float32. */
  public long byteSize() {
    return 4L * data.length;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof HostTensor t && name.equals(t.name) && Arrays.equals(shape, t.shape)
        && Arrays.equals(data, t.data);
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, Arrays.hashCode(shape));
  }

  @Override
  public String toString() {
    return name + Arrays.toString(shape);
  }
}
