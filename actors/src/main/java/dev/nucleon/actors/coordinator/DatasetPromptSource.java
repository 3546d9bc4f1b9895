package dev.nucleon.actors.coordinator;

import dev.nucleon.rollout.data.Dataset;
import dev.nucleon.rollout.data.DatasetCursor;
import dev.nucleon.rollout.data.DatasetRow;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Prompts from a loaded dataset through its seeded, resumable cursor. A prompt's id in the run is unique per
 * epoch: {@code epoch << 40 | row id}, so the same row trained again in a later epoch is a new prompt to the
 * ledger and the replay buffer.
 */
public final class DatasetPromptSource implements PromptSource {

  private static final int EPOCH_SHIFT = 40;
  private static final long ROW_MASK = (1L << EPOCH_SHIFT) - 1;

  private final Dataset dataset;
  private final DatasetCursor cursor;
  private final Map<Long, DatasetRow> rows = new HashMap<>();

  public DatasetPromptSource(Dataset dataset) {
    this.dataset = dataset;
    this.cursor = dataset.cursor();
    for (DatasetRow r : dataset.train()) {
      if (r.id() < 0 || r.id() > ROW_MASK) {
        throw new IllegalArgumentException("dataset row id " + r.id() + " out of range");
      }
      rows.put(r.id(), r);
    }
  }

  @Override
  public Optional<DatasetRow> next() {
    if (!cursor.hasNext()) {
      return Optional.empty();
    }
    DatasetRow r = cursor.next();
    // the cursor has moved on to the row's epoch when it hands the row out
    return Optional.of(new DatasetRow(((long) cursor.epoch() << EPOCH_SHIFT) | r.id(), r.prompt(), r.groundTruth(),
        r.metadata()));
  }

  @Override
  public boolean hasNext() {
    return cursor.hasNext();
  }

  @Override
  public DatasetRow byId(long id) {
    DatasetRow r = rows.get(id & ROW_MASK);
    if (r == null) {
      throw new IllegalArgumentException("no training row with id " + (id & ROW_MASK));
    }
    return new DatasetRow(id, r.prompt(), r.groundTruth(), r.metadata());
  }

  @Override
  public List<DatasetRow> evalRows() {
    return dataset.eval();
  }

  @Override
  public int epoch() {
    return cursor.epoch();
  }

  @Override
  public byte[] snapshot() {
    return cursor.snapshot().toJson();
  }

  @Override
  public void restore(byte[] snapshot) {
    cursor.restore(DatasetCursor.State.fromJson(snapshot));
  }
}
