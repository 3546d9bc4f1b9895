package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Keys and values of every layer for a batch of sequences, preallocated to a fixed capacity and written in place.
 *
 * <p>Keys are stored transposed, {@code [B, K, D, capacity]}, and values as {@code [B, K, capacity, D]}, so
 * attention reads the filled part of both as views, without a transpose or a copy per step.
 *
 * <p>For multi-head latent attention (DeepSeek-V3) a layer caches what every head's keys and values are expanded
 * from: the normalized latent and the rotated shared key, {@code [B, 1, kvLoraRank + qkRopeDim, capacity]} as its
 * "keys", and no values (the latent part of the keys serves as the values, read transposed). That is
 * {@code kvLoraRank + qkRopeDim} numbers per position and layer instead of {@code heads x (qk + v)}.
 */
public final class KvCache implements AutoCloseable {

  private final NDManager manager;
  private final NDArray[] keys;
  private final NDArray[] values;
  private int capacity;
  private final DataType type;
  private int length;

  /**
   * @param parent the manager the cache lives under (a sub-manager is made and closed with the cache)
   * @param config the model shape
   * @param batch sequences in the batch
   * @param capacity positions each sequence can hold (prompt plus new tokens)
   * @param type the activations' type (the model's {@link Precision#compute()})
   */
  public KvCache(NDManager parent, LlamaConfig config, int batch, int capacity, DataType type) {
    this.manager = parent.newSubManager();
    this.capacity = capacity;
    this.type = type;
    int layers = config.numLayers();
    keys = new NDArray[layers];
    values = new NDArray[layers];
    LlamaConfig.Latent latent = config.latent();
    for (int l = 0; l < layers; l++) {
      if (latent != null) {
        keys[l] = zeros(new Shape(batch, 1, latent.kvLoraRank() + latent.qkRopeDim(), capacity), type);
        continue; // values stay null: the latent part of the keys is read as the values
      }
      keys[l] = zeros(new Shape(batch, config.numKvHeads(), config.headDim(), capacity), type);
      values[l] = zeros(new Shape(batch, config.numKvHeads(), capacity, config.headDim()), type);
    }
  }

  private NDArray zeros(Shape shape, DataType type) {
    return Precision.converted(manager.zeros(shape), type, manager);
  }

  /** Layer {@code layer}'s keys, {@code [B, K, D, capacity]} (the storage, not a view of the filled part). */
  NDArray keys(int layer) {
    return keys[layer];
  }

  /** Layer {@code layer}'s values, {@code [B, K, capacity, D]} (null for latent attention). */
  NDArray values(int layer) {
    return values[layer];
  }

  /** Positions filled so far. */
  public int length() {
    return length;
  }

  public int capacity() {
    return capacity;
  }

  /**
   * Writes the new keys {@code [B, K, D, T]} and values {@code [B, K, T, D]} of one layer at the current end,
   * and returns views of everything written so far (owned by {@code stepManager}).
   */
  NDArray[] append(int layer, NDArray k, NDArray v, NDManager stepManager) {
    long t = k.getShape().get(3);
    requireRoom(t);
    Ops.writeAlong(keys[layer], k, 3, length);
    if (v != null) {
      Ops.writeAlong(values[layer], v, 2, length);
    }
    long end = length + t;
    return new NDArray[] {Ops.slice(keys[layer], 3, 0, end, stepManager),
        v == null ? null : Ops.slice(values[layer], 2, 0, end, stepManager)};
  }

  /** Marks {@code t} more positions as filled (after every layer has appended them, or as masked gaps). */
  public void advance(int t) {
    requireRoom(t);
    length += t;
  }

  /** Throws unless {@code t} more positions fit. */
  void requireRoom(long t) {
    if (length + t > capacity) {
      throw new IllegalStateException("KV cache full: " + length + " + " + t + " > capacity " + capacity);
    }
  }

  /**
   * Copies row {@code srcRow} of {@code src} (its {@code src.length()} filled columns) into row {@code dstRow} of
   * this cache, at the columns that end at this cache's length (continuous batching: a newcomer's prefilled prompt
   * takes the place of a finished sequence).
   */
  public void placeRow(KvCache src, int srcRow, int dstRow, NDManager stepManager) {
    long n = src.length;
    if (n > length) {
      throw new IllegalStateException("cannot place " + n + " columns before column " + length);
    }
    for (int l = 0; l < keys.length; l++) {
      NDArray k = Ops.slice(Ops.slice(src.keys[l], 0, srcRow, srcRow + 1, stepManager), 3, 0, n, stepManager);
      Ops.writeBlock(keys[l], k, new long[] {dstRow, 0, 0, length - n});
      if (values[l] != null) {
        NDArray v = Ops.slice(Ops.slice(src.values[l], 0, srcRow, srcRow + 1, stepManager), 2, 0, n, stepManager);
        Ops.writeBlock(values[l], v, new long[] {dstRow, 0, length - n, 0});
      }
    }
  }

  /** Enlarges every row to {@code newCapacity} columns, keeping what is filled. */
  public void grow(int newCapacity) {
    if (newCapacity <= capacity) {
      return;
    }
    for (int l = 0; l < keys.length; l++) {
      keys[l] = widened(keys[l], 3, newCapacity);
      values[l] = values[l] == null ? null : widened(values[l], 2, newCapacity);
    }
    capacity = newCapacity;
  }

  private NDArray widened(NDArray a, int axis, int newCapacity) {
    long[] shape = a.getShape().getShape().clone();
    shape[axis] = newCapacity;
    NDArray fresh = zeros(new Shape(shape), type);
    try (NDManager tmp = manager.newSubManager()) {
      Ops.writeAlong(fresh, Ops.slice(a, axis, 0, length, tmp), axis, 0);
    }
    a.close();
    return fresh;
  }

  /** Keeps only rows {@code keep} of the batch, in that order (row i of the result is row keep[i]). */
  public void keepRows(int[] keep) {
    for (int l = 0; l < keys.length; l++) {
      keys[l] = rows(keys[l], keep);
      values[l] = values[l] == null ? null : rows(values[l], keep);
    }
  }

  private NDArray rows(NDArray a, int[] keep) {
    long[] shape = a.getShape().getShape().clone();
    shape[0] = keep.length;
    NDArray fresh = zeros(new Shape(shape), type);
    try (NDManager tmp = manager.newSubManager()) {
      for (int i = 0; i < keep.length; i++) {
        long[] at = new long[shape.length];
        at[0] = i;
        Ops.writeBlock(fresh, Ops.slice(a, 0, keep[i], keep[i] + 1, tmp), at);
      }
    }
    a.close();
    return fresh;
  }

  /** Drops the first {@code n} columns of every row: the rest moves to the front (the length shrinks by n). */
  public void dropFront(int n) {
    if (n <= 0) {
      return;
    }
    for (int l = 0; l < keys.length; l++) {
      keys[l] = shifted(keys[l], 3, n);
      values[l] = values[l] == null ? null : shifted(values[l], 2, n);
    }
    length -= n;
  }

  private NDArray shifted(NDArray a, int axis, int n) {
    NDArray fresh = zeros(a.getShape(), type);
    try (NDManager tmp = manager.newSubManager()) {
      Ops.writeAlong(fresh, Ops.slice(a, axis, n, length, tmp), axis, 0);
    }
    a.close();
    return fresh;
  }

  @Override
  public void close() {
    manager.close();
  }
}
