package dev.nucleon.model.generate;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.KvCache;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Routing;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;

/**
 * Multi-turn episodes over one KV cache, in rounds: every episode takes its turn (decoded together, one row each);
 * when no row decodes any more, the handler answers every turn that ended, and the answers are fed into the cache in
 * one forward pass (each row's answer left-padded to the longest, the padding hidden), which also draws the first
 * token of each next turn. Nothing an episode already holds is computed again. Cache columns are storage, not
 * positions: a row's positions count its own tokens, and a host-side mask of the columns that are its own (the
 * columns written while it waited or was done, and its padding, stay hidden from it). The cache grows when a round
 * needs more columns.
 */
final class EpisodeBatch {

  private static final int GENERATING = 0;
  private static final int WAITING = 1;
  private static final int DONE = 2;

  private final Generator generator;
  private final LlamaModel model;
  private final List<EpisodeRequest> requests;
  private final TurnHandler handler;
  private final int b;
  private final int vocab;
  private final SplittableRandom[] streams;
  private final int[][] tokens;
  private final byte[][] trained;
  private final float[][] samplingLogProbs;
  private final float[][] modelLogProbs;
  private final int[][] versions;
  private final int[] count;
  /** Tokens each episode may hold after its prompt: its own budget, within the model's context. */
  private final int[] budget;
  private final int[] phase;
  /** Where the running turn starts in the episode's tokens. */
  private final int[] turnStart;
  private final int[] turns;
  private final FinishReason[] lastTurn;
  private final EpisodeResult.End[] end;
  /** The experts every position read was sent to, for routing replay (nothing for a dense model). */
  private final ExpertChoices experts;
  private KvCache cache;
  /** {@code [b, capacity]}: 0 where row r sees column c, {@link LlamaModel#MASKED} where it does not. */
  private float[] mask;
  private int capacity;

  EpisodeBatch(Generator generator, List<EpisodeRequest> requests, TurnHandler handler) {
    this.generator = generator;
    this.model = generator.model();
    this.requests = requests;
    this.handler = handler;
    this.b = requests.size();
    this.vocab = model.config().vocabSize();
    if (model.config().hasSlidingWindows()) {
      // a sliding window is measured in cache columns, which episodes' padding and waiting columns do not match
      throw new IllegalArgumentException("multi-turn episodes are not supported for models with sliding-window "
          + "attention layers");
    }
    streams = new SplittableRandom[b];
    tokens = new int[b][];
    trained = new byte[b][];
    samplingLogProbs = new float[b][];
    modelLogProbs = new float[b][];
    versions = new int[b][];
    count = new int[b];
    budget = new int[b];
    phase = new int[b];
    turnStart = new int[b];
    turns = new int[b];
    lastTurn = new FinishReason[b];
    end = new EpisodeResult.End[b];
    for (int i = 0; i < b; i++) {
      EpisodeRequest r = requests.get(i);
      generator.checkIds(r.prompt());
      budget[i] = Math.min(r.maxTokens(), model.maxPositions() - r.prompt().length);
      if (budget[i] < 1) {
        throw new IllegalArgumentException("episode " + i + ": its prompt of " + r.prompt().length + " tokens "
            + "leaves no room in the model's context of " + model.maxPositions());
      }
      streams[i] = new SplittableRandom(r.seed());
      int n = Math.min(budget[i], 64);
      tokens[i] = new int[n];
      trained[i] = new byte[n];
      samplingLogProbs[i] = new float[n];
      modelLogProbs[i] = new float[n];
      versions[i] = new int[n];
    }
    experts = new ExpertChoices(model.config().moe(), b, i -> requests.get(i).prompt().length + tokens[i].length);
  }

  List<EpisodeResult> run() {
    int promptLen = 0;
    int turnMax = 0;
    for (int i = 0; i < b; i++) {
      EpisodeRequest r = requests.get(i);
      promptLen = Math.max(promptLen, r.prompt().length);
      turnMax = Math.max(turnMax, Math.min(r.turn().maxNewTokens(), budget[i]));
    }
    capacity = promptLen + turnMax + 16;
    mask = new float[b * capacity];
    try (NDManager batchManager = model.manager().newSubManager()) {
      cache = new KvCache(batchManager, model.config(), b, capacity, model.precision().compute());
      try (NDManager step = batchManager.newSubManager()) {
        sample(prefill(promptLen, step), allRows());
      }
      while (!generator.isClosed()) {
        boolean decoding = false;
        boolean waiting = false;
        for (int i = 0; i < b; i++) {
          decoding |= phase[i] == GENERATING;
          waiting |= phase[i] == WAITING;
        }
        if (decoding) {
          generator.applyUpdates();
          decode(batchManager);
        } else if (waiting) {
          generator.applyUpdates();
          answer(batchManager);
        } else {
          break;
        }
      }
    }
    if (generator.isClosed()) {
      for (int p : phase) {
        if (p != DONE) {
          throw new java.util.concurrent.CancellationException("the generator was closed during the episodes");
        }
      }
    }
    List<EpisodeResult> out = new ArrayList<>(b);
    for (int i = 0; i < b; i++) {
      int n = count[i];
      out.add(new EpisodeResult(Arrays.copyOf(tokens[i], n), Arrays.copyOf(trained[i], n),
          Arrays.copyOf(samplingLogProbs[i], n), Arrays.copyOf(modelLogProbs[i], n), Arrays.copyOf(versions[i], n),
          lastTurn[i], end[i], turns[i], experts.of(i, requests.get(i).prompt().length + n - 1)));
    }
    return out;
  }

