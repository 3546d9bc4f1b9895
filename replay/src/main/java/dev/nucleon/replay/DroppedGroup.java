package dev.nucleon.replay;

/**
 * A queued group that a later filter dropped as a whole (for example after a policy version change made its samples
 * stale), so the caller can account for its prompt.
 */
public record DroppedGroup(long promptId, DropReason reason) {}
