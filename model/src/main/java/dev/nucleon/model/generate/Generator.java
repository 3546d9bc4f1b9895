package dev.nucleon.model.generate;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.KvCache;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Ops;
import dev.nucleon.model.io.HostTensor;
import java.util.ArrayList;
import java.util.Arrays;
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
 *       tokens) and yields the logits of each prompt's last position.</li>
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
  private volatile int version;
  private volatile boolean closed;

  private record WeightUpdate(int version, Map<String, HostTensor> weights, Runnable applied) {}

  /**
   * @param model the policy; this generator's thread does all work on it from now on
   * @param version the policy version of its current weights
   */
  public Generator(LlamaModel model, int version) {
    this.model = model;
    this.version = version;
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

  private void applyUpdates() {
    WeightUpdate u;
    while ((u = updates.poll()) != null) {
      model.loadParameters(u.weights());
      version = u.version();
      if (u.applied() != null) {
        u.applied().run();
      }
    }
  }

  /** Completes every request; results are in request order. */
  public List<GenerationResult> generate(List<GenerationRequest> requests) {
    if (requests.isEmpty()) {
      return List.of();
    }
    return call(() -> run(requests));
  }

  /**
   * Completes every request on the generator's thread without blocking the caller (actors use this and pipe the
   * result back to themselves).
   */
  public java.util.concurrent.CompletableFuture<List<GenerationResult>> generateAsync(
      List<GenerationRequest> requests) {
    java.util.concurrent.CompletableFuture<List<GenerationResult>> result =
        new java.util.concurrent.CompletableFuture<>();
    if (requests.isEmpty()) {
      result.complete(List.of());
      return result;
    }
    thread.execute(() -> {
      try {
        result.complete(run(requests));
      } catch (RuntimeException | Error e) {
        result.completeExceptionally(e);
      }
    });
    return result;
  }

  private <T> T call(java.util.concurrent.Callable<T> task) {
    Future<T> f = thread.submit(task);
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      f.cancel(true);
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

  private List<GenerationResult> run(List<GenerationRequest> requests) {
    applyUpdates();
    int b = requests.size();
    int vocab = model.config().vocabSize();
    int promptLen = 0;
    int maxNew = 0;
    for (GenerationRequest r : requests) {
      promptLen = Math.max(promptLen, r.prompt().length);
      maxNew = Math.max(maxNew, r.params().maxNewTokens());
      for (int t : r.prompt()) {
        if (t < 0 || t >= vocab) {
          throw new IllegalArgumentException("prompt token " + t + " outside vocabulary of " + vocab);
        }
      }
    }
    int capacity = promptLen + maxNew;
    int longest = 0;
    for (GenerationRequest r : requests) {
      longest = Math.max(longest, r.prompt().length + r.params().maxNewTokens());
    }
    if (longest > model.maxPositions()) {
      throw new IllegalArgumentException("prompt plus max new tokens (" + longest
          + ") exceeds the model's max_position_embeddings " + model.maxPositions());
    }
    int[] pad = new int[b];
    for (int i = 0; i < b; i++) {
      pad[i] = promptLen - requests.get(i).prompt().length;
    }
    Batch state = new Batch(requests);
    try (NDManager batchManager = model.manager().newSubManager();
        KvCache cache = new KvCache(batchManager, model.config(), b, capacity,
            model.precision().compute())) {
      NDArray padMask = padMask(batchManager, pad, capacity);
      // prefill
      try (NDManager step = batchManager.newSubManager()) {
        long[] tokens = new long[b * promptLen];
        long[] positions = new long[b * promptLen];
        for (int i = 0; i < b; i++) {
          int[] p = requests.get(i).prompt();
          for (int c = 0; c < promptLen; c++) {
            tokens[i * promptLen + c] = c < pad[i] ? 0 : p[c - pad[i]];
            positions[i * promptLen + c] = Math.max(0, c - pad[i]);
          }
        }
        NDArray mask = LlamaModel.causalMask(step, promptLen).add(Ops.slice(padMask, 3, 0, promptLen, step));
        NDArray logits = model.forward(step.create(tokens, new Shape(b, promptLen)),
            step.create(positions, new Shape(b, promptLen)), mask, cache, true);
        state.sample(logits, vocab, version);
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
          NDArray logits = model.forward(step.create(tokens, new Shape(b, 1)), step.create(positions, new Shape(b, 1)),
              mask, cache, true);
          state.sample(logits, vocab, version);
        }
      }
    }
    return state.results();
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

  /** Per-request sampling state of one batch. */
  private static final class Batch {
    private final List<GenerationRequest> requests;
    private final SplittableRandom[] rngs;
    private final int[][] tokens;
    private final float[][] samplingLogProbs;
    private final float[][] modelLogProbs;
    private final int[][] versions;
    private final int[] count;
    private final FinishReason[] finish;

    Batch(List<GenerationRequest> requests) {
      this.requests = requests;
      int b = requests.size();
      rngs = new SplittableRandom[b];
      tokens = new int[b][];
      samplingLogProbs = new float[b][];
      modelLogProbs = new float[b][];
      versions = new int[b][];
      count = new int[b];
      finish = new FinishReason[b];
      for (int i = 0; i < b; i++) {
        SamplingParams p = requests.get(i).params();
        rngs[i] = new SplittableRandom(requests.get(i).seed());
        int n = p.maxNewTokens();
        tokens[i] = new int[n];
        samplingLogProbs[i] = new float[n];
        modelLogProbs[i] = new float[n];
        versions[i] = new int[n];
      }
    }

    boolean allDone() {
      for (FinishReason f : finish) {
        if (f == null) {
          return false;
        }
      }
      return true;
    }

    int lastToken(int i) {
      return count[i] == 0 ? 0 : tokens[i][count[i] - 1];
    }

    /**
     * Draws the next token of every unfinished request from logits {@code [B, 1, V]}. Each request draws from its
     * own seeded stream. On a GPU, or when the batch's distributions are large ({@code B x V >=}
     * {@value #DEVICE_SAMPLING_MIN}), the draw happens on the logits' device and only ids and log-probs come back
     * ({@link DeviceSampler}); for small ones, copying the log-probs to the host and drawing there costs less than
     * the device's extra ops (measured with {@code bench generate}: stories260k, vocab 512, batch 64 is faster on the
     * host; d=512 with vocab 32k on the device).
     */
    void sample(NDArray logits, int vocab, int version) {
      int b = requests.size();
      NDArray flat = logits.reshape(b, vocab);
      int[] drawn = new int[b];
      float[] sampling = new float[b];
      float[] model = new float[b];
      if (flat.getDevice().isGpu() || (long) b * vocab >= DEVICE_SAMPLING_MIN) {
        drawOnDevice(flat, drawn, sampling, model);
      } else {
        drawOnHost(flat, vocab, drawn, sampling, model);
      }
      for (int i = 0; i < b; i++) {
        if (finish[i] != null) {
          continue;
        }
        SamplingParams p = requests.get(i).params();
        int token = drawn[i];
        int c = count[i]++;
        tokens[i][c] = token;
        samplingLogProbs[i][c] = sampling[i];
        modelLogProbs[i][c] = model[i];
        versions[i][c] = version;
        if (p.isStop(token)) {
          finish[i] = FinishReason.STOP;
        } else if (count[i] == p.maxNewTokens()) {
          finish[i] = FinishReason.LENGTH;
        }
      }
    }

    private void drawOnDevice(NDArray flat, int[] drawn, float[] sampling, float[] model) {
      int b = requests.size();
      SamplingParams[] params = new SamplingParams[b];
      float[] uniforms = new float[b];
      for (int i = 0; i < b; i++) {
        params[i] = requests.get(i).params();
        // finished rows draw nothing from their stream (their result is ignored)
        uniforms[i] = finish[i] == null && !params[i].isGreedy()
            ? Math.min((float) rngs[i].nextDouble(), BELOW_ONE) : 0.5f;
      }
      DeviceSampler.Drawn d = DeviceSampler.draw(flat, params, uniforms);
      for (int i = 0; i < b; i++) {
        drawn[i] = (int) d.tokens()[i];
        sampling[i] = d.samplingLogProbs()[i];
        model[i] = d.modelLogProbs()[i];
      }
    }

    private void drawOnHost(NDArray flat, int vocab, int[] drawn, float[] sampling, float[] model) {
      int b = requests.size();
      float[] raw = flat.logSoftmax(1).toFloatArray();
      float[] tempered = raw;
      float[] inv = new float[b];
      boolean unit = true;
      for (int i = 0; i < b; i++) {
        float t = requests.get(i).params().temperature();
        inv[i] = t == 0f ? 1f : 1f / t;
        unit &= t == 0f || t == 1f;
      }
      if (!unit) {
        tempered = flat.mul(flat.getManager().create(inv, new Shape(b, 1))).logSoftmax(1).toFloatArray();
      }
      for (int i = 0; i < b; i++) {
        if (finish[i] != null) {
          continue;
        }
        SamplingParams p = requests.get(i).params();
        int off = i * vocab;
        if (p.isGreedy()) {
          drawn[i] = Sampler.argmax(raw, off, vocab);
          sampling[i] = 0f;
        } else {
          Sampler.Draw d = Sampler.sample(tempered, off, vocab, p, rngs[i]);
          drawn[i] = d.token();
          sampling[i] = d.logProb();
        }
        model[i] = raw[off + drawn[i]];
      }
    }

    List<GenerationResult> results() {
      List<GenerationResult> out = new ArrayList<>(requests.size());
      for (int i = 0; i < requests.size(); i++) {
        int n = count[i];
        out.add(new GenerationResult(Arrays.copyOf(tokens[i], n), Arrays.copyOf(samplingLogProbs[i], n),
            Arrays.copyOf(modelLogProbs[i], n), Arrays.copyOf(versions[i], n), finish[i]));
      }
      return out;
    }
  }

  /**
   * Stops a running batch at its next decode step and waits for the generator's thread to end, so the caller may free
   * the model's memory afterwards.
   */
  @Override
  public void close() {
    closed = true;
    thread.shutdown();
    try {
      if (!thread.awaitTermination(60, java.util.concurrent.TimeUnit.SECONDS)) {
        throw new IllegalStateException("the generator's thread did not stop within 60 s");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