  /** The prompts, left-padded to the longest, in one forward pass; returns the last position's logits. */
  private NDArray prefill(int promptLen, NDManager m) {
    long[] ids = new long[b * promptLen];
    long[] positions = new long[b * promptLen];
    float[] stepMask = new float[b * promptLen * promptLen];
    for (int i = 0; i < b; i++) {
      int[] p = requests.get(i).prompt();
      int pad = promptLen - p.length;
      for (int c = 0; c < promptLen; c++) {
        ids[i * promptLen + c] = c < pad ? 0 : p[c - pad];
        positions[i * promptLen + c] = Math.max(0, c - pad);
        mask[i * capacity + c] = c < pad ? LlamaModel.MASKED : 0f;
        for (int t = 0; t < promptLen; t++) {
          // query t sees its own row's prompt columns up to itself; a padding query sees itself only
          boolean visible = c <= t && (c >= pad || c == t);
          stepMask[(i * promptLen + t) * promptLen + c] = visible ? 0f : LlamaModel.MASKED;
        }
      }
    }
    Routing routing = experts.routing();
    NDArray logits = model.forward(m.create(ids, new Shape(b, promptLen)),
        m.create(positions, new Shape(b, promptLen)), m.create(stepMask, new Shape(b, 1, promptLen, promptLen)), cache,
        true, routing);
    for (int i = 0; routing != null && i < b; i++) {
      int pad = promptLen - requests.get(i).prompt().length;
      for (int c = pad; c < promptLen; c++) {
        experts.record(routing, i * promptLen + c, i, c - pad);
      }
    }
    return logits;
  }

  /** One decode step: every generating row feeds its last token; the others write a column nobody sees. */
  private void decode(NDManager batchManager) {
    ensureRoom(1);
    int col = cache.length();
    int len = col + 1;
    long[] ids = new long[b];
    long[] positions = new long[b];
    float[] stepMask = new float[b * len];
    boolean[] live = new boolean[b];
    for (int r = 0; r < b; r++) {
      live[r] = phase[r] == GENERATING;
      mask[r * capacity + col] = live[r] ? 0f : LlamaModel.MASKED;
      if (live[r]) {
        ids[r] = tokens[r][count[r] - 1];
        positions[r] = position(r);
        System.arraycopy(mask, r * capacity, stepMask, r * len, len);
      } else {
        Arrays.fill(stepMask, r * len, r * len + col, LlamaModel.MASKED); // its own column only
      }
    }
    try (NDManager step = batchManager.newSubManager()) {
      Routing routing = experts.routing();
      NDArray logits = model.forward(step.create(ids, new Shape(b, 1)), step.create(positions, new Shape(b, 1)),
          step.create(stepMask, new Shape(b, 1, 1, len)), cache, true, routing);
      for (int r = 0; r < b; r++) {
        if (live[r]) {
          experts.record(routing, r, r, (int) positions[r]);
        }
      }
      sample(logits, live);
    }
  }

