package dev.nucleon.serve;

import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.generate.TokenListener;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One completion in the making: the generator's thread puts each drawn token here, the HTTP thread that serves the
 * request takes them (to stream them, or to wait for the end). Cancelling it (the client went away, a stop string
 * appeared) stops its generation at the next token.
 */
final class Completion implements TokenListener {

  /** A token, the end of the completion, or a failure of its batch. */
  record Event(int token, float logProb, FinishReason finish, RuntimeException error) {
    boolean last() {
      return finish != null || error != null;
    }
  }

  private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
  private volatile boolean cancelled;
  private volatile boolean ended;

  @Override
  public boolean onToken(int token, float modelLogProb, FinishReason finish) {
    if (cancelled) {
      end(new Event(token, modelLogProb, FinishReason.LENGTH, null));
      return false;
    }
    if (finish != null) {
      end(new Event(token, modelLogProb, finish, null));
    } else {
      events.add(new Event(token, modelLogProb, null, null));
    }
    return true;
  }

  private void end(Event e) {
    ended = true;
    events.add(e);
  }

  /** The batch this completion was in failed before it ended. */
  void fail(RuntimeException error) {
    if (!ended) {
      end(new Event(-1, 0f, null, error));
    }
  }

  /** Stops generating it at its next token. */
  void cancel() {
    cancelled = true;
  }

  boolean cancelled() {
    return cancelled;
  }

  /**
   * The next event, waiting at most {@code millis}.
   *
   * @throws java.util.concurrent.TimeoutException when none came in time
   */
  Event next(long millis) throws InterruptedException, java.util.concurrent.TimeoutException {
    Event e = events.poll(millis, TimeUnit.MILLISECONDS);
    if (e == null) {
      throw new java.util.concurrent.TimeoutException("no token in " + millis + " ms");
    }
    return e;
  }
}
