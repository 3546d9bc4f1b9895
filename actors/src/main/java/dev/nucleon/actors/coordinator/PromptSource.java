package dev.nucleon.actors.coordinator;

import dev.nucleon.rollout.data.DatasetRow;
import java.util.List;
import java.util.Optional;

/** The coordinator's view of the dataset: a resumable stream of training prompts and a held-out set. */
public interface PromptSource {

  /** The next training prompt, or empty when every epoch is done. */
  Optional<DatasetRow> next();

  /** Whether {@link #next()} has another prompt. */
  boolean hasNext();

  /** A training prompt by id (to re-issue it after a resume). */
  DatasetRow byId(long id);

  /** The held-out prompts evaluation uses; never produced by {@link #next()}. */
  List<DatasetRow> evalRows();

  /** The current epoch (0-based). */
  int epoch();

  /** The cursor position as bytes (for checkpoints). */
  byte[] snapshot();

  /** Continues from a {@link #snapshot()}. */
  void restore(byte[] snapshot);
}
