package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.util.Arrays;

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
  /** The allocated rows of every layer; {@link #keys} and {@link #values} are these or views of their first rows. */
  private final NDArray[] keyStore;
  private final NDArray[] valueStore;
  private final NDArray[] keys;
  private final NDArray[] values;
  private int capacity;
  private final DataType type;
  private int length;
  /** How the next forward's attention reads the cache in blocks of rows, or null: every row reads every column. */
  private long[] blockRows;
  private long[] blockEnds;
  private long[] blockColumns;
  private int decodedRows;

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
    keyStore = new NDArray[layers];
    valueStore = new NDArray[layers];
    LlamaConfig.Latent latent = config.latent();
    for (int l = 0; l < layers; l++) {
      if (latent != null) {
        keyStore[l] = zeros(new Shape(batch, 1, latent.kvLoraRank() + latent.qkRopeDim(), capacity), type);
        continue; // values stay null: the latent part of the keys is read as the values
      }
      keyStore[l] = zeros(new Shape(batch, config.numKvHeads(), config.headDim(), capacity), type);
      valueStore[l] = zeros(new Shape(batch, config.numKvHeads(), capacity, config.headDim()), type);
    }
    keys = keyStore.clone();
    values = valueStore.clone();
  }

  private NDArray zeros(Shape shape, DataType type) {
    return Precision.converted(manager.zeros(shape), type, manager);
  }

  /**
   * Layer {@code layer}'s keys, {@code [B, K, D, capacity]}: the storage (or, after {@link #keepRows}, a view of its
   * first rows), not a view of the filled part.
   */
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
    clearBlocks();
  }

  /**
   * Lets the next forward decode the cache's rows in blocks (a continuous batch, whose rows hold sequences of
   * different lengths): block j is rows {@code [rowStarts[j], rowEnds[j])}, which read the columns from
   * {@code columnStarts[j]} on only, so a block of short sequences does not read the columns of the longest. The
   * forward's rows are the blocks' rows in order; rows in no block (idle ones) are neither read nor written, and
   * nothing is computed for them. Every column a row skips must be masked for it: the result is what reading all
   * columns gives. Applies to one forward pass, of one new token per row, through the decode script (the eager path
   * refuses blocks that leave rows out, and reads every column).
   *
   * @param rowStarts each block's first row (increasing, from 0 or later)
   * @param rowEnds each block's end, after its last row (at most the next block's first row and the batch size)
   * @param columnStarts each block's first column, at most {@link #length()} (the column a decode step writes)
   */
  public void readInBlocks(int[] rowStarts, int[] rowEnds, int[] columnStarts) {
    requireBlocks(rowStarts, rowEnds, columnStarts, 0);
    blockRows = Arrays.stream(rowStarts).asLongStream().toArray();
    blockEnds = Arrays.stream(rowEnds).asLongStream().toArray();
    blockColumns = Arrays.stream(columnStarts).asLongStream().toArray();
    decodedRows = 0;
    for (int j = 0; j < rowStarts.length; j++) {
      decodedRows += rowEnds[j] - rowStarts[j];
    }
  }

  /**
   * Throws unless blocks {@code [rowStarts[j], rowEnds[j])} are non-empty, in order, do not overlap and lie within
   * the batch, and each block's first column is in {@code [minColumn, length]} (a drop of the first
   * {@code minColumn} columns, or 0 for a forward).
   */
  private void requireBlocks(int[] rowStarts, int[] rowEnds, int[] columnStarts, int minColumn) {
    long batch = batch();
    if (rowStarts.length == 0 || rowStarts.length != rowEnds.length || rowStarts.length != columnStarts.length) {
      throw new IllegalArgumentException("blocks need as many row starts, row ends and column starts, got "
          + rowStarts.length + ", " + rowEnds.length + " and " + columnStarts.length);
    }
    for (int j = 0; j < columnStarts.length; j++) {
      int floor = j == 0 ? 0 : rowEnds[j - 1];
      if (rowStarts[j] < floor || rowEnds[j] <= rowStarts[j] || rowEnds[j] > batch || columnStarts[j] < minColumn
          || columnStarts[j] > length) {
        String why = minColumn > 0 ? "cannot drop the first " + minColumn + " of " + length + " columns"
            : "(after row " + floor + ", batch " + batch + ", length " + length + ")";
        throw new IllegalArgumentException("block " + j + ": rows [" + rowStarts[j] + ", " + rowEnds[j]
            + ") from column " + columnStarts[j] + " " + why);
      }
    }
  }

  /** The next forward's blocks' first rows; empty when every row reads every column. */
  long[] blockRows() {
    return blockRows == null ? new long[0] : blockRows;
  }

  /** The next forward's blocks' ends (after their last rows); empty when every row reads every column. */
  long[] blockEnds() {
    return blockEnds == null ? new long[0] : blockEnds;
  }

  /** The next forward's blocks' first columns; empty when every row reads every column. */
  long[] blockColumns() {
    return blockColumns == null ? new long[0] : blockColumns;
  }

  /**
   * The rows the next forward decodes, in order, when its blocks leave some out; empty when it decodes every row
   * (the new token's keys and values are then written to these rows only).
   */
  long[] decodedRowIndices() {
    if (!leavesRowsOut()) {
      return new long[0];
    }
    long[] rows = new long[decodedRows];
    int k = 0;
    for (int j = 0; j < blockRows.length; j++) {
      for (long r = blockRows[j]; r < blockEnds[j]; r++) {
        rows[k++] = r;
      }
    }
    return rows;
  }

  /** Whether the next forward's blocks leave some rows out. */
  boolean leavesRowsOut() {
    return blockRows != null && decodedRows != batch();
  }

  /** Rows the next forward decodes: those of its blocks, or every row. */
  public long decodedRows() {
    return blockRows == null ? batch() : decodedRows;
  }

  private void clearBlocks() {
    blockRows = null;
    blockEnds = null;
    blockColumns = null;
  }

  /** Throws unless {@code t} more positions fit. */
  void requireRoom(long t) {
    if (length + t > capacity) {
      throw new IllegalStateException("KV cache full: " + length + " + " + t + " > capacity " + capacity);
    }
  }

  /**
   * Copies rows {@code srcRows} of {@code src} (their {@code src.length()} filled columns) into rows
   * {@code dstRows} of this cache, at the columns that end at this cache's length (continuous batching: newcomers'
   * prefilled prompts take the places of finished sequences). One native call for the keys of every row and layer,
   * one for the values.
   */
  public void placeRows(KvCache src, int[] srcRows, int[] dstRows) {
    int n = src.length;
    if (n > length) {
      throw new IllegalStateException("cannot place " + n + " columns before column " + length);
    }
    if (srcRows.length != dstRows.length) {
      throw new IllegalArgumentException(srcRows.length + " rows to copy into " + dstRows.length);
    }
    int[] from = new int[srcRows.length];
    int[] to = new int[srcRows.length];
    int[] count = new int[srcRows.length];
    Arrays.fill(to, length - n);
    Arrays.fill(count, n);
    copyRows(src, srcRows, dstRows, from, to, count);
  }

  /** Row copies between the layers of {@code src} and this cache ({@link RowCopies}): keys, then any values. */
  private void copyRows(KvCache src, int[] srcRows, int[] dstRows, int[] srcFrom, int[] dstFrom, int[] count) {
    // a row of keys [B, K, D, capacity] is [K, D, capacity], of values [B, K, capacity, D] [K, capacity, D]
    RowCopies.copy(src.keys, keys, 2, srcRows, dstRows, srcFrom, dstFrom, count);
    if (values[0] != null) {
      RowCopies.copy(src.values, values, 1, srcRows, dstRows, srcFrom, dstFrom, count);
    }
  }

  /** Enlarges every row to {@code newCapacity} columns, keeping what is filled. */
  public void grow(int newCapacity) {
    if (newCapacity <= capacity) {
      return;
    }
    int rows = (int) batch();
    for (int l = 0; l < keys.length; l++) {
      keyStore[l] = widened(keyStore[l], 3, newCapacity);
      valueStore[l] = valueStore[l] == null ? null : widened(valueStore[l], 2, newCapacity);
    }
    capacity = newCapacity;
    viewRows(rows);
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

  /**
   * Moves rows {@code rows} (increasing) to the front of the batch in place, in that order: row i becomes what row
   * {@code rows[i]} was, from column {@code firstColumns[i]} to the length (the columns before are not its own: they
   * are masked for it and not copied). The rows after them keep stale keys and values (a newcomer placed there
   * overwrites the columns it reads; the others must be masked). No memory is allocated.
   */
  public void compactRows(int[] rows, int[] firstColumns) {
    long batch = batch();
    for (int i = 0; i < rows.length; i++) {
      if (rows[i] < i || (i > 0 && rows[i] <= rows[i - 1]) || rows[i] >= batch) {
        throw new IllegalArgumentException("rows to keep must increase within the batch of " + batch + ", got "
            + Arrays.toString(rows));
      }
    }
    if (firstColumns.length != rows.length) {
      throw new IllegalArgumentException(rows.length + " rows to keep, " + firstColumns.length + " first columns");
    }
    clearBlocks();
    int[] src = new int[rows.length];
    int[] dst = new int[rows.length];
    int[] from = new int[rows.length];
    int[] count = new int[rows.length];
    int k = 0;
    for (int i = 0; i < rows.length; i++) {
      int first = Math.max(0, firstColumns[i]);
      if (rows[i] != i && first < length) {
        // one row to an earlier one: never overlapping, and rows[i] is not yet overwritten (every earlier
        // destination lies before i)
        src[k] = rows[i];
        dst[k] = i;
        from[k] = first;
        count[k++] = length - first;
      }
    }
    copyRows(this, Arrays.copyOf(src, k), Arrays.copyOf(dst, k), Arrays.copyOf(from, k), Arrays.copyOf(from, k),
        Arrays.copyOf(count, k));
  }

  /**
   * Keeps rows {@code keep} (increasing) of the batch, in that order, each from its first column on: the batch
   * shrinks to {@code keep.length} rows ({@link #compactRows}, then a view of the first rows; the storage stays
   * allocated).
   */
  public void keepRows(int[] keep, int[] firstColumns) {
    compactRows(keep, firstColumns);
    viewRows(keep.length);
  }

  /**
   * Enlarges the batch to {@code rows} of its allocated rows again (after {@link #keepRows}), for newcomers: the
   * rows added keep stale keys and values (a newcomer placed there overwrites the columns it reads; until then they
   * must be masked).
   */
  public void growRows(int rows) {
    if (rows < batch() || rows > keyStore[0].getShape().get(0)) {
      throw new IllegalArgumentException("cannot grow a batch of " + batch() + " rows to " + rows + " (allocated: "
          + keyStore[0].getShape().get(0) + ")");
    }
    viewRows(rows);
  }

  /** Makes every layer's keys and values its first {@code n} allocated rows (a view when fewer than all). */
  private void viewRows(int n) {
    clearBlocks();
    for (int l = 0; l < keys.length; l++) {
      keys[l] = firstRows(keys[l], keyStore[l], n);
      values[l] = valueStore[l] == null ? null : firstRows(values[l], valueStore[l], n);
    }
  }

  private NDArray firstRows(NDArray before, NDArray store, int n) {
    NDArray view = n == store.getShape().get(0) ? store : Ops.slice(store, 0, 0, n, manager);
    if (before != store && before != view && !before.isReleased()) {
      before.close(); // an earlier view (the store keeps the storage)
    }
    return view;
  }

  private long batch() {
    return keys[0].getShape().get(0);
  }

  /**
   * Drops the first {@code n} columns of every row: the rest moves to the front, in place (the length shrinks by n;
   * the columns after it keep stale values until written).
   */
  public void dropFront(int n) {
    dropFront(n, new int[] {0}, new int[] {(int) batch()}, new int[] {n});
  }

  /**
   * Drops the first {@code n} columns, moving only what rows still read: the rows of block j,
   * {@code [rowStarts[j], rowEnds[j])}, keep their columns from {@code columnStarts[j]} (at least n) on, moved n to
   * the front in place; every other column, and every column of rows in no block, is stale afterwards (the length
   * shrinks by n).
   */
  public void dropFront(int n, int[] rowStarts, int[] rowEnds, int[] columnStarts) {
    if (n <= 0) {
      return;
    }
    requireBlocks(rowStarts, rowEnds, columnStarts, n); // a block reading a dropped column would lose it
    clearBlocks();
    try (NDManager tmp = manager.newSubManager()) {
      for (int l = 0; l < keys.length; l++) {
        for (int j = 0; j < columnStarts.length; j++) {
          NDArray k = Ops.slice(keys[l], 0, rowStarts[j], rowEnds[j], tmp);
          shift(k, 3, columnStarts[j], n, tmp);
          if (values[l] != null) {
            shift(Ops.slice(values[l], 0, rowStarts[j], rowEnds[j], tmp), 2, columnStarts[j], n, tmp);
          }
        }
      }
    }
    length -= n;
  }

  /**
   * Moves columns [from, length) along {@code axis} to [from - n, length - n): n at a time so no copy overlaps
   * itself, or through a copy when that would take more than four copies (a full cache dropping a few columns).
   */
  private void shift(NDArray a, int axis, int from, int n, NDManager tmp) {
    if (length - from > 4L * n) {
      NDArray kept = Ops.slice(a, axis, from, length, tmp).duplicate();
      kept.attach(tmp);
      Ops.writeAlong(a, kept, axis, from - n);
      return;
    }
    for (int c = from; c < length; c += n) {
      Ops.writeAlong(a, Ops.slice(a, axis, c, Math.min(length, c + n), tmp), axis, c - n);
    }
  }

  @Override
  public void close() {
    manager.close();
  }
}
