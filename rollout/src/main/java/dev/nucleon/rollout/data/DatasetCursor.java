package dev.nucleon.rollout.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * Hands out the training rows epoch after epoch, each epoch in its own order: a permutation drawn from
 * (shuffle-seed, epoch), so every epoch is reshuffled and the same seed always gives the same sequence. Not thread
 * safe (the coordinator owns it).
 *
 * <p>{@link #snapshot()} captures the position as plain data ({@link State}, a Jackson-serializable record, or
 * {@link State#toJson()} bytes); {@link #restore(State)} continues at exactly the next row the snapshotted cursor
 * would have handed out. A snapshot is refused by a cursor over different rows or with a different order.
 */
public final class DatasetCursor {

  /**
   * A cursor position.
   *
   * @param epoch the epoch of the rows handed out last (0-based)
   * @param position how many rows of that epoch were handed out
   * @param handedOut rows handed out in all epochs together
   * @param shuffle whether epochs are shuffled
   * @param seed the shuffle seed
   * @param size rows per epoch
   * @param fingerprint a hash of the rows' ids, prompts and ground truths, to refuse a changed dataset
   */
  public record State(
      int epoch, int position, long handedOut, boolean shuffle, long seed, int size, long fingerprint) {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The state as UTF-8 JSON. */
    public byte[] toJson() {
      try {
        return JSON.writeValueAsBytes(this);
      } catch (JsonProcessingException e) {
        throw new IllegalStateException(e);
      }
    }

    public static State fromJson(byte[] json) {
      try {
        return JSON.readValue(json, State.class);
      } catch (IOException e) {
        throw new UncheckedIOException("not a dataset cursor state: "
            + new String(json, StandardCharsets.UTF_8), e);
      }
    }
  }

  private final List<DatasetRow> rows;
  private final boolean shuffle;
  private final long seed;
  private final int epochs;
  private final long fingerprint;
  private int epoch;
  private int position;
  private long handedOut;
  private int[] order;

  /**
   * A cursor at the start of epoch 0.
   *
   * @param rows the training rows
   * @param shuffle false: file order every epoch
   * @param seed the shuffle seed
   * @param epochs passes over the rows, 0 = no limit
   */
  public DatasetCursor(List<DatasetRow> rows, boolean shuffle, long seed, int epochs) {
    if (epochs < 0) {
      throw new IllegalArgumentException("epochs must be >= 0, got " + epochs);
    }
    this.rows = List.copyOf(rows);
    this.shuffle = shuffle;
    this.seed = seed;
    this.epochs = epochs;
    this.fingerprint = fingerprint(this.rows);
    this.order = order(0);
  }

  /** Whether another row can be handed out (false when the rows are empty or the last epoch is done). */
  public boolean hasNext() {
    if (rows.isEmpty()) {
      return false;
    }
    return position < rows.size() || epochs == 0 || epoch + 1 < epochs;
  }

  /** The next row; the first row of a new epoch starts that epoch's order. */
  public DatasetRow next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the dataset cursor is done: " + epochs + " epoch(s) of " + rows.size()
          + " rows");
    }
    if (position == rows.size()) {
      epoch++;
      position = 0;
      order = order(epoch);
    }
    DatasetRow row = rows.get(order[position]);
    position++;
    handedOut++;
    return row;
  }

  /** The epoch of the row handed out last (0 before any). */
  public int epoch() {
    return epoch;
  }

  /** Rows of the current epoch handed out so far. */
  public int position() {
    return position;
  }

  /** Rows handed out since the start, all epochs together. */
  public long handedOut() {
    return handedOut;
  }

  /** Rows per epoch. */
  public int size() {
    return rows.size();
  }

  /** Configured epochs (0 = no limit). */
  public int epochs() {
    return epochs;
  }

  /** The current position as plain data. */
  public State snapshot() {
    return new State(epoch, position, handedOut, shuffle, seed, rows.size(), fingerprint);
  }

  /**
   * Moves to a snapshotted position.
   *
   * @throws IllegalStateException when the snapshot comes from a cursor over other rows or with another order
   */
  public void restore(State state) {
    if (state.size() != rows.size() || state.fingerprint() != fingerprint) {
      throw new IllegalStateException("the dataset changed since the snapshot: it had " + state.size()
          + " rows (fingerprint " + Long.toHexString(state.fingerprint()) + "), now " + rows.size()
          + " (fingerprint " + Long.toHexString(fingerprint) + ")");
    }
    if (state.shuffle() != shuffle || state.seed() != seed) {
      throw new IllegalStateException("the order changed since the snapshot: shuffle " + state.shuffle()
          + " seed " + state.seed() + ", now shuffle " + shuffle + " seed " + seed);
    }
    if (state.epoch() < 0 || state.position() < 0 || state.position() > rows.size()
        || (epochs > 0 && state.epoch() >= epochs)) {
      throw new IllegalStateException("snapshot position out of range: epoch " + state.epoch() + " position "
          + state.position() + " (" + rows.size() + " rows, " + epochs + " epochs)");
    }
    this.epoch = state.epoch();
    this.position = state.position();
    this.handedOut = state.handedOut();
    this.order = order(epoch);
  }

  /** The order of an epoch: indices into the rows. */
  int[] order(int epochIndex) {
    if (!shuffle) {
      int[] identity = new int[rows.size()];
      for (int i = 0; i < identity.length; i++) {
        identity[i] = i;
      }
      return identity;
    }
    return Shuffle.permutation(rows.size(), seed, epochIndex);
  }

  private static long fingerprint(List<DatasetRow> rows) {
    long h = 0xCBF29CE484222325L;
    for (DatasetRow r : rows) {
      h = (h ^ r.id()) * 0x100000001B3L;
      h = (h ^ r.prompt().hashCode()) * 0x100000001B3L;
      h = (h ^ r.groundTruth().hashCode()) * 0x100000001B3L;
    }
    return h;
  }
}
