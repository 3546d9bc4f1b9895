package dev.nucleon.core.env;

/**
 * A multi-turn environment: an episode starts from a dataset row, receives each model turn and answers with an
 * observation, an optional reward and whether it is done (the shape of Gymnasium's reset / step, with text).
 * Implementations must be safe to use from several threads at once (one episode per thread).
 */
public interface Environment extends AutoCloseable {

  /** Starts an episode. May throw: the guard turns it into a failed episode with the reason. */
  Episode start(EpisodeStart start);

  /**
   * Episodes the environment can hold at once (a remote environment's servers, say); the runner starts no more
   * than this many together. Unbounded by default.
   */
  default int capacity() {
    return Integer.MAX_VALUE;
  }

  /**
   * Special tokens, as text, that end a model's turn in this environment besides the model's own stop tokens (the
   * harmony format ends a tool call with {@code <|call|>}, which gpt-oss's generation config does not list); each must
   * be one token of the model's vocabulary. None by default.
   */
  default java.util.List<String> turnStops() {
    return java.util.List.of();
  }

  /** Releases what the environment holds; nothing by default. */
  @Override
  default void close() {}
}