  /**
   * Asks the handler about every turn that ended, then feeds each answer (after the turn's last token, which was
   * never fed) into the cache and draws the first token of the next turns.
   */
  private void answer(NDManager batchManager) {
    List<Integer> asked = new ArrayList<>();
    List<CompletableFuture<int[]>> answers = new ArrayList<>();
    for (int i = 0; i < b; i++) {
      if (phase[i] == WAITING) {
        asked.add(i);
        int[] turn = Arrays.copyOfRange(tokens[i], turnStart[i], count[i]);
        answers.add(handler.next(i, turns[i] - 1, turn, lastTurn[i]));
      }
    }
    CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new)).join();
    int[][] feed = new int[b][];
    int longest = 0;
    for (int k = 0; k < asked.size(); k++) {
      int i = asked.get(k);
      int[] next = answers.get(k).join();
      phase[i] = DONE;
      if (next == null) {
        end[i] = EpisodeResult.End.HANDLER;
      } else if (count[i] + next.length + 1 > budget[i]) {
        end[i] = EpisodeResult.End.TOKEN_LIMIT;
      } else {
        generator.checkIds(next);
        feed[i] = new int[next.length + 1];
        feed[i][0] = tokens[i][count[i] - 1];
        System.arraycopy(next, 0, feed[i], 1, next.length);
        longest = Math.max(longest, feed[i].length);
      }
    }
    if (longest == 0) {
      return;
    }
    int t = longest;
    ensureRoom(t);
    int l = cache.length();
    int len = l + t;
    long[] ids = new long[b * t];
    long[] positions = new long[b * t];
    float[] stepMask = new float[b * t * len];
    boolean[] live = new boolean[b];
    int version = generator.version();
    for (int r = 0; r < b; r++) {
      live[r] = feed[r] != null;
      int pad = live[r] ? t - feed[r].length : t;
      for (int u = 0; u < t; u++) {
        mask[r * capacity + l + u] = u < pad ? LlamaModel.MASKED : 0f;
        if (u >= pad) {
          ids[r * t + u] = feed[r][u - pad];
          positions[r * t + u] = position(r) + u - pad;
        }
      }
      for (int q = 0; q < t; q++) {
        int at = (r * t + q) * len;
        if (q >= pad) {
          System.arraycopy(mask, r * capacity, stepMask, at, l);
          for (int c = 0; c < t; c++) {
            stepMask[at + l + c] = c >= pad && c <= q ? 0f : LlamaModel.MASKED;
          }
        } else {
          // a padding query sees its own column only (its output is not used)
          Arrays.fill(stepMask, at, at + len, LlamaModel.MASKED);
          stepMask[at + l + q] = 0f;
        }
      }
      if (live[r]) {
        for (int u = 1; u < feed[r].length; u++) {
          append(r, feed[r][u], (byte) 0, 0f, 0f, version);
        }
        phase[r] = GENERATING;
        turnStart[r] = count[r];
      }
    }
    try (NDManager step = batchManager.newSubManager()) {
      Routing routing = experts.routing();
      NDArray logits = model.forward(step.create(ids, new Shape(b, t)), step.create(positions, new Shape(b, t)),
          step.create(stepMask, new Shape(b, 1, t, len)), cache, true, routing);
      for (int r = 0; r < b; r++) {
        for (int u = live[r] ? t - feed[r].length : t; u < t; u++) {
          experts.record(routing, r * t + u, r, (int) positions[r * t + u]);
        }
      }
      sample(logits, live);
    }
  }

  /**
   * The position of row {@code r}'s last sampled token, the next one to feed: every token before it (the prompt,
   * the turns, the answers) is in the cache.
   */
  private int position(int r) {
    return requests.get(r).prompt().length + count[r] - 1;
  }

  private boolean[] allRows() {
    boolean[] all = new boolean[b];
    Arrays.fill(all, true);
    return all;
  }

  /** Draws the next token of rows {@code live} from logits {@code [b, 1, V]} and ends the turns that are over. */
  private void sample(NDArray logits, boolean[] live) {
    int[] drawn = new int[b];
    float[] sampling = new float[b];
    float[] modelLp = new float[b];
    SamplingParams[] params = new SamplingParams[b];
    SplittableRandom[] rowStreams = new SplittableRandom[b];
    for (int r = 0; r < b; r++) {
      params[r] = requests.get(r).turn();
      rowStreams[r] = live[r] ? streams[r] : null;
    }
    generator.draw(logits.reshape(b, vocab), params, rowStreams, drawn, sampling, modelLp);
    int version = generator.version();
    for (int r = 0; r < b; r++) {
      if (!live[r]) {
        continue;
      }
      append(r, drawn[r], (byte) 1, sampling[r], modelLp[r], version);
      SamplingParams p = params[r];
      FinishReason finish = null;
      if (p.isStop(drawn[r])) {
        finish = FinishReason.STOP;
      } else if (count[r] - turnStart[r] == p.maxNewTokens() || count[r] >= budget[r]) {
        finish = FinishReason.LENGTH;
      }
      if (finish != null) {
        lastTurn[r] = finish;
        turns[r]++;
        phase[r] = WAITING;
      }
    }
  }

  private void append(int r, int token, byte isTrained, float sampling, float modelLp, int version) {
    int c = count[r];
    if (c == tokens[r].length) {
      int n = Math.min(budget[r], Math.max(c + 1, c * 2));
      tokens[r] = Arrays.copyOf(tokens[r], n);
      trained[r] = Arrays.copyOf(trained[r], n);
      samplingLogProbs[r] = Arrays.copyOf(samplingLogProbs[r], n);
      modelLogProbs[r] = Arrays.copyOf(modelLogProbs[r], n);
      versions[r] = Arrays.copyOf(versions[r], n);
    }
    tokens[r][c] = token;
    trained[r][c] = isTrained;
    samplingLogProbs[r][c] = sampling;
    modelLogProbs[r][c] = modelLp;
    versions[r][c] = version;
    count[r] = c + 1;
  }

  /** Grows the cache (and the host mask) when {@code t} more columns do not fit. */
  private void ensureRoom(int t) {
    if (cache.length() + t <= capacity) {
      return;
    }
    int grown = Math.max(capacity + capacity / 2, cache.length() + t + 16);
    cache.grow(grown);
    float[] wider = new float[b * grown];
    for (int r = 0; r < b; r++) {
      System.arraycopy(mask, r * capacity, wider, r * grown, capacity);
    }
    mask = wider;
    capacity = grown;
  }
}
