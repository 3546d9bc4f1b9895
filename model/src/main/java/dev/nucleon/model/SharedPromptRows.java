package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.core.Embedding;
import java.nio.IntBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Completions to score in which the samples of one prompt (a GRPO group's) share its forward pass: each distinct
 * prompt runs once, and each completion attends to its prompt's keys and values before its own tokens. A group of
 * 16 samples of a 7-token prompt with 4-token completions scores from 7 + 16 x 3 = 55 input tokens instead of
 * 16 x 11 = 176.
 *
 * <p>The tokens are packed into one sequence {@code [1, N]}: the prompt rows ({@code [P, Wp]}, each distinct prompt
 * right-padded) and then the completion rows ({@code [B, Wc]}, one per sample). A completion row holds the
 * completion's tokens but its last (no scored position reads it). Every per-token part of a layer (norms,
 * projections, MLPs, routers) runs once over the N tokens; attention alone splits them into rows
 * ({@link #attend}). Completion token 0 is scored from its prompt's last position, token j from position j - 1 of
 * its row.
 *
 * <p>Rotary positions are the tokens' own: a prompt's tokens 0..n-1, its completion's n, n+1, ... Padding has
 * position 0, and no real token attends to it (padding queries may; nothing reads them). The arrays live in the
 * manager the rows were made in.
 */
public final class SharedPromptRows {

  private final int prompts;
  private final int promptWidth;
  private final int rows;
  private final int completionWidth;
  private final int[] promptLengths;
  private final int[] promptOf;
  private final int[] completionLengths;
  private final NDArray tokens;
  private final NDArray positions;
  private final NDArray scored;
  private final NDArray targets;
  private final NDArray promptIndex;
  private final Map<List<Object>, Layer> layers = new HashMap<>();

  private SharedPromptRows(List<int[]> distinct, int[] promptOf, List<int[]> completions, NDManager m) {
    this.prompts = distinct.size();
    this.rows = completions.size();
    this.promptOf = promptOf;
    promptLengths = distinct.stream().mapToInt(p -> p.length).toArray();
    completionLengths = completions.stream().mapToInt(c -> c.length).toArray();
    promptWidth = Arrays.stream(promptLengths).max().orElse(0);
    completionWidth = Math.max(0, Arrays.stream(completionLengths).max().orElse(0) - 1);
    int n = prompts * promptWidth + rows * completionWidth;
    long[] ids = new long[n];
    long[] rotary = new long[n];
    for (int g = 0; g < prompts; g++) {
      int[] p = distinct.get(g);
      for (int j = 0; j < p.length; j++) {
        ids[g * promptWidth + j] = p[j];
        rotary[g * promptWidth + j] = j;
      }
    }
    int scoredCount = Arrays.stream(completionLengths).sum();
    long[] at = new long[scoredCount];
    long[] next = new long[scoredCount];
    int k = 0;
    for (int b = 0; b < rows; b++) {
      int[] c = completions.get(b);
      int row = prompts * promptWidth + b * completionWidth;
      int start = promptLengths[promptOf[b]];
      for (int j = 0; j < c.length; j++, k++) {
        if (j < c.length - 1) {
          ids[row + j] = c[j];
          rotary[row + j] = start + j;
        }
        at[k] = j == 0 ? (long) promptOf[b] * promptWidth + start - 1 : row + j - 1;
        next[k] = c[j];
      }
    }
    tokens = m.create(ids, new Shape(1, n));
    positions = m.create(rotary, new Shape(1, n));
    scored = m.create(at);
    targets = m.create(next);
    boolean identity = prompts == rows;
    for (int b = 0; identity && b < rows; b++) {
      identity = promptOf[b] == b;
    }
    promptIndex = identity ? null : m.create(Arrays.stream(promptOf).asLongStream().toArray());
  }

  /**
   * Rows for scoring {@code completions.get(b)} after {@code prompts.get(b)}; equal prompts (by their tokens) run
   * once.
   *
   * @param m the manager every array lives in
   * @throws IllegalArgumentException for an empty prompt (its first completion token has nothing to be scored from)
   *     or lists of different sizes
   */
  public static SharedPromptRows of(NDManager m, List<int[]> prompts, List<int[]> completions) {
    if (prompts.size() != completions.size()) {
      throw new IllegalArgumentException(prompts.size() + " prompts for " + completions.size() + " completions");
    }
    Map<IntBuffer, Integer> index = new HashMap<>(); // a wrapped array is equal to another with the same ints
    List<int[]> distinct = new ArrayList<>();
    int[] promptOf = new int[prompts.size()];
    for (int b = 0; b < prompts.size(); b++) {
      int[] p = prompts.get(b);
      if (p.length == 0) {
        throw new IllegalArgumentException("row " + b + " has an empty prompt: the first token has no context to "
            + "be scored from");
      }
      promptOf[b] = index.computeIfAbsent(IntBuffer.wrap(p), key -> {
        distinct.add(p);
        return distinct.size() - 1;
      });
    }
    return new SharedPromptRows(distinct, promptOf, completions, m);
  }

  /** The packed token ids, int64 {@code [1, N]}. */
  public NDArray tokens() {
    return tokens;
  }

  /** Each packed token's rotary position, int64 {@code [1, N]}. */
  public NDArray positions() {
    return positions;
  }

  /** For each completion token (samples in order), the packed index whose next-token distribution scores it. */
  public NDArray scored() {
    return scored;
  }

  /** The completion tokens (samples in order), int64 {@code [M]}: what {@link #scored()} predicts. */
  public NDArray targets() {
    return targets;
  }

  /** The distinct prompts, each run once. */
  public int prompts() {
    return prompts;
  }

  /** The distinct prompt sample {@code b} reads. */
  public int promptOf(int b) {
    return promptOf[b];
  }

  /** Tokens in the packed sequence, padding included. */
  public int packedTokens() {
    return prompts * promptWidth + rows * completionWidth;
  }

  /** The longest sample, prompt plus completion: what the rotary tables must cover. */
  public int longestSequence() {
    int longest = 0;
    for (int b = 0; b < rows; b++) {
      longest = Math.max(longest, promptLengths[promptOf[b]] + completionLengths[b]);
    }
    return longest;
  }

  /**
   * Whether each packed token is real (a prompt's or a completion's input), not padding: the tokens a routing or
   * load-balancing loss counts, in packed order.
   */
  public boolean[] realTokens() {
    boolean[] real = new boolean[packedTokens()];
    for (int g = 0; g < prompts; g++) {
      Arrays.fill(real, g * promptWidth, g * promptWidth + promptLengths[g], true);
    }
    int from = prompts * promptWidth;
    for (int b = 0; b < rows; b++) {
      int row = from + b * completionWidth;
      Arrays.fill(real, row, row + Math.max(0, completionLengths[b] - 1), true);
    }
    return real;
  }

  /**
   * Where sample {@code b}'s token at position {@code p} of its sequence (prompt, then completion) sits in the packed
   * sequence, or -1 where it is not an input (a completion's last token). A shared prompt's tokens sit once for all
   * its samples.
   */
  public int packedIndex(int b, int p) {
    int g = promptOf[b];
    if (p < promptLengths[g]) {
      return g * promptWidth + p;
    }
    int j = p - promptLengths[g];
    return j < completionLengths[b] - 1 ? prompts * promptWidth + b * completionWidth + j : -1;
  }

  /**
   * The masks one layer attends with: every key {@code window} or more positions before its query masked too (0: no
   * window), rows repeated for the {@code group} query heads a key head serves, in the compute type; made once per
   * window, group and type, in the rows' manager.
   */
  Layer layer(int window, int group, Precision precision) {
    NDManager m = tokens.getManager();
    return layers.computeIfAbsent(List.of(window, group, precision.compute()), key -> new Layer(
        LlamaModel.groupRows(precision.fromFloat32(promptMask(window, m), m), group),
        completionWidth == 0 ? null
            : LlamaModel.groupRows(precision.fromFloat32(completionMask(window, m), m), group)));
  }

  /** Causal within a prompt row, {@code [1, 1, Wp, Wp]}: a row's padding comes after its real tokens. */
  private NDArray promptMask(int window, NDManager m) {
    float[] mask = new float[promptWidth * promptWidth];
    for (int q = 0; q < promptWidth; q++) {
      for (int k = 0; k < promptWidth; k++) {
        mask[q * promptWidth + k] = k > q || (window > 0 && q - k >= window) ? LlamaModel.MASKED : 0f;
      }
    }
    return m.create(mask, new Shape(1, 1, promptWidth, promptWidth));
  }

  /**
   * Per completion row {@code [B, 1, Wc, Wp + Wc]}: its prompt's real keys, then its own causally (every query sees
   * at least itself, so no row of the softmax is empty).
   */
  private NDArray completionMask(int window, NDManager m) {
    int s = promptWidth + completionWidth;
    float[] mask = new float[rows * completionWidth * s];
    Arrays.fill(mask, LlamaModel.MASKED);
    for (int b = 0; b < rows; b++) {
      int n = promptLengths[promptOf[b]];
      for (int j = 0; j < completionWidth; j++) {
        int at = (b * completionWidth + j) * s;
        int query = n + j;
        for (int c = 0; c < n; c++) {
          if (window == 0 || query - c < window) {
            mask[at + c] = 0f;
          }
        }
        for (int c = 0; c <= j; c++) {
          if (window == 0 || j - c < window) {
            mask[at + promptWidth + c] = 0f;
          }
        }
      }
    }
    return m.create(mask, new Shape(rows, 1, completionWidth, s));
  }

  /**
   * Attention of the packed sequence within its rows: per-token queries, keys and values ({@code [1, N, heads,
   * D]}, keys and values with their own head count and value width) in, per-token contexts {@code [1, N, heads x
   * Dv]} out. Each prompt row attends to itself; each completion row to its prompt's keys and values (gathered, so
   * backward sums the group's gradients into the prompt) and then to its own.
   *
   * @param core an attention's scores, softmax and weighted values over rows: queries {@code [R, T, heads, D]}, keys
   *     and values {@code [R, S, kvHeads, D]} and an additive mask give {@code [R, T, heads x Dv]}
   */
  private NDArray attend(NDArray q, NDArray k, NDArray v, Layer layer, Core core, NDManager step) {
    long split = (long) prompts * promptWidth;
    long n = q.getShape().get(1);
    NDArray qp = rowsOf(Ops.slice(q, 1, 0, split, step), prompts, promptWidth);
    NDArray kp = rowsOf(Ops.slice(k, 1, 0, split, step), prompts, promptWidth);
    NDArray vp = rowsOf(Ops.slice(v, 1, 0, split, step), prompts, promptWidth);
    NDArray context = core.attend(qp, kp, vp, layer.prompt, step).reshape(1, split, -1);
    if (completionWidth == 0) {
      return context;
    }
    NDArray qc = rowsOf(Ops.slice(q, 1, split, n, step), rows, completionWidth);
    NDArray kc = rowsOf(Ops.slice(k, 1, split, n, step), rows, completionWidth);
    NDArray vc = rowsOf(Ops.slice(v, 1, split, n, step), rows, completionWidth);
    NDArray keys = perRow(kp, step).concat(kc, 1);
    NDArray values = perRow(vp, step).concat(vc, 1);
    NDArray completions = core.attend(qc, keys, values, layer.completion, step).reshape(1, n - split, -1);
    return context.concat(completions, 1);
  }

  private static NDArray rowsOf(NDArray packed, long rows, long width) {
    Shape s = packed.getShape();
    return packed.reshape(rows, width, s.get(2), s.get(3));
  }

  /** Prompt rows' {@code [P, Wp, h, D]} repeated for the samples that read them: {@code [B, Wp, h, D]}. */
  private NDArray perRow(NDArray promptRows, NDManager step) {
    if (promptIndex == null) {
      return promptRows;
    }
    Shape s = promptRows.getShape();
    // an embedding lookup is a differentiable row gather: backward adds each sample's gradient into its prompt. Its
    // result is made in the index's manager (the rows'): moved to the layer's, it is freed when the layer ends
    NDArray gathered = Embedding.embedding(promptIndex, promptRows.reshape(prompts, -1), SparseFormat.DENSE)
        .singletonOrThrow();
    gathered.attach(step);
    return gathered.reshape(rows, s.get(1), s.get(2), s.get(3));
  }

  /** One attention's scores, softmax and weighted sum over rows (see {@link #attend}). */
  @FunctionalInterface
  interface Core {
    NDArray attend(NDArray q, NDArray k, NDArray v, NDArray mask, NDManager step);
  }

  /**
   * These rows as one layer attends them: its masks for prompt rows and completion rows (null when no completion
   * has an input token).
   */
  final class Layer {
    private final NDArray prompt;
    private final NDArray completion;

    private Layer(NDArray prompt, NDArray completion) {
      this.prompt = prompt;
      this.completion = completion;
    }

    /** {@link SharedPromptRows#attend} with this layer's masks. */
    NDArray attend(NDArray q, NDArray k, NDArray v, Core core, NDManager step) {
      return SharedPromptRows.this.attend(q, k, v, this, core, step);
    }
  }
}
