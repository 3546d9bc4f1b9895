package dev.nucleon.serve;

import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.Generator;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Batches concurrent requests onto one {@link Generator}: while a batch generates, new requests wait; the next batch
 * takes every waiting request (at most {@code maxWaiting}) and decodes at most {@code slots} at once, as a continuous
 * batch when more wait (a finished sequence's row takes the next request). Each request's tokens reach its
 * {@link Completion} as they are drawn, so a short request ends (and its HTTP answer goes out) before the longest
 * one of its batch.
 */
final class Batcher implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(Batcher.class);

  private record Item(GenerationRequest request, Completion completion) {}

  private final Generator generator;
  private final boolean slidingWindows;
  private final int slots;
  private final int maxWaiting;
  private final LinkedBlockingQueue<Item> queue = new LinkedBlockingQueue<>();
  private final Thread thread;
  private final AtomicLong batches = new AtomicLong();
  private final AtomicLong sequences = new AtomicLong();
  private volatile boolean closed;

  /**
   * @param slots sequences decoded at once
   * @param maxWaiting requests one batch takes at most (the rest wait for the next)
   */
  Batcher(Generator generator, int slots, int maxWaiting) {
    if (slots < 1 || maxWaiting < slots) {
      throw new IllegalArgumentException("need 1 <= slots <= max waiting, got " + slots + " and " + maxWaiting);
    }
    this.generator = generator;
    this.slidingWindows = generator.model().config().hasSlidingWindows();
    this.slots = slots;
    this.maxWaiting = maxWaiting;
    this.thread = new Thread(this::loop, "nucleon-serve-batcher");
    thread.setDaemon(true);
    thread.start();
  }

  /** Queues a prompt; its tokens arrive in the returned completion. */
  Completion submit(int[] prompt, dev.nucleon.model.generate.SamplingParams params, long seed) {
    Completion c = new Completion();
    if (closed) {
      c.fail(new IllegalStateException("the server is shutting down"));
      return c;
    }
    queue.add(new Item(new GenerationRequest(prompt, params, seed, c), c));
    return c;
  }

  /** Requests waiting for a batch. */
  int queued() {
    return queue.size();
  }

  /** Batches run so far and the sequences in them (for the log and the tests). */
  long[] counts() {
    return new long[] {batches.get(), sequences.get()};
  }

  private void loop() {
    while (!closed) {
      List<Item> batch = new ArrayList<>();
      try {
        batch.add(queue.take());
      } catch (InterruptedException e) {
        break;
      }
      // sliding-window models decode a call's requests all at once (no continuous batch): at most slots of them
      queue.drainTo(batch, (slidingWindows ? slots : maxWaiting) - 1);
      // requests cancelled while they waited (their client went away) are not generated
      batch.removeIf(i -> i.completion().cancelled() && failCancelled(i));
      if (batch.isEmpty()) {
        continue;
      }
      batches.incrementAndGet();
      sequences.addAndGet(batch.size());
      try {
        generator.generate(batch.stream().map(Item::request).toList(), Math.min(slots, batch.size()));
      } catch (RuntimeException e) {
        log.warn("a batch of {} requests failed: {}", batch.size(), e.toString());
        batch.forEach(i -> i.completion().fail(e));
      } catch (Throwable e) { // an Error (out of memory): the requests fail, the batcher goes on
        log.error("a batch of {} requests failed", batch.size(), e);
        IllegalStateException failure = new IllegalStateException("generation failed: " + e);
        batch.forEach(i -> i.completion().fail(failure));
      }
    }
    List<Item> left = new ArrayList<>();
    queue.drainTo(left);
    left.forEach(i -> i.completion().fail(new IllegalStateException("the server is shutting down")));
  }

  private static boolean failCancelled(Item i) {
    i.completion().fail(new java.util.concurrent.CancellationException("cancelled before it started"));
    return true;
  }

  @Override
  public void close() {
    closed = true;
    thread.interrupt();
    try {
      thread.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
