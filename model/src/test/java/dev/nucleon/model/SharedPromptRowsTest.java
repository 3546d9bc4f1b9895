package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Scoring with each distinct prompt run once ({@link SharedPromptRows}) gives the distributions and the gradients
 * that scoring every sample as its own right-padded row gives, for every attention the families use: grouped-query
 * with biases, q/k norms, post-norm, interleaved rotary, sliding windows across the prompt/completion boundary,
 * sinks, latent attention, and mixtures of experts.
 */
class SharedPromptRowsTest {

  /** Three prompts (lengths 3, 5, 2) shared by 7 samples whose completions have 1 to 6 tokens. */
  private static final int[][] PROMPTS = {{3, 9, 4}, {3, 9, 4}, {7, 1, 8, 2, 6}, {3, 9, 4}, {5, 11}, {7, 1, 8, 2, 6},
      {5, 11}};
  private static final int[][] COMPLETIONS = {{2, 5, 7, 1}, {8}, {4, 4, 9, 3, 10, 2}, {6, 1, 2}, {9, 3}, {1, 12, 5},
      {10, 2, 7, 7, 3}};

  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "llamaTied", "qwen3Like", "olmo2Like", "ernieBiased", "olmo3Like",
      "qwen3MoeLike", "deepseekLike", "gpt_oss"})
  void sharedPromptsScoreAndTrainAsPaddedRows(String shape) {
    Engines.start();
    LlamaConfig c = shape.equals("gpt_oss")
        ? LlamaConfig.fromHuggingFace(TestResources.path("golden/gpt_oss-tiny/config.json"))
        : TinyModels.named(shape);
    var weights = LlamaModel.randomWeights(c, 17);
    for (var t : weights.values()) { // larger than the 0.02 init, so attention is far from uniform
      for (int i = 0; i < t.data().length; i++) {
        t.data()[i] *= t.name().endsWith("norm.weight") ? 1f + 0.1f * (i % 5) : 8f;
      }
    }
    List<int[]> prompts = List.of(PROMPTS);
    List<int[]> completions = List.of(COMPLETIONS);
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel padded = LlamaModel.create(c, m, weights, Precision.FP32);
        LlamaModel shared = LlamaModel.create(c, m, weights, Precision.FP32)) {
      padded.setTrainable(true);
      shared.setTrainable(true);
      JniUtils.setGradMode(true);
      float[] want;
      float[] got;
      try (NDManager step = m.newSubManager();
          GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray[] rows = paddedRows(step, prompts, completions);
        NDArray ls = padded.logSoftmaxAt(rows[0], rows[1], 0.7f);
        want = ls.toFloatArray();
        gc.backward(weighted(ls, rows[2]));
      }
      try (NDManager step = m.newSubManager();
          GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        SharedPromptRows rows = SharedPromptRows.of(step, prompts, completions);
        assertEquals(3, rows.prompts());
        NDArray ls = shared.logSoftmaxAt(rows, 0.7f, null);
        got = ls.toFloatArray();
        gc.backward(weighted(ls, rows.targets()));
      }
      JniUtils.setGradMode(false);
      assertEquals(want.length, got.length);
      double err = 0;
      for (int i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(want[i] - got[i]));
      }
      assertTrue(err < 1e-4, shape + ": shared-prompt log-probs differ from padded rows' by " + err);
      for (Map.Entry<String, ai.djl.nn.Parameter> e : padded.namedParameters().entrySet()) {
        float[] g0 = e.getValue().getArray().getGradient().toFloatArray();
        float[] g1 = shared.namedParameters().get(e.getKey()).getArray().getGradient().toFloatArray();
        double scale = 1e-6;
        double diff = 0;
        for (int i = 0; i < g0.length; i++) {
          scale = Math.max(scale, Math.abs(g0[i]));
          diff = Math.max(diff, Math.abs(g0[i] - g1[i]));
        }
        assertTrue(diff <= 1e-4 * scale, shape + " " + e.getKey() + ": gradient differs by " + diff + " (largest "
            + scale + ")");
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /** A loss that weighs every scored token's log-prob differently, so a misplaced row would change gradients. */
  private static NDArray weighted(NDArray logSoftmax, NDArray targets) {
    NDArray picked = LlamaModel.pick(logSoftmax, targets);
    long n = picked.getShape().get(0);
    float[] w = new float[(int) n];
    for (int i = 0; i < w.length; i++) {
      w[i] = 0.5f + (i % 4) * 0.25f;
    }
    return picked.mul(picked.getManager().create(w)).sum();
  }

  /** Tokens {@code [B, T]}, scored flat positions and targets of the samples as right-padded rows. */
  private static NDArray[] paddedRows(NDManager m, List<int[]> prompts, List<int[]> completions) {
    int width = 0;
    int[][] seqs = new int[prompts.size()][];
    for (int b = 0; b < seqs.length; b++) {
      int[] p = prompts.get(b);
      int[] c = completions.get(b);
      seqs[b] = java.util.Arrays.copyOf(p, p.length + c.length);
      System.arraycopy(c, 0, seqs[b], p.length, c.length);
      width = Math.max(width, seqs[b].length);
    }
    List<Long> at = new ArrayList<>();
    List<Long> next = new ArrayList<>();
    for (int b = 0; b < seqs.length; b++) {
      for (int j = 0; j < completions.get(b).length; j++) {
        at.add((long) b * width + prompts.get(b).length - 1 + j);
        next.add((long) completions.get(b)[j]);
      }
    }
    return new NDArray[] {LlamaModel.paddedTokens(m, seqs),
        m.create(at.stream().mapToLong(Long::longValue).toArray()),
        m.create(next.stream().mapToLong(Long::longValue).toArray())};
  }

  @Test
  void equalPromptsArePackedOnce() {
    Engines.start();
    try (NDManager m = NDManager.newBaseManager()) {
      SharedPromptRows rows = SharedPromptRows.of(m, List.of(PROMPTS), List.of(COMPLETIONS));
      // prompts padded to 5, completions' inputs (all but the last token) to 5
      assertEquals(3 * 5 + 7 * 5, rows.packedTokens());
      assertEquals(new Shape(1, 50), rows.tokens().getShape());
      assertArrayEquals(new int[] {0, 0, 1, 0, 2, 1, 2},
          java.util.stream.IntStream.range(0, 7).map(rows::promptOf).toArray());
      // sample 3 shares prompt 0: its prompt tokens are prompt row 0's, its completion row is the 4th
      assertEquals(2, rows.packedIndex(3, 2));
      assertEquals(15 + 3 * 5 + 1, rows.packedIndex(3, 4));
      assertEquals(-1, rows.packedIndex(3, 5), "a completion's last token is no input");
      long[] ids = rows.tokens().toLongArray();
      long[] positions = rows.positions().toLongArray();
      assertEquals(COMPLETIONS[3][1], ids[rows.packedIndex(3, 4)]);
      assertEquals(4, positions[rows.packedIndex(3, 4)], "rotary position: after the 3 prompt tokens");
      int real = 0;
      for (boolean r : rows.realTokens()) {
        real += r ? 1 : 0;
      }
      assertEquals(3 + 5 + 2 + (3 + 0 + 5 + 2 + 1 + 2 + 4), real);
      // sample 0's first token is scored from prompt 0's last position, its second from its own first
      long[] scored = rows.scored().toLongArray();
      assertEquals(2, scored[0]);
      assertEquals(15, scored[1]);
      assertArrayEquals(java.util.Arrays.stream(COMPLETIONS).flatMapToInt(java.util.Arrays::stream)
          .asLongStream().toArray(), rows.targets().toLongArray());
    }
  }

  @Test
  void badRowsAreRefusedByName() {
    Engines.start();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(TinyModels.qwenLike(), m, 3)) {
      var empty = assertThrows(IllegalArgumentException.class,
          () -> SharedPromptRows.of(m, List.of(new int[] {1}, new int[0]), List.of(new int[] {2}, new int[] {3})));
      assertTrue(empty.getMessage().contains("row 1 has an empty prompt"), empty.getMessage());
      int[] longCompletion = new int[200]; // the tiny config has 128 positions
      SharedPromptRows rows = SharedPromptRows.of(m, List.of(new int[] {1, 2}), List.of(longCompletion));
      var tooLong = assertThrows(IllegalArgumentException.class, () -> model.logSoftmaxAt(rows, 1f, null));
      assertTrue(tooLong.getMessage().contains("202 tokens exceeds max_position_embeddings 128"),
          tooLong.getMessage());
    }
  }
}
