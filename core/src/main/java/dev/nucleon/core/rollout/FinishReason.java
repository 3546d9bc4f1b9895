package dev.nucleon.core.rollout;

/** Why a completion ended. */
public enum FinishReason {
  /** The model emitted one of the request's stop tokens; that token is the last completion token. */
  STOP,
  /** The completion reached the request's maximum number of new tokens; it has no stop token. */
  LENGTH
}
