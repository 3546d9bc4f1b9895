package dev.nucleon.model.generate;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.RoutedExperts;
import dev.nucleon.model.KvCache;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Ops;
import dev.nucleon.model.Routing;
import dev.nucleon.model.io.HostTensor;
import java.nio.IntBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Batched autoregressive sampling with a KV cache, for rollouts.
 *
 * <p>The algorithm, per call of {@link #generate}:
 * <ol>
 *   <li>Left-pad the prompts to the longest one. Each sequence's positions count from its own first real token,
 *       and an additive mask hides the pad columns from every query, so a prompt gives the same logits alone or in
 *       a batch of longer ones.</li>
 *   <li>Prefill: one forward pass over all prompt tokens writes the KV cache (preallocated to prompt + max new
 *       tokens) and yields the logits of each prompt's last position. A prompt several requests share (a GRPO
 *       group's samples) is prefilled once, on the side, and its keys and values copied into each of their rows
 *       ({@link SharedPrompts}).</li>
 *   <li>Sample: each request draws from its own seeded random stream, with temperature and top-k / top-p
 *       truncation when asked, on the logits' device for large batches and vocabularies ({@link DeviceSampler}:
 *       only the drawn ids come back) and on the host for small ones. The log-prob of the drawn token under that
 *       distribution and under the raw model (temperature 1) are both kept.</li>
 *   <li>Decode: feed the drawn tokens as one new column, append to the cache in place, repeat until every request
 *       met a stop token or its token limit. Finished rows ride along until the batch ends.</li>
 *   <li>Between decode steps, apply any weight update that arrived ({@link #updateWeights}): the running
 *       sequences keep their cache and later tokens are tagged with the new version (in-flight update).</li>
 * </ol>
 *
 * <p>All tensor work runs on one thread owned by this generator, with autograd off on that thread. Calls from
 * other threads block until their batch is done.
 */
public final class Generator implements AutoCloseable {

  private final LlamaModel model;
  private final ExecutorService thread;
  private final ConcurrentLinkedQueue<WeightUpdate> updates = new ConcurrentLinkedQueue<>();
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Generator.class);

  private volatile int version;
  private volatile boolean closed;
  /** Why the newest queued version could not be applied, or null: generation refuses to go on with older weights. */
  private volatile IllegalStateException updateFailure;
  private final Object streamLock = new Object();
  /** Submissions the open continuous batch has not taken yet (guarded by streamLock). */
  private final java.util.ArrayDeque<Submission> submitted = new java.util.ArrayDeque<>();
  /** Whether the open continuous batch is queued or running on the thread; its rows (guarded by streamLock). */
  private boolean streamScheduled;
  private int streamSlots;
  /** Calls waiting for the thread other than the open batch, which takes no newcomers meanwhile. */
  private final java.util.concurrent.atomic.AtomicInteger othersWaiting =
      new java.util.concurrent.atomic.AtomicInteger();
  /** The longest prompt and largest new-token limit open batches took (generator thread): the next one's size. */
  private final int[] streamSize = new int[2];
  /** Row-columns a further block of a continuous batch's rows must save ({@link #blockPenalty}). */
  private final long readBlockPenalty;
  /** Prompt rows prefilled ({@link #prefilledRows()}). */
  private final java.util.concurrent.atomic.AtomicLong prefilledRows = new java.util.concurrent.atomic.AtomicLong();
  /** Rows a token was drawn for, finished and decoded idle ones included ({@link #rowSteps()}). */
  private final java.util.concurrent.atomic.AtomicLong rowSteps = new java.util.concurrent.atomic.AtomicLong();

  private record WeightUpdate(int version, Map<String, HostTensor> weights, Runnable applied) {}

  /**
   * @param model the policy; this generator's thread does all work on it from now on
   * @param version the policy version of its current weights
   */
  public Generator(LlamaModel model, int version) {
    this.model = model;
    this.version = version;
    this.readBlockPenalty = blockPenalty(model.config(), model.precision().compute());
    this.thread = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "nucleon-generator");
      t.setDaemon(true);
      return t;
    });
    call(() -> {
      JniUtils.setGradMode(false);
      return null;
    });
  }

  public LlamaModel model() {
    return model;
  }

  /**
   * Row-steps decoded so far: every forward pass that draws tokens adds its rows, those of finished sequences (a
   * static batch decodes them until its longest is done) and idle slots the step decodes included (the compiled
   * decode step leaves a continuous batch's idle rows out; the eager one decodes them). Tokens produced over this is
   * the share of decoding that was useful (bench generate's {@code slot_utilization}).
   */
  public long rowSteps() {
    return rowSteps.get();
  }

  /**
   * Prompt rows {@code generate} batches and continuous admissions prefilled so far (episodes' turns not counted):
   * one per distinct prompt of a batch or an admission, since requests that share a prompt (a GRPO group's samples)
   * take copies of its keys and values.
   */
  public long prefilledRows() {
    return prefilledRows.get();
  }

  /** The policy version of the weights in use now. */
  public int version() {
    return version;
  }

  /**
   * Queues new weights (internal parameter names, any subset). They are applied between two decode steps of a
   * running batch, or before the next batch when idle.
   */
  public void updateWeights(int newVersion, Map<String, HostTensor> weights) {
    updateWeights(newVersion, weights, null);
  }

  /**
   * As {@link #updateWeights(int, Map)}, then runs {@code applied} on the generator's thread once the weights were
   * copied into the model: from then on the caller may reuse the host arrays (for the next version's download).
   */
  public void updateWeights(int newVersion, Map<String, HostTensor> weights, Runnable applied) {
    updates.add(new WeightUpdate(newVersion, weights, applied));
    thread.execute(this::applyUpdates);
  }

  /**
   * Applies the queued versions in order. A version the model refuses (wrong names or shapes, an adapter for
   * other settings) is logged and remembered: the next generate call fails with the reason instead of sampling on
   * with weights the caller believes replaced, until a later version applies.
   */
  void applyUpdates() {
    WeightUpdate u;
    while ((u = updates.poll()) != null) {
      try {
        model.loadParameters(u.weights());
        version = u.version();
        updateFailure = null;
      } catch (RuntimeException e) {
        updateFailure = new IllegalStateException("policy version " + u.version() + " could not be applied to the "
            + "rollout model (it still holds version " + version + "): " + e.getMessage(), e);
        LOG.error(updateFailure.getMessage(), e);
      } finally {
        if (u.applied() != null) {
          u.applied().run();
        }
      }
    }
  }

  /** Applies queued versions, and refuses to generate when the newest could not be applied. */
  private void applyUpdatesOrFail() {
    applyUpdates();
    IllegalStateException failure = updateFailure;
    if (failure != null) {
      throw failure;
    }
  }

  /** Whether {@link #close} was called: a running batch stops at its next step. */
  boolean isClosed() {
    return closed;
  }

  /**
   * Generates multi-turn episodes together, on the generator's thread without blocking the caller: each model turn
   * is followed by what {@code handler} answers, fed into the same KV cache (see {@link TurnHandler}); results are in
   * request order. A mixture-of-experts model's choices are recorded for every position an episode read (its prompt,
   * turns and answers), for routing replay.
   */
  public java.util.concurrent.CompletableFuture<List<EpisodeResult>> generateEpisodesAsync(
      List<EpisodeRequest> requests, TurnHandler handler) {
    return generateEpisodesAsync(requests, handler, 0);
  }

  /**
   * As {@link #generateEpisodesAsync(List, TurnHandler)}, at most {@code slots} episodes at a time (0: all at once):
   * the episodes run in consecutive batches of {@code slots}, which bounds the KV cache. The handler is called with
   * each episode's index in {@code requests}.
   */
  public java.util.concurrent.CompletableFuture<List<EpisodeResult>> generateEpisodesAsync(
      List<EpisodeRequest> requests, TurnHandler handler, int slots) {
    java.util.Objects.requireNonNull(handler, "handler");
    java.util.concurrent.CompletableFuture<List<EpisodeResult>> result =
        new java.util.concurrent.CompletableFuture<>();
    if (requests.isEmpty()) {
      result.complete(List.of());
      return result;
    }
    int chunk = slots > 0 ? slots : requests.size();
    execute(() -> {
      try {
        List<EpisodeResult> out = new ArrayList<>(requests.size());
        for (int from = 0; from < requests.size(); from += chunk) {
          applyUpdatesOrFail();
          int offset = from;
          List<EpisodeRequest> part = requests.subList(from, Math.min(requests.size(), from + chunk));
          out.addAll(new EpisodeBatch(this, part, (e, turn, tokens, reason) -> handler.next(offset + e, turn, tokens,
              reason)).run());
        }
        result.complete(out);
      } catch (RuntimeException | Error e) {
        result.completeExceptionally(e);
      }
    });
    return result;
  }

  /** As {@link #generateEpisodesAsync(List, TurnHandler)}, waiting for the results. */
  public List<EpisodeResult> generateEpisodes(List<EpisodeRequest> requests, TurnHandler handler) {
    return generateEpisodesAsync(requests, handler).join();
  }

  /** Completes every request as one batch; results are in request order. */
  public List<GenerationResult> generate(List<GenerationRequest> requests) {
    return generate(requests, 0);
  }

  /**
   * Completes every request, at most {@code slots} at a time (0: all at once); results are in request order. With
   * fewer slots than requests the batch is continuous: the slot of a finished sequence takes the next waiting request
   * (its prompt prefilled on the side and placed in that row of the KV cache), so no row decodes for a sequence that
   * is done while requests wait.
   */
  public List<GenerationResult> generate(List<GenerationRequest> requests, int slots) {
    if (requests.isEmpty()) {
      return List.of();
    }
    return call(() -> run(requests, slots));
  }

  /**
   * Completes every request on the generator's thread without blocking the caller (actors use this and pipe the
   * result back to themselves).
   */
  public java.util.concurrent.CompletableFuture<List<GenerationResult>> generateAsync(
      List<GenerationRequest> requests) {
    return generateAsync(requests, 0);
  }

  /** As {@link #generateAsync(List)}, at most {@code slots} at a time (see {@link #generate(List, int)}). */
  public java.util.concurrent.CompletableFuture<List<GenerationResult>> generateAsync(
      List<GenerationRequest> requests, int slots) {
    java.util.concurrent.CompletableFuture<List<GenerationResult>> result =
        new java.util.concurrent.CompletableFuture<>();
    if (requests.isEmpty()) {
      result.complete(List.of());
      return result;
    }
    execute(() -> {
      try {
        result.complete(run(requests, slots));
      } catch (RuntimeException | Error e) {
        result.completeExceptionally(e);
      }
    });
    return result;
  }

  /**
   * Requests sent to the generator's open continuous batch: {@link #results} completes once the last of them is done
   * (or fails with the cause), {@link #admitted} once none of them waits for a row any more (each has one, is done,
   * or failed).
   */
  public record Submitted(java.util.concurrent.CompletableFuture<List<GenerationResult>> results,
      java.util.concurrent.CompletableFuture<Void> admitted) {}

  /**
   * Sends requests to the generator's open continuous batch, which keeps its rows filled across submissions: a
   * batch that is running takes them into rows as its sequences finish, and otherwise one starts with {@code slots}
   * rows (a running batch keeps its own count). Each submission's results are delivered as soon as its own last
   * request is done, however long the others run. Calls that need the generator's thread ({@link #generate},
   * {@link #score}, episodes) make the open batch take no newcomers until they ran: it finishes what it took, they
   * run, and it goes on. Newcomers taken while the newest weight version could not be applied fail with the reason
   * (the rows running go on with the weights they have). Not for models with sliding-window layers (whose windows
   * count cache columns, which a continuous batch reuses out of order): {@link #streams()}.
   *
   * @throws IllegalArgumentException for {@code slots < 1}
   * @throws IllegalStateException for a model with sliding-window layers
   */
  public Submitted submit(List<GenerationRequest> requests, int slots) {
    return submitAll(List.of(requests), slots).get(0);
  }

  /**
   * As {@link #submit} for several submissions at once: the open batch takes them together (a batch that starts
   * with them prefills them side by side, as one call would), each delivered on its own.
   */
  public List<Submitted> submitAll(List<List<GenerationRequest>> submissions, int slots) {
    if (slots < 1) {
      throw new IllegalArgumentException("slots must be at least 1, got " + slots);
    }
    if (!streams()) {
      throw new IllegalStateException("a model with sliding-window layers decodes in static batches, not in an open "
          + "continuous one");
    }
    List<Submitted> out = new ArrayList<>(submissions.size());
    List<Submission> queued = new ArrayList<>(submissions.size());
    for (List<GenerationRequest> requests : submissions) {
      Submission sub = new Submission(requests);
      out.add(new Submitted(sub.results, sub.admitted));
      if (requests.isEmpty()) {
        sub.results.complete(List.of());
        sub.admitted.complete(null);
        continue;
      }
      try {
        check(requests);
        queued.add(sub);
      } catch (IllegalArgumentException e) {
        sub.fail(e);
      }
    }
    if (queued.isEmpty()) {
      return out;
    }
    synchronized (streamLock) {
      if (closed) {
        java.util.concurrent.CancellationException e =
            new java.util.concurrent.CancellationException("the generator is closed");
        queued.forEach(sub -> sub.fail(e));
        return out;
      }
      submitted.addAll(queued);
      if (!streamScheduled) {
        streamScheduled = true;
        streamSlots = slots;
        thread.execute(this::runStream);
      }
    }
    return out;
  }

  /** Whether this generator's model can decode in an open continuous batch ({@link #submit}). */
  public boolean streams() {
    return !model.config().hasSlidingWindows();
  }

  /**
   * Runs the open continuous batch until it has nothing to decode, then queues itself again behind the other calls
   * if submissions arrived meanwhile.
   */
  private void runStream() {
    int slots;
    synchronized (streamLock) {
      slots = streamSlots;
    }
    try {
      continuousBatch(() -> {
        if (othersWaiting.get() > 0) {
          return List.of(); // another call waits for the thread: take nothing new until it ran
        }
        IllegalStateException refused = updateFailure;
        if (refused != null) {
          failSubmitted(refused); // the newest version could not be applied: no newcomer samples older weights
          return List.of();
        }
        synchronized (streamLock) {
          if (submitted.isEmpty()) {
            return List.of(); // the common case: asked before every decode step
          }
          List<Submission> taken = new ArrayList<>(submitted);
          submitted.clear();
          return taken;
        }
      }, slots, streamSize);
    } catch (RuntimeException | Error e) {
      LOG.warn("the open continuous batch failed; its submissions fail with the cause: {}", e.toString());
      failSubmitted(e);
    } finally {
      synchronized (streamLock) {
        if (submitted.isEmpty()) {
          streamScheduled = false;
        } else if (closed) {
          failSubmitted(new java.util.concurrent.CancellationException("the generator was closed"));
        } else {
          thread.execute(this::runStream); // behind the calls that made it stop taking newcomers
        }
      }
    }
  }

  /** Fails the submissions no batch took yet with {@code cause}. */
  private void failSubmitted(Throwable cause) {
    synchronized (streamLock) {
      submitted.forEach(sub -> sub.fail(cause));
      submitted.clear();
    }
  }

  /** Runs {@code task} on the generator's thread; meanwhile the open continuous batch takes no newcomers. */
  private void execute(Runnable task) {
    java.util.concurrent.atomic.AtomicBoolean waits = waitForThread();
    try {
      thread.execute(() -> {
        stopWaiting(waits);
        task.run();
      });
    } catch (java.util.concurrent.RejectedExecutionException e) {
      stopWaiting(waits);
      throw e;
    }
  }

  /** Counts a call waiting for the thread; {@link #stopWaiting} uncounts it once, when it runs or never will. */
  private java.util.concurrent.atomic.AtomicBoolean waitForThread() {
    othersWaiting.incrementAndGet();
    return new java.util.concurrent.atomic.AtomicBoolean(true);
  }

  private void stopWaiting(java.util.concurrent.atomic.AtomicBoolean waits) {
    if (waits.compareAndSet(true, false)) {
      othersWaiting.decrementAndGet();
    }
  }

  /**
   * The model's next-token distribution along a sequence (temperature 1, the weights in use now), on the generator's
   * thread between batches.
   *
   * @param logProbs entry {@code t}: the log-prob of token {@code t + 1} given the tokens before it
   * @param topIds entry {@code t}: the {@code k} most likely tokens at that position, most likely first
   * @param topLogProbs their log-probs
   */
  public record Scored(float[] logProbs, int[][] topIds, float[][] topLogProbs) {}

  /**
   * Scores a sequence (a prompt and its completion, for log-probs of every token and the most likely alternatives).
   *
   * @param topK alternatives per position, 0 for none
   */
  public Scored score(int[] sequence, int topK) {
    if (sequence.length < 2) {
      return new Scored(new float[0], new int[0][], new float[0][]);
    }
    return call(() -> {
      applyUpdatesOrFail();
      checkIds(sequence);
      if (sequence.length > model.maxPositions()) {
        throw new IllegalArgumentException(sequence.length + " tokens exceed the model's max_position_embeddings "
            + model.maxPositions());
      }
      int n = sequence.length - 1;
      try (NDManager m = model.manager().newSubManager()) {
        long[] ids = new long[sequence.length];
        long[] at = new long[n];
        long[] next = new long[n];
        for (int i = 0; i < sequence.length; i++) {
          ids[i] = sequence[i];
        }
        for (int i = 0; i < n; i++) {
          at[i] = i;
          next[i] = sequence[i + 1];
        }
        NDArray all = model.logSoftmaxAt(m.create(ids, new Shape(1, sequence.length)), m.create(at), 1f);
        float[] picked = LlamaModel.pick(all, m.create(next)).toFloatArray();
        int[][] topIds = new int[n][];
        float[][] topLp = new float[n][];
        if (topK > 0) {
          int k = Math.min(topK, model.config().vocabSize());
          ai.djl.ndarray.NDList top = all.topK(k, -1, true, true);
          float[] values = top.get(0).toFloatArray();
          long[] indices = top.get(1).toType(DataType.INT64, false).toLongArray();
          for (int i = 0; i < n; i++) {
            topIds[i] = new int[k];
            topLp[i] = new float[k];
            for (int j = 0; j < k; j++) {
              topIds[i][j] = (int) indices[i * k + j];
              topLp[i][j] = values[i * k + j];
            }
          }
        }
        return new Scored(picked, topIds, topLp);
      }
    });
  }

  /**
   * Starts libtorch's profiler on the generator's thread (where every op of a batch runs; the profiler records the
   * thread that started it).
   */
  public void startProfile() {
    call(() -> {
      JniUtils.startProfile(false, false, false);
      return null;
    });
  }

  /** Stops the profiler and writes what it recorded as a Chrome trace (JSON) to {@code file}. */
  public void stopProfile(java.nio.file.Path file) {
    call(() -> {
      JniUtils.stopProfile(file.toAbsolutePath().toString());
      return null;
    });
  }

  private <T> T call(java.util.concurrent.Callable<T> task) {
    java.util.concurrent.atomic.AtomicBoolean waits = waitForThread();
    Future<T> f;
    try {
      f = thread.submit(() -> {
        stopWaiting(waits);
        return task.call();
      });
    } catch (java.util.concurrent.RejectedExecutionException e) {
      stopWaiting(waits);
      throw e;
    }
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      f.cancel(true);
      stopWaiting(waits); // a task cancelled before it ran no longer waits
      throw new IllegalStateException("interrupted while generating", e);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof RuntimeException re) {
        throw re;
      }
      if (c instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(c);
    }
  }

  /** Refuses a token id outside the model's vocabulary. */
  void checkIds(int[] ids) {
    int vocab = model.config().vocabSize();
    for (int t : ids) {
      if (t < 0 || t >= vocab) {
        throw new IllegalArgumentException("prompt token " + t + " outside vocabulary of " + vocab);
      }
    }
  }

  /** Checks every request; returns the longest prompt plus new tokens. */
  private int check(List<GenerationRequest> requests) {
    int longest = 0;
    for (GenerationRequest r : requests) {
      checkIds(r.prompt());
      longest = Math.max(longest, r.prompt().length + r.params().maxNewTokens());
    }
    if (longest > model.maxPositions()) {
      throw new IllegalArgumentException("prompt plus max new tokens (" + longest
          + ") exceeds the model's max_position_embeddings " + model.maxPositions());
    }
    return longest;
  }

  private List<GenerationResult> run(List<GenerationRequest> requests, int slots) {
    // sliding-window layers measure their window in cache columns, which a continuous batch reuses out of order
    if (slots > 0 && slots < requests.size() && streams()) {
      return runContinuous(requests, slots);
    }
    return run(requests);
  }

  private List<GenerationResult> run(List<GenerationRequest> requests) {
    applyUpdatesOrFail();
    check(requests);
    int b = requests.size();
    int vocab = model.config().vocabSize();
    int promptLen = 0;
    int maxNew = 0;
    for (GenerationRequest r : requests) {
      promptLen = Math.max(promptLen, r.prompt().length);
      maxNew = Math.max(maxNew, r.params().maxNewTokens());
    }
    int capacity = promptLen + maxNew;
    int[] pad = new int[b];
    for (int i = 0; i < b; i++) {
      pad[i] = promptLen - requests.get(i).prompt().length;
    }
    Batch state = new Batch(requests, model.config().moe());
    try (NDManager batchManager = model.manager().newSubManager();
        KvCache cache = new KvCache(batchManager, model.config(), b, capacity,
            model.precision().compute())) {
      NDArray padMask = padMask(batchManager, pad, capacity);
      int[] rows = identity(b);
      try (NDManager step = batchManager.newSubManager()) {
        List<int[]> prompts = requests.stream().map(GenerationRequest::prompt).toList();
        SharedPrompts shared = SharedPrompts.of(prompts, rows);
        NDArray logits;
        if (shared.distinct() == b) {
          logits = prefill(prompts, shared.requestsOf(), pad, promptLen, cache, state, step);
        } else {
          // the rows of a prompt many requests share (a GRPO group's) take copies of one prefilled row
          try (NDManager side = step.newSubManager();
              KvCache prefill = new KvCache(side, model.config(), shared.distinct(), promptLen,
                  model.precision().compute())) {
            logits = prefillDistinct(shared, promptLen, prefill, state, step);
            cache.advance(promptLen);
            cache.placeRows(prefill, shared.rowOf(), rows);
          }
        }
        state.sample(logits, rows, vocab, version);
      }
      for (int s = 1; s < maxNew && !state.allDone() && !closed; s++) {
        applyUpdates();
        try (NDManager step = batchManager.newSubManager()) {
          long[] tokens = new long[b];
          long[] positions = new long[b];
          for (int i = 0; i < b; i++) {
            tokens[i] = state.lastToken(i);
            positions[i] = promptLen + s - 1 - pad[i];
          }
          int len = cache.length() + 1;
          NDArray mask = Ops.slice(padMask, 3, 0, len, step);
          Routing routing = state.routing();
          NDArray logits = model.forward(step.create(tokens, new Shape(b, 1)), step.create(positions, new Shape(b, 1)),
              mask, cache, true, routing);
          state.routedLastTokens(routing, rows);
          state.sample(logits, rows, vocab, version);
        }
      }
    }
    if (closed && !state.allDone()) {
      throw new java.util.concurrent.CancellationException("the generator was closed during the batch");
    }
    return state.results();
  }

  /**
   * One forward pass over prompts left-padded to {@code promptLen} ({@code pad[i]} pad tokens before prompt i, hidden
   * from every query; positions count from each prompt's first real token), written into {@code cache}; returns the
   * logits of each row's last position. Row i is the prompt of requests {@code requests[i]} of {@code state}, which
   * records the prompt tokens' expert choices for each of them.
   */
  private NDArray prefill(List<int[]> prompts, int[][] requests, int[] pad, int promptLen, KvCache cache,
      Batch state, NDManager m) {
    int b = prompts.size();
    long[] tokens = new long[b * promptLen];
    long[] positions = new long[b * promptLen];
    for (int i = 0; i < b; i++) {
      int[] p = prompts.get(i);
      for (int c = 0; c < promptLen; c++) {
        tokens[i * promptLen + c] = c < pad[i] ? 0 : p[c - pad[i]];
        positions[i * promptLen + c] = Math.max(0, c - pad[i]);
      }
    }
    NDArray mask = LlamaModel.causalMask(m, promptLen).add(padMask(m, pad, promptLen));
    Routing routing = state.routing();
    NDArray logits = model.forward(m.create(tokens, new Shape(b, promptLen)),
        m.create(positions, new Shape(b, promptLen)), mask, cache, true, routing);
    prefilledRows.addAndGet(b);
    if (routing != null) {
      for (int i = 0; i < b; i++) {
        for (int q : requests[i]) {
          for (int c = pad[i]; c < promptLen; c++) {
            state.route(routing, i * promptLen + c, q, c - pad[i]);
          }
        }
      }
    }
    return logits;
  }

  /**
   * Prefills {@code shared}'s distinct prompts into {@code side} (as many rows) and returns the logits of the rows
   * given to {@link SharedPrompts#of}, one per row, owned by {@code owner}.
   */
  private NDArray prefillDistinct(SharedPrompts shared, int promptLen, KvCache side, Batch state, NDManager owner) {
    try (NDManager m = owner.newSubManager()) { // the prefill's inputs and per-prompt logits, freed here
      return shared.perRow(prefill(shared.prompts(), shared.requestsOf(), shared.pad(promptLen), promptLen, side,
          state, m), owner);
    }
  }

  private static int[] identity(int n) {
    int[] rows = new int[n];
    for (int i = 0; i < n; i++) {
      rows[i] = i;
    }
    return rows;
  }

  /**
   * A continuous batch of {@code slots} rows over one KV cache, for a fixed set of requests: see
   * {@link #continuousBatch}.
   */
  private List<GenerationResult> runContinuous(List<GenerationRequest> requests, int slots) {
    check(requests);
    Submission all = new Submission(requests);
    boolean[] taken = new boolean[1];
    continuousBatch(() -> {
      if (taken[0]) {
        return List.of();
      }
      taken[0] = true;
      return List.of(all);
    }, slots, new int[2]);
    try {
      return all.results.join();
    } catch (java.util.concurrent.CompletionException e) {
      throw e.getCause() instanceof RuntimeException re ? re : e;
    }
  }

  /** Requests sent together: their results are delivered together, once the last of them is done. */
  private static final class Submission {
    final List<GenerationRequest> requests;
    final java.util.concurrent.CompletableFuture<List<GenerationResult>> results =
        new java.util.concurrent.CompletableFuture<>();
    /** Completes once none of its requests waits for a row (each has one, finished, or the batch failed). */
    final java.util.concurrent.CompletableFuture<Void> admitted = new java.util.concurrent.CompletableFuture<>();
    /** Its first request's index in the batch that took it. */
    int first = -1;

    Submission(List<GenerationRequest> requests) {
      this.requests = List.copyOf(requests);
    }

    /** One past its last request's index in the batch that took it. */
    int end() {
      return first + requests.size();
    }

    void fail(Throwable e) {
      admitted.complete(null);
      results.completeExceptionally(e);
    }
  }

  /** Where a continuous batch takes its requests from, before every decode step. */
  private interface Source {
    /** Submissions to add now; none when there are none (yet, or any more). */
    List<Submission> take();
  }

  /**
   * A continuous batch of {@code slots} rows over one KV cache, fed by {@code source}; it ends once its rows are done
   * and the source has nothing more. Each submission's results are delivered as soon as its last request is done.
   * Cache columns are storage, not positions: every row keeps its own position counter, and a host-side mask hides
   * the columns that are not the row's own. A newcomer's prompt is prefilled on the side (left-padded with the other
   * newcomers of that step) and copied into its row at the columns ending at the cache's length, with the columns
   * before it masked. Rows stay ordered from the oldest sequence to the youngest (running rows move up when
   * newcomers are admitted), so each decode step can read the cache in blocks of rows that skip the columns none of
   * their rows sees ({@link #readBlocks}). The columns before the oldest running sequence are dropped when they are an
   * eighth of the length, and while no request waits the batch shrinks to its running rows (growing back to
   * {@code slots} rows when newcomers come). The cache holds the longest prompt plus the largest new-token limit
   * taken so far, plus an eighth of that (16 columns at least); it grows when a newcomer needs more.
   *
   * @param size the longest prompt and largest new-token limit to make room for from the start; updated with those
   *     the batch took
   */
  private void continuousBatch(Source source, int slots, int[] size) {
    Batch state = new Batch(List.of(), model.config().moe());
    // taken and not delivered, in order; of those, the ones with requests still waiting for a row (requests are
    // added and admitted in order: the waiting ones are [next, state.size()), the first of them queued's head's)
    List<Submission> open = new ArrayList<>();
    java.util.ArrayDeque<Submission> queued = new java.util.ArrayDeque<>();
    int next = 0;
    java.util.function.Consumer<List<Submission>> add = taken -> {
      for (Submission sub : taken) {
        sub.first = state.add(sub.requests);
        open.add(sub);
        queued.add(sub);
        for (GenerationRequest r : sub.requests) {
          size[0] = Math.max(size[0], r.prompt().length);
          size[1] = Math.max(size[1], r.params().maxNewTokens());
        }
      }
    };
    try {
      applyUpdatesOrFail();
      add.accept(source.take());
      if (open.isEmpty()) {
        return;
      }
      int vocab = model.config().vocabSize();
      // a running row spans at most the longest prompt plus its own new tokens (grown columns included); the slack
      // keeps drops of a full cache rare
      int capacity = continuousCapacity(size[0] + size[1]);
      Rows rows = new Rows(slots, capacity);
      try (NDManager batchManager = model.manager().newSubManager();
          KvCache cache = new KvCache(batchManager, model.config(), slots, capacity, model.precision().compute())) {
        while (!closed) {
          applyUpdates();
          add.accept(source.take());
          if (continuousCapacity(size[0] + size[1]) > capacity) {
            capacity = continuousCapacity(size[0] + size[1]); // a newcomer longer than any before
            cache.grow(capacity);
            rows.growCapacity(capacity);
          }
          boolean waiting = next < state.size();
          if (waiting && rows.count() < slots) {
            cache.growRows(slots); // newcomers after the batch shrank
            rows.growRows(slots);
          }
          int running = rows.running();
          int idle = rows.count() - running;
          // newcomers are prefilled together once an eighth of the rows is free (a prefill per finished row would
          // cost a forward pass each), or when every row is free
          if (waiting && idle > 0 && (idle >= Math.max(1, rows.count() / 8) || running == 0)) {
            List<Integer> newcomers = new ArrayList<>();
            while (newcomers.size() < idle && next < state.size()) {
              newcomers.add(next++);
              if (next == queued.peek().end()) {
                queued.poll().admitted.complete(null);
              }
            }
            // the running rows move up, in their order, and newcomers take the rows after them: rows stay ordered
            // from the oldest sequence to the youngest, so blocks of consecutive rows can read fewer columns
            int[] order = rows.runningFirst();
            if (!Arrays.equals(order, identity(order.length))) {
              int[] moved = Arrays.copyOf(order, running);
              cache.compactRows(moved, rows.firstColumns(moved));
              rows.reorder(order);
            }
            admit(newcomers, running, state, cache, rows, batchManager);
            running = rows.running();
            deliver(open, state); // newcomers may have finished on their first token
          }
          if (running == 0) {
            if (next == state.size() && open.isEmpty()) {
              List<Submission> more = source.take();
              if (more.isEmpty()) {
                break;
              }
              add.accept(more);
            }
            continue; // every newcomer finished on its first token: admit the next ones
          }
          if (decodeStep(state, cache, rows, vocab, batchManager)) {
            deliver(open, state);
          }
          // nothing waits: once a quarter of the rows is idle, the batch shrinks to its running rows (moved up in
          // place) instead of decoding rows for sequences that are done
          running = rows.running();
          if (next == state.size() && running > 0 && rows.count() - running >= Math.max(1, rows.count() / 4)) {
            int[] keep = Arrays.copyOf(rows.runningFirst(), running);
            cache.keepRows(keep, rows.firstColumns(keep));
            rows.reorder(keep);
          }
        }
      }
      if (closed) {
        java.util.concurrent.CancellationException e =
            new java.util.concurrent.CancellationException("the generator was closed during the batch");
        open.forEach(sub -> sub.fail(e));
      }
    } catch (RuntimeException | Error e) {
      open.forEach(sub -> sub.fail(e));
      throw e;
    }
  }

  /** Cache columns of a continuous batch whose rows span at most {@code span} (prompt plus new tokens). */
  private static int continuousCapacity(int span) {
    return span + Math.max(16, span / 8);
  }

  /** Delivers the results of the submissions whose requests are all done, and frees their state. */
  private static void deliver(List<Submission> open, Batch state) {
    for (java.util.Iterator<Submission> it = open.iterator(); it.hasNext(); ) {
      Submission sub = it.next();
      int end = sub.end();
      if (state.allDone(sub.first, end)) {
        List<GenerationResult> results = state.results(sub.first, end);
        state.release(sub.first, end);
        it.remove();
        sub.results.complete(results);
      }
    }
  }

  /** One decode step of a continuous batch's rows; finished requests leave their rows. Returns whether any did. */
  private boolean decodeStep(Batch state, KvCache cache, Rows rows, int vocab, NDManager batchManager) {
    int[] read = rows.readFrom(-1);
    int oldest = Integer.MAX_VALUE;
    for (int f : read) {
      if (f >= 0) {
        oldest = Math.min(oldest, f);
      }
    }
    // the columns no running row sees: the decode script's blocks skip them, the eager path reads them every step;
    // they are dropped once they are an eighth of the length, and always when the cache is full: each run of rows
    // moves the columns it reads (the blocks a step would read in, none from column 0 as oldest > 0), in place
    if (oldest > 0 && (cache.length() + 1 > cache.capacity() || oldest >= Math.max(16, cache.length() / 8))) {
      int[][] runs = readBlocks(read, cache.length(), MAX_READ_BLOCKS, readBlockPenalty);
      cache.dropFront(oldest, runs[0], runs[1], runs[2]);
      rows.dropFront(oldest);
    }
    try (NDManager step = batchManager.newSubManager()) {
      // the compiled step decodes the running rows only (KvCache.readInBlocks leaves the idle ones out); the eager
      // path decodes every row, idle ones reading their own column
      boolean leaveOut = model.decodesScripted();
      int len = cache.length() + 1;
      int[] first = rows.readFrom(leaveOut ? -1 : len - 1);
      int n = 0;
      for (int f : first) {
        n += f >= 0 ? 1 : 0;
      }
      int[] requests = new int[n];
      long[] tokens = new long[n];
      long[] positions = new long[n];
      float[] stepMask = new float[n * len];
      for (int r = 0, i = 0; r < first.length; r++) {
        int q = rows.request[r];
        if (first[r] < 0) {
          continue;
        }
        requests[i] = q;
        if (q >= 0) {
          tokens[i] = state.lastToken(q);
          positions[i] = rows.position[r];
          System.arraycopy(rows.mask, r * rows.capacity, stepMask, i * len, len);
        } else {
          Arrays.fill(stepMask, i * len, (i + 1) * len - 1, LlamaModel.MASKED); // idle: its own column only
        }
        i++;
      }
      int[][] blocks = readBlocks(first, len, MAX_READ_BLOCKS, readBlockPenalty);
      if (blocks != null) {
        cache.readInBlocks(blocks[0], blocks[1], blocks[2]);
      }
      Routing routing = state.routing();
      NDArray logits = model.forward(step.create(tokens, new Shape(n, 1)), step.create(positions, new Shape(n, 1)),
          step.create(stepMask, new Shape(n, 1, 1, len)), cache, true, routing);
      state.routedLastTokens(routing, requests);
      state.sample(logits, requests, vocab, version);
    }
    boolean finished = false;
    for (int r = 0; r < rows.count(); r++) {
      int q = rows.request[r];
      if (q >= 0) {
        rows.position[r]++;
        if (state.done(q)) {
          rows.request[r] = -1;
          finished = true;
        }
      }
    }
    return finished;
  }

  /**
   * The host side of a continuous batch's rows, in cache order: the request each decodes (-1: idle), the position of
   * its next token, its first cache column, and its additive mask over the cache's {@code capacity} columns.
   */
  private static final class Rows {
    int capacity;
    int[] request;
    int[] position;
    int[] firstColumn;
    float[] mask;

    Rows(int count, int capacity) {
      this.capacity = capacity;
      request = new int[count];
      Arrays.fill(request, -1);
      position = new int[count];
      firstColumn = new int[count];
      mask = new float[count * capacity];
    }

    int count() {
      return request.length;
    }

    int running() {
      int n = 0;
      for (int q : request) {
        if (q >= 0) {
          n++;
        }
      }
      return n;
    }

    /** Enlarges every row's mask to {@code newCapacity} columns (as the cache grew); the new columns are visible. */
    void growCapacity(int newCapacity) {
      float[] grown = new float[count() * newCapacity];
      for (int r = 0; r < count(); r++) {
        System.arraycopy(mask, r * capacity, grown, r * newCapacity, capacity);
      }
      mask = grown;
      capacity = newCapacity;
    }

    /** Adds idle rows up to {@code n} (as the cache's batch grew back). */
    void growRows(int n) {
      int before = count();
      request = Arrays.copyOf(request, n);
      Arrays.fill(request, before, n, -1);
      position = Arrays.copyOf(position, n);
      firstColumn = Arrays.copyOf(firstColumn, n);
      mask = Arrays.copyOf(mask, n * capacity);
    }

    /** Each row's first column to read: its own for a running row, {@code idle} for an idle one. */
    int[] readFrom(int idle) {
      int[] out = new int[count()];
      for (int r = 0; r < out.length; r++) {
        out[r] = request[r] >= 0 ? firstColumn[r] : idle;
      }
      return out;
    }

    /** The first columns of rows {@code which}. */
    int[] firstColumns(int[] which) {
      int[] out = new int[which.length];
      for (int i = 0; i < which.length; i++) {
        out[i] = firstColumn[which[i]];
      }
      return out;
    }

    /** The running rows in their order, then the idle ones in theirs. */
    int[] runningFirst() {
      int[] order = new int[count()];
      int k = 0;
      for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < count(); r++) {
          if ((request[r] >= 0) == (pass == 0)) {
            order[k++] = r;
          }
        }
      }
      return order;
    }

    /** Row i becomes row {@code order[i]}, keeping {@code order.length} rows (as the cache's rows were moved). */
    void reorder(int[] order) {
      int[] nextRequest = new int[order.length];
      int[] nextPosition = new int[order.length];
      int[] nextFirst = new int[order.length];
      float[] nextMask = new float[order.length * capacity];
      for (int i = 0; i < order.length; i++) {
        nextRequest[i] = request[order[i]];
        nextPosition[i] = position[order[i]];
        nextFirst[i] = firstColumn[order[i]];
        System.arraycopy(mask, order[i] * capacity, nextMask, i * capacity, capacity);
      }
      request = nextRequest;
      position = nextPosition;
      firstColumn = nextFirst;
      mask = nextMask;
    }

    /** The cache dropped its first {@code n} columns. */
    void dropFront(int n) {
      for (int r = 0; r < count(); r++) {
        System.arraycopy(mask, r * capacity + n, mask, r * capacity, capacity - n);
        Arrays.fill(mask, r * capacity + capacity - n, (r + 1) * capacity, 0f);
        firstColumn[r] = Math.max(0, firstColumn[r] - n);
      }
    }

    /** Row {@code r} starts decoding request {@code q} at {@code position}; its own columns start at {@code first}. */
    void place(int r, int q, int nextPosition, int first) {
      request[r] = q;
      position[r] = nextPosition;
      firstColumn[r] = first;
      Arrays.fill(mask, r * capacity, r * capacity + first, LlamaModel.MASKED);
      Arrays.fill(mask, r * capacity + first, (r + 1) * capacity, 0f);
    }
  }

  /**
   * At most this many blocks of rows read a continuous batch's cache in one decode step, unless the idle rows it
   * leaves out split the running ones into more runs ({@link #readBlocks}).
   */
  static final int MAX_READ_BLOCKS = 16;

  /**
   * What a further block of rows costs a decode step, in bytes of cache read per layer: its dozen ops per layer
   * (slices, two products, the mask's add, softmax, the concatenation's share) took about as long as reading 160-170
   * more row-columns of a d=512 float32 cache (32 KiB each over its 8 layers), measured by alternating block rules
   * step by step in runs of {@code bench generate --lengths 16-256 --batching continuous}.
   */
  static final long BLOCK_COST_BYTES = 640 << 10;

  /**
   * Row-columns a further block must save to pay for itself in {@code config}'s cache of element type
   * {@code type}: {@link #BLOCK_COST_BYTES} over what one row-column of a layer holds (keys and values of every KV
   * head, or a latent layer's compressed row).
   */
  static long blockPenalty(LlamaConfig config, DataType type) {
    LlamaConfig.Latent latent = config.latent();
    long perColumn = latent != null ? latent.kvLoraRank() + latent.qkRopeDim()
        : 2L * config.numKvHeads() * config.headDim();
    return Math.max(1, BLOCK_COST_BYTES / (perColumn * type.getNumOfBytes()));
  }

  /**
   * How a continuous batch's decode step reads the cache ({@link KvCache#readInBlocks}): rows (in cache order, row r
   * needing the columns from {@code first[r]} to {@code end}, or none when {@code first[r] < 0}: an idle row left
   * out of the step) are split into runs of consecutive rows, each reading from the smallest first column among
   * them, so as to read the fewest row-columns; a run never holds a row left out, and a further run must save
   * {@code penalty} row-columns (its own ops cost about that much: {@link #blockPenalty}). At most
   * {@code maxBlocks} runs, or as many as the rows left out force. Rows ordered from the oldest sequence to the
   * youngest make the blocks pay off.
   *
   * @return the blocks' first rows, their ends and their first columns, or null when every row reads every column
   */
  static int[][] readBlocks(int[] first, int end, int maxBlocks, long penalty) {
    int n = first.length;
    int segments = 0;
    for (int r = 0; r < n; r++) {
      if (first[r] >= 0 && (r == 0 || first[r - 1] < 0)) {
        segments++;
      }
    }
    int most = Math.max(maxBlocks, segments);
    // cost[m][j]: the fewest row-columns (plus penalties) for rows [0, j) in m blocks, row j - 1 ending the last
    // block or left out; from[m][j]: the last block's first row, or -1 where row j - 1 is left out
    long[][] cost = new long[most + 1][n + 1];
    int[][] from = new int[most + 1][n + 1];
    for (long[] c : cost) {
      Arrays.fill(c, Long.MAX_VALUE);
    }
    cost[0][0] = 0;
    for (int m = 0; m <= most; m++) {
      for (int j = 1; j <= n; j++) {
        if (first[j - 1] < 0) {
          cost[m][j] = cost[m][j - 1];
          from[m][j] = -1;
          continue;
        }
        if (m == 0) {
          continue;
        }
        int lowest = Integer.MAX_VALUE;
        for (int i = j - 1; i >= 0 && first[i] >= 0; i--) {
          lowest = Math.min(lowest, first[i]);
          if (cost[m - 1][i] == Long.MAX_VALUE) {
            continue;
          }
          long c = cost[m - 1][i] + (long) (j - i) * (end - lowest) + (m > 1 ? penalty : 0);
          if (c < cost[m][j]) {
            cost[m][j] = c;
            from[m][j] = i;
          }
        }
      }
    }
    int best = 1;
    for (int m = 2; m <= most; m++) {
      if (cost[m][n] < cost[best][n]) {
        best = m;
      }
    }
    if (cost[best][n] == Long.MAX_VALUE) {
      throw new IllegalArgumentException("no row to decode among " + n);
    }
    int[] rowStarts = new int[best];
    int[] rowEnds = new int[best];
    int[] columnStarts = new int[best];
    for (int m = best, j = n; j > 0; ) {
      int i = from[m][j];
      if (i < 0) {
        j--;
        continue;
      }
      m--;
      rowStarts[m] = i;
      rowEnds[m] = j;
      int lowest = Integer.MAX_VALUE;
      for (int r = i; r < j; r++) {
        lowest = Math.min(lowest, first[r]);
      }
      columnStarts[m] = lowest;
      j = i;
    }
    boolean everything = best == 1 && rowStarts[0] == 0 && rowEnds[0] == n && columnStarts[0] == 0;
    return everything ? null : new int[][] {rowStarts, rowEnds, columnStarts};
  }

  /**
   * Prefills {@code newcomers}' distinct prompts together (left-padded to the longest), draws their first tokens,
   * and copies each newcomer's prompt into the idle rows of {@code cache} from {@code firstIdle} on, at the columns
   * ending at its length (growing it when their prompts are longer than what it holds: the running rows' new columns
   * are masked). A newcomer that finished on its first token takes no row.
   */
  private void admit(List<Integer> newcomers, int firstIdle, Batch state, KvCache cache, Rows rows,
      NDManager batchManager) {
    int n = newcomers.size();
    int promptLen = 0;
    for (int q : newcomers) {
      promptLen = Math.max(promptLen, state.request(q).prompt().length);
    }
    int vocab = model.config().vocabSize();
    int[] pad = new int[n];
    List<int[]> prompts = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      int[] p = state.request(newcomers.get(i)).prompt();
      prompts.add(p);
      pad[i] = promptLen - p.length;
    }
    int[] requests = newcomers.stream().mapToInt(Integer::intValue).toArray();
    SharedPrompts shared = SharedPrompts.of(prompts, requests);
    try (NDManager side = batchManager.newSubManager();
        KvCache prefill = new KvCache(side, model.config(), shared.distinct(), promptLen,
            model.precision().compute())) {
      NDArray logits = prefillDistinct(shared, promptLen, prefill, state, side);
      state.sample(logits, requests, vocab, version);
      int grow = promptLen - cache.length();
      if (grow > 0) {
        // the running rows do not see the columns added for the newcomers' prompts
        for (int r = 0; r < rows.count(); r++) {
          Arrays.fill(rows.mask, r * rows.capacity + cache.length(), r * rows.capacity + promptLen,
              LlamaModel.MASKED);
        }
        cache.advance(grow);
      }
      int end = cache.length();
      int[] from = new int[n];
      int[] into = new int[n];
      int placed = 0;
      for (int i = 0; i < n; i++) {
        int q = newcomers.get(i);
        if (state.done(q)) {
          continue; // finished on its first token: it needs no row
        }
        int r = firstIdle + placed;
        from[placed] = shared.rowOf()[i];
        into[placed++] = r;
        rows.place(r, q, promptLen - pad[i], end - promptLen + pad[i]);
      }
      cache.placeRows(prefill, Arrays.copyOf(from, placed), Arrays.copyOf(into, placed));
    }
  }

  /**
   * The distinct prompts among a prefill's rows, so a prompt that several requests share (the samples of a GRPO
   * group) is prefilled once and its keys and values copied to each of their rows.
   *
   * @param prompts the distinct prompts, in order of first appearance
   * @param rowOf for each of the rows given, the index of its prompt among {@code prompts}
   * @param requestsOf for each distinct prompt, the requests whose prompt it is
   */
  record SharedPrompts(List<int[]> prompts, int[] rowOf, int[][] requestsOf) {

    /** The distinct prompts of {@code rowPrompts} (compared by content); row i is request {@code requests[i]}. */
    static SharedPrompts of(List<int[]> rowPrompts, int[] requests) {
      Map<IntBuffer, Integer> seen = new HashMap<>();
      List<int[]> distinct = new ArrayList<>();
      List<List<Integer>> owners = new ArrayList<>();
      int[] rowOf = new int[rowPrompts.size()];
      for (int i = 0; i < rowOf.length; i++) {
        int[] p = rowPrompts.get(i);
        Integer at = seen.putIfAbsent(IntBuffer.wrap(p), distinct.size());
        if (at == null) {
          at = distinct.size();
          distinct.add(p);
          owners.add(new ArrayList<>());
        }
        rowOf[i] = at;
        owners.get(at).add(requests[i]);
      }
      int[][] requestsOf = new int[distinct.size()][];
      for (int d = 0; d < requestsOf.length; d++) {
        requestsOf[d] = owners.get(d).stream().mapToInt(Integer::intValue).toArray();
      }
      return new SharedPrompts(distinct, rowOf, requestsOf);
    }

    int distinct() {
      return prompts.size();
    }

    /** Left padding of each distinct prompt to {@code promptLen}. */
    int[] pad(int promptLen) {
      return prompts.stream().mapToInt(p -> promptLen - p.length).toArray();
    }

    /** Rows of {@code perPrompt} (one per distinct prompt) repeated for the rows given: one per row, owned by m. */
    NDArray perRow(NDArray perPrompt, NDManager m) {
      if (distinct() == rowOf.length) {
        perPrompt.attach(m); // every row its own prompt, in order
        return perPrompt;
      }
      NDArray rows = perPrompt.get(m.create(Arrays.stream(rowOf).asLongStream().toArray()));
      rows.attach(m);
      return rows;
    }
  }

  /** {@code [B, 1, 1, capacity]}: masked where the column is left padding of that row. */
  private static NDArray padMask(NDManager m, int[] pad, int capacity) {
    float[] mask = new float[pad.length * capacity];
    for (int i = 0; i < pad.length; i++) {
      Arrays.fill(mask, i * capacity, i * capacity + pad[i], LlamaModel.MASKED);
    }
    return m.create(mask, new Shape(pad.length, 1, 1, capacity));
  }

  /** Batch x vocabulary from which tokens are drawn on the device rather than on the host (CPU). */
  static final long DEVICE_SAMPLING_MIN = 1L << 18;

  /** The largest float below 1 (a double draw may round up to 1 as a float). */
  private static final float BELOW_ONE = Math.nextDown(1f);

  /**
   * Draws the next token of each row of {@code flat} ({@code [rows, V]} logits) from its own stream: row r samples
   * with {@code params[r]} from {@code streams[r]}, or draws nothing that counts when its stream is null (an idle or
   * finished row). On a GPU, or when the distributions are large ({@code rows x V >=} {@value #DEVICE_SAMPLING_MIN}),
   * the draw happens on the logits' device and only ids and log-probs come back ({@link DeviceSampler}); for small
   * ones, copying the log-probs to the host and drawing there costs less than the device's extra ops (measured with
   * {@code bench generate}: stories260k, vocab 512, batch 64 is faster on the host; d=512 with vocab 32k on the
   * device).
   */
  void draw(NDArray flat, SamplingParams[] params, SplittableRandom[] streams, int[] drawn, float[] sampling,
      float[] model) {
    rowSteps.addAndGet(params.length);
    long vocab = flat.getShape().get(1);
    if (flat.getDevice().isGpu() || params.length * vocab >= DEVICE_SAMPLING_MIN) {
      drawOnDevice(flat, params, streams, drawn, sampling, model);
    } else {
      drawOnHost(flat, params, streams, (int) vocab, drawn, sampling, model);
    }
  }

  private static void drawOnDevice(NDArray flat, SamplingParams[] params, SplittableRandom[] streams, int[] drawn,
      float[] sampling, float[] model) {
    int b = params.length;
    float[] uniforms = new float[b];
    for (int r = 0; r < b; r++) {
      // rows without a stream draw nothing from one (their result is ignored)
      uniforms[r] = streams[r] != null && !params[r].isGreedy()
          ? Math.min((float) streams[r].nextDouble(), BELOW_ONE) : 0.5f;
    }
    DeviceSampler.Drawn d = DeviceSampler.draw(flat, params, uniforms);
    for (int r = 0; r < b; r++) {
      drawn[r] = (int) d.tokens()[r];
      sampling[r] = d.samplingLogProbs()[r];
      model[r] = d.modelLogProbs()[r];
    }
  }

  private static void drawOnHost(NDArray flat, SamplingParams[] params, SplittableRandom[] streams, int vocab,
      int[] drawn, float[] sampling, float[] model) {
    int b = params.length;
    float[] raw = flat.logSoftmax(1).toFloatArray();
    float[] tempered = raw;
    float[] inv = new float[b];
    boolean unit = true;
    for (int r = 0; r < b; r++) {
      float t = params[r].temperature();
      inv[r] = t == 0f ? 1f : 1f / t;
      unit &= t == 0f || t == 1f;
    }
    if (!unit) {
      tempered = flat.mul(flat.getManager().create(inv, new Shape(b, 1))).logSoftmax(1).toFloatArray();
    }
    for (int r = 0; r < b; r++) {
      if (streams[r] == null) {
        continue;
      }
      SamplingParams p = params[r];
      int off = r * vocab;
      if (p.isGreedy()) {
        drawn[r] = Sampler.argmax(raw, off, vocab);
        sampling[r] = 0f;
      } else {
        Sampler.Draw d = Sampler.sample(tempered, off, vocab, p, streams[r]);
        drawn[r] = d.token();
        sampling[r] = d.logProb();
      }
      model[r] = raw[off + drawn[r]];
    }
  }

  /** What a step of idle rows alone "samples" (nothing is kept). */
  private static final SamplingParams IDLE = SamplingParams.greedy(1);

  /** One request's sampling state: its stream and what it drew so far. */
  private static final class Seq {
    final GenerationRequest request;
    final SplittableRandom rng;
    final int[] tokens;
    final float[] samplingLogProbs;
    final float[] modelLogProbs;
    final int[] versions;
    int count;
    FinishReason finish;
    /** Its result was taken. */
    boolean released;

    Seq(GenerationRequest request) {
      this.request = request;
      int n = request.params().maxNewTokens();
      rng = new SplittableRandom(request.seed());
      tokens = new int[n];
      samplingLogProbs = new float[n];
      modelLogProbs = new float[n];
      versions = new int[n];
    }
  }

  /**
   * Per-request sampling state of one batch; request i is the i-th added. A continuous batch adds requests as they
   * are submitted and drops each one's state once its result was taken (an open batch may run for a whole training
   * run: what it keeps is what it decodes or waits to decode).
   */
  private final class Batch {
    /** Requests from {@link #base} on: the ones before were delivered and dropped. */
    private final ArrayList<Seq> seqs = new ArrayList<>();
    private int base;
    /** The experts each position was sent to, for routing replay (indexed from {@link #base} as well). */
    private final ExpertChoices experts;

    /**
     * @param moe the model's mixture of experts (its choices are recorded for routing replay), or null
     */
    Batch(List<GenerationRequest> requests, LlamaConfig.Moe moe) {
      experts = new ExpertChoices(moe, 0, i -> 0);
      add(requests);
    }

    /** Adds requests at the next indices; returns the first one's. */
    int add(List<GenerationRequest> more) {
      int first = size();
      for (GenerationRequest r : more) {
        seqs.add(new Seq(r));
        experts.add(r.prompt().length + r.params().maxNewTokens());
      }
      return first;
    }

    int size() {
      return base + seqs.size();
    }

    private Seq seq(int i) {
      return seqs.get(i - base);
    }

    GenerationRequest request(int i) {
      return seq(i).request;
    }

    /** A routing to record the next forward's expert choices in, or null when none are recorded. */
    Routing routing() {
      return experts.routing();
    }

    /** Records forward row {@code row}'s choices as request {@code i}'s at sequence position {@code position}. */
    void route(Routing routing, int row, int i, int position) {
      experts.record(routing, row, i - base, position);
    }

    /**
     * Records a decode step's choices: row r fed its request's last token (requests {@code rows[r]}, -1 idle), at
     * the position after its prompt and the tokens before it.
     */
    void routedLastTokens(Routing routing, int[] rows) {
      if (routing == null) {
        return;
      }
      for (int r = 0; r < rows.length; r++) {
        int i = rows[r];
        if (live(i)) {
          route(routing, r, i, request(i).prompt().length + seq(i).count - 1);
        }
      }
    }

    boolean allDone() {
      return allDone(base, size());
    }

    /** Whether requests {@code [from, to)} are all done. */
    boolean allDone(int from, int to) {
      for (int i = from; i < to; i++) {
        if (seq(i).finish == null) {
          return false;
        }
      }
      return true;
    }

    int lastToken(int i) {
      Seq q = seq(i);
      return q.count == 0 ? 0 : q.tokens[q.count - 1];
    }

    boolean done(int i) {
      return seq(i).finish != null;
    }

    /**
     * Draws the next token of every unfinished request from logits {@code [B, 1, V]}, row r for request
     * {@code rows[r]} (-1: an idle row), each from its own seeded stream ({@link Generator#draw}).
     */
    void sample(NDArray logits, int[] rows, int vocab, int version) {
      int b = rows.length;
      int[] drawn = new int[b];
      float[] sampling = new float[b];
      float[] model = new float[b];
      SamplingParams[] params = new SamplingParams[b];
      SplittableRandom[] streams = new SplittableRandom[b];
      // an idle row draws as a row of a request does (its result unused): a setting of its own, say greedy among
      // sampled rows, would add its ops for every row (an argmax over [64, 32k] each step)
      SamplingParams idle = IDLE;
      for (int i : rows) {
        if (i >= 0) {
          idle = request(i).params();
          break;
        }
      }
      for (int r = 0; r < b; r++) {
        params[r] = rows[r] >= 0 ? request(rows[r]).params() : idle;
        streams[r] = live(rows[r]) ? seq(rows[r]).rng : null;
      }
      draw(logits.reshape(b, vocab), params, streams, drawn, sampling, model);
      for (int r = 0; r < b; r++) {
        int i = rows[r];
        if (!live(i)) {
          continue;
        }
        Seq q = seq(i);
        SamplingParams p = q.request.params();
        int token = drawn[r];
        int c = q.count++;
        q.tokens[c] = token;
        q.samplingLogProbs[c] = sampling[r];
        q.modelLogProbs[c] = model[r];
        q.versions[c] = version;
        if (p.isStop(token)) {
          q.finish = FinishReason.STOP;
        } else if (q.count == p.maxNewTokens()) {
          q.finish = FinishReason.LENGTH;
        }
        TokenListener listener = q.request.listener();
        if (listener != null) {
          boolean goOn;
          try {
            goOn = listener.onToken(token, model[r], q.finish);
          } catch (RuntimeException e) {
            LOG.warn("a token listener failed; its request stops: {}", e.toString());
            goOn = false;
          }
          if (!goOn && q.finish == null) {
            q.finish = FinishReason.LENGTH;
          }
        }
      }
    }

    /** Whether row-request {@code i} (-1: an idle row) still draws tokens. */
    private boolean live(int i) {
      return i >= 0 && seq(i).finish == null;
    }

    List<GenerationResult> results() {
      return results(base, size());
    }

    /** The results of requests {@code [from, to)}, all done. */
    List<GenerationResult> results(int from, int to) {
      List<GenerationResult> out = new ArrayList<>(to - from);
      for (int i = from; i < to; i++) {
        Seq q = seq(i);
        int n = q.count;
        // every position but the last token's, which was never fed back
        RoutedExperts routed = experts.of(i - base, q.request.prompt().length + n - 1);
        out.add(new GenerationResult(Arrays.copyOf(q.tokens, n), Arrays.copyOf(q.samplingLogProbs, n),
            Arrays.copyOf(q.modelLogProbs, n), Arrays.copyOf(q.versions, n), q.finish, routed));
      }
      return out;
    }

    /**
     * Marks requests {@code [from, to)}, all done, as delivered; the delivered ones at the front are dropped once
     * they are half of what is kept.
     */
    void release(int from, int to) {
      for (int i = from; i < to; i++) {
        seq(i).released = true;
      }
      int front = 0;
      while (front < seqs.size() && seqs.get(front).released) {
        front++;
      }
      if (front > 0 && front >= seqs.size() / 2) {
        seqs.subList(0, front).clear();
        experts.dropFirst(front);
        base += front;
      }
    }
  }

  /**
   * Stops a running batch at its next decode step and waits for the generator's thread to end, so the caller may free
   * the model's memory afterwards.
   */
  @Override
  public void close() {
    synchronized (streamLock) {
      closed = true;
    }
    thread.shutdown();
    try {
      if (!thread.awaitTermination(60, java.util.concurrent.TimeUnit.SECONDS)) {
        throw new IllegalStateException("the generator's thread did not stop within 60 s");
      }
      failSubmitted(new java.util.concurrent.CancellationException("the generator was closed"));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
