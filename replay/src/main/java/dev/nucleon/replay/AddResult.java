package dev.nucleon.replay;

/**
 * What {@link ReplayBuffer#add} did with one trajectory and its group.
 *
 * @param promptId the trajectory's prompt
 * @param sampleIndex the trajectory's sample index
 * @param sampleDropped why the trajectory itself was dropped on arrival ({@code STALE}, {@code FAILED_REWARD}), or
 *     {@code null} if it was kept (for now: a later filter may still drop it with its group)
 * @param group the group's state after this trajectory
 * @param groupDropped why the group was dropped when {@code group == DROPPED}, else {@code null}
 */
public record AddResult(
    long promptId, int sampleIndex, DropReason sampleDropped, GroupStatus group, DropReason groupDropped) {

  /** A group's state after an add. */
  public enum GroupStatus {
    /** Some of its G samples are still missing. */
    PENDING,
    /** Complete and queued for a training batch. */
    READY,
    /** Complete and dropped as a whole (see {@link AddResult#groupDropped()}). */
    DROPPED
  }

  /** Whether the trajectory survived arrival. */
  public boolean sampleKept() {
    return sampleDropped == null;
  }

  /** Whether this trajectory completed its group (queued or dropped). */
  public boolean groupCompleted() {
    return group != GroupStatus.PENDING;
  }
}
