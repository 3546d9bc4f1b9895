package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.model.io.HostTensor;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The TorchScript decode step computes the logits the eager blocks compute, for every family's layer shape (GQA,
 * biases, per-head and full-width q/k norms, post-norm, interleaved rotary, sliding windows with a second rotary
 * table, tied heads) and in both generation precisions, over a prefill with a padded row and decode steps through
 * the cache, bit for bit.
 */
class DecodeScriptTest {

  @ParameterizedTest
  @CsvSource({
      "qwenLike, f32", "llamaTied, f32", "qwen3Like, f32", "olmo2Like, f32", "ernieBiased, f32", "olmo3Like, f32",
      "olmo3Yarn, f32", "qwenLike, bf16", "llamaTied, bf16", "qwen3Like, bf16", "olmo2Like, bf16",
      "ernieBiased, bf16", "olmo3Like, bf16", "olmo3Yarn, bf16"})
  void scriptedDecodingMatchesEager(String shape, String dtype) {
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = tinyModel(shape, dtype, m)) {
      float[] eager = decode(model, false, false, m);
      float[] scripted = decode(model, true, false, m);
      assertEquals(eager.length, scripted.length);
      double maxErr = 0;
      double scale = 0;
      for (int i = 0; i < eager.length; i++) {
        assertTrue(Float.isFinite(scripted[i]), "non-finite scripted logit at " + i);
        maxErr = Math.max(maxErr, Math.abs(eager[i] - scripted[i]));
        scale = Math.max(scale, Math.abs(eager[i]));
      }
      System.out.printf("%s %s: scripted vs eager decoding max abs difference %.2e (logits up to %.2f)%n", shape,
          dtype, maxErr, scale);
      // the same ops in the same order on the same device: the same bits
      assertEquals(0.0, maxErr, shape + " " + dtype + ": scripted and eager logits differ");
    }
  }

  /** On a GPU the two paths launch the same kernels; only reductions scheduled differently could differ. */
  @ParameterizedTest
  @CsvSource({"qwenLike, f32", "qwen3Like, bf16", "olmo3Yarn, bf16"})
  void scriptedDecodingMatchesEagerOnTheGpu(String shape, String dtype) {
    Engines.start();
    assumeTrue(Engines.gpuCount() > 0, "no GPU: skipped");
    try (NDManager m = NDManager.newBaseManager(ai.djl.Device.gpu()); LlamaModel model = tinyModel(shape, dtype, m)) {
      float[] eager = decode(model, false, false, m);
      float[] scripted = decode(model, true, false, m);
      double maxErr = 0;
      for (int i = 0; i < eager.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(eager[i] - scripted[i]));
      }
      System.out.printf("%s %s on the GPU: scripted vs eager max abs difference %.2e%n", shape, dtype, maxErr);
      double tolerance = model.precision().compute() == DataType.FLOAT32 ? 1e-5 : 1e-2;
      assertTrue(maxErr <= tolerance, "max abs difference " + maxErr);
    }
  }

  /**
   * A continuous batch's decode steps read the cache in blocks of rows, each block from its own first column
   * (KvCache.readInBlocks): skipping columns that are masked for every row of a block changes no logit beyond
   * rounding.
   */
  @ParameterizedTest
  @CsvSource({"qwenLike, f32", "qwen3Like, f32", "olmo2Like, f32", "qwenLike, bf16", "olmo2Like, bf16"})
  void decodingInBlocksOfRowsMatchesReadingEveryColumn(String shape, String dtype) {
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = tinyModel(shape, dtype, m)) {
      float[] whole = decode(model, false, false, m);
      float[] blocks = decode(model, true, true, m);
      double maxErr = 0;
      double scale = 0;
      for (int i = 0; i < whole.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(whole[i] - blocks[i]));
        scale = Math.max(scale, Math.abs(whole[i]));
      }
      System.out.printf("%s %s: blocks vs every column max abs difference %.2e (logits up to %.2f)%n", shape, dtype,
          maxErr, scale);
      double tolerance = model.precision().compute() == DataType.FLOAT32 ? 1e-5 : 2e-2 * scale;
      assertTrue(maxErr <= tolerance, shape + " " + dtype + ": max abs difference " + maxErr);
    }
  }

  /**
   * A continuous batch's idle rows are left out of its decode steps (KvCache.readInBlocks with rows in no block):
   * the rows decoded get the logits they get when every row is decoded, and a row left out from the third step on
   * changes nothing for the others (its keys and values are not written, the others' are).
   */
  @ParameterizedTest
  @CsvSource({"qwenLike, f32", "olmo2Like, f32", "qwenLike, bf16"})
  void rowsLeftOutOfAStepLeaveTheOthersAsTheyWere(String shape, String dtype) {
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = tinyModel(shape, dtype, m)) {
      float[] every = decode(model, true, true, m);
      float[] leftOut = decode(model, true, true, 2, m);
      int v = model.config().vocabSize();
      int idleFrom = (3 * 6 + 3 * 2) * v; // after the prefill's 3 x 6 positions and two steps of 3 rows
      double maxErr = 0;
      double scale = 0;
      for (int i = 0; i < every.length; i++) {
        boolean rowZero = i >= idleFrom && (i - idleFrom) / v % 3 == 0;
        if (rowZero) {
          assertEquals(0f, leftOut[i], "row 0 is not decoded from the third step on");
          continue;
        }
        maxErr = Math.max(maxErr, Math.abs(every[i] - leftOut[i]));
        scale = Math.max(scale, Math.abs(every[i]));
      }
      System.out.printf("%s %s: row left out vs every row max abs difference %.2e (logits up to %.2f)%n", shape,
          dtype, maxErr, scale);
      double tolerance = model.precision().compute() == DataType.FLOAT32 ? 1e-5 : 2e-2 * scale;
      assertTrue(maxErr <= tolerance, shape + " " + dtype + ": max abs difference " + maxErr);
      model.setScriptedDecode(false);
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> decode(model, false, true, 2, m));
      assertTrue(e.getMessage().contains("compiled decode step only"), e.getMessage());
    }
  }

  /**
   * A model wide enough for oneDNN-layout copies (d=512: the q/k/v, output and gate/up matrices and the head; the
   * down projection, [512, 256], stays plain): the logits agree with the eager path's to rounding, a new policy
   * version is decoded with its own weights (the copies are remade), and once the model is trainable (an optimizer
   * writes its parameters in place) it decodes from the plain parameters, bit for bit as the eager path.
   */
  @ParameterizedTest
  @CsvSource({"f32, 1e-5", "bf16, 2e-2"})
  void wideMatricesDecodeThroughCopiesRemadeForEveryWeightVersion(String dtype, double relative) {
    Engines.start();
    JniUtils.setGradMode(false);
    LlamaConfig c = new LlamaConfig("Qwen2ForCausalLM", 512, 512, 256, 1, 8, 4, 64, 10000.0, null, 1e-6, 64, false,
        true, 1, new int[] {2});
    Map<String, HostTensor> first = distinctNormsAndBiases(LlamaModel.randomWeights(c, 11));
    Map<String, HostTensor> second = distinctNormsAndBiases(LlamaModel.randomWeights(c, 12));
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(c, m, first, Precision.inference(Precision.parseType(dtype)))) {
      model.setReorderedWeights(false);
      assertEquals(0, model.reorderedMatrices());
      float[] plain = decode(model, true, false, m);
      model.setReorderedWeights(true);
      // libtorch refuses oneDNN's bfloat16 products on CPUs without AVX-512 or AVX-NE-CONVERT (plain products there)
      assumeTrue(model.precision().compute() == DataType.FLOAT32 || model.reorderedMatrices() > 0,
          "this CPU runs no bfloat16 oneDNN products: skipped");
      assertEquals(4, model.reorderedMatrices(), "q/k/v, output, gate/up and the head");
      assertClose(decode(model, false, false, m), decode(model, true, false, m), relative, "first version");

      model.loadParameters(second);
      float[] eager = decode(model, false, false, m);
      float[] scripted = decode(model, true, false, m);
      assertClose(eager, scripted, relative, "second version");
      assertTrue(maxDifference(plain, scripted) > 1, "the second version decodes with its own weights");

      model.setTrainable(true);
      assertEquals(0, model.reorderedMatrices(), "a trainable model has no copies");
      assertEquals(0.0, maxDifference(eager, decode(model, true, false, m)), "trainable: plain products, same bits");

      // copies of the second version, then a spell of training with no forward in between: an optimizer writes the
      // parameters in place (here: doubles them), which advances no epoch of its own; the copies made before it must
      // not serve the forwards after it
      model.setTrainable(false);
      assertClose(eager, decode(model, true, false, m), relative, "second version again");
      assertEquals(4, model.reorderedMatrices());
      model.setTrainable(true);
      for (ai.djl.nn.Parameter p : model.namedParameters().values()) {
        p.getArray().addi(p.getArray());
      }
      model.setTrainable(false);
      float[] trained = decode(model, false, false, m);
      assertTrue(maxDifference(eager, trained) > 1, "the doubled weights give other logits");
      assertClose(trained, decode(model, true, false, m), relative, "after training in place");
    }
  }

  private static double maxDifference(float[] a, float[] b) {
    assertEquals(a.length, b.length);
    double max = 0;
    for (int i = 0; i < a.length; i++) {
      assertTrue(Float.isFinite(b[i]), "non-finite logit at " + i);
      max = Math.max(max, Math.abs(a[i] - b[i]));
    }
    return max;
  }

  private static void assertClose(float[] eager, float[] scripted, double relative, String what) {
    double scale = 0;
    for (float v : eager) {
      scale = Math.max(scale, Math.abs(v));
    }
    double diff = maxDifference(eager, scripted);
    System.out.printf("%s: reordered vs eager max abs difference %.2e (logits up to %.2f)%n", what, diff, scale);
    assertTrue(diff <= relative * scale, what + ": max abs difference " + diff + " over logits up to " + scale);
  }

  @Test
  void aFullCacheIsRefusedBeforeAnythingIsWritten() {
    Engines.start();
    JniUtils.setGradMode(false);
    LlamaConfig c = TinyModels.qwenLike();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 3);
        KvCache cache = new KvCache(m, c, 1, 3, DataType.FLOAT32)) {
      assertTrue(model.decodesScripted());
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.forward(
          m.create(new long[] {1, 2, 3, 4}, new Shape(1, 4)), m.create(new long[] {0, 1, 2, 3}, new Shape(1, 4)),
          LlamaModel.causalMask(m, 4), cache, true));
      assertTrue(e.getMessage().contains("KV cache full: 0 + 4 > capacity 3"), e.getMessage());
      assertEquals(0, cache.length());
    }
  }

  /**
   * A tiny model of family {@code shape} in {@code dtype} ({@link #distinctNormsAndBiases}), on {@code m}'s device,
   * with autograd off as generation runs (the script serves forwards without it).
   */
  private static LlamaModel tinyModel(String shape, String dtype, NDManager m) {
    Engines.start();
    JniUtils.setGradMode(false);
    LlamaConfig c = TinyModels.named(shape);
    return LlamaModel.create(c, m, distinctNormsAndBiases(LlamaModel.randomWeights(c, 11)),
        Precision.inference(Precision.parseType(dtype)));
  }

  /**
   * The random weights with every norm weight and bias drawn too (random models have unit norms and zero biases,
   * under which swapping two norms or dropping a bias would change nothing).
   */
  private static Map<String, HostTensor> distinctNormsAndBiases(Map<String, HostTensor> weights) {
    SplittableRandom rng = new SplittableRandom(19);
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (HostTensor t : weights.values()) {
      boolean norm = t.name().contains("norm");
      boolean bias = t.name().endsWith("bias");
      if (norm || bias) {
        float[] v = new float[t.data().length];
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) (norm ? 0.5 + rng.nextDouble() : 0.2 * (rng.nextDouble() - 0.5));
        }
        t = new HostTensor(t.name(), t.shape(), v);
      }
      out.put(t.name(), t);
    }
    return out;
  }

  /**
   * Logits of a 6-token prefill (row 1 left-padded by 2) then 5 decode steps, through a fresh cache; with
   * {@code blocks} the decode steps read the cache in one block per row, row 1's from after its padding.
   */
  private static float[] decode(LlamaModel model, boolean scripted, boolean blocks, NDManager parent) {
    return decode(model, scripted, blocks, Integer.MAX_VALUE, parent);
  }

  /**
   * {@link #decode(LlamaModel, boolean, boolean, NDManager)} whose decode steps from {@code idleFrom} on leave row 0
   * out (an idle row of a continuous batch): the other two rows are decoded in blocks of their own, and row 0's
   * logits of those steps stay 0.
   */
  private static float[] decode(LlamaModel model, boolean scripted, boolean blocks, int idleFrom,
      NDManager parent) {
    model.setScriptedDecode(scripted);
    assertEquals(scripted, model.decodesScripted());
    LlamaConfig c = model.config();
    int b = 3;
    int prompt = 6;
    int steps = 5;
    int pad = 2;
    SplittableRandom rng = new SplittableRandom(5);
    try (NDManager m = parent.newSubManager();
        KvCache cache = new KvCache(m, c, b, prompt + steps, model.precision().compute())) {
      long[] tokens = new long[b * prompt];
      long[] positions = new long[b * prompt];
      float[] mask = new float[b * prompt * prompt];
      for (int i = 0; i < b; i++) {
        int start = i == 1 ? pad : 0;
        for (int t = 0; t < prompt; t++) {
          tokens[i * prompt + t] = rng.nextInt(c.vocabSize());
          positions[i * prompt + t] = Math.max(0, t - start);
          for (int k = 0; k < prompt; k++) {
            boolean visible = k <= t && k >= start;
            mask[(i * prompt + t) * prompt + k] = visible || (t < start && k == t) ? 0f : LlamaModel.MASKED;
          }
        }
      }
      NDArray pre = model.forward(m.create(tokens, new Shape(b, prompt)), m.create(positions, new Shape(b, prompt)),
          m.create(mask, new Shape(b, 1, prompt, prompt)), cache, false);
      float[] out = new float[(b * prompt + b * steps) * c.vocabSize()];
      float[] first = pre.toFloatArray();
      System.arraycopy(first, 0, out, 0, first.length);
      int at = first.length;
      for (int s = 0; s < steps; s++) {
        long[] next = new long[b];
        long[] pos = new long[b];
        float[] stepMask = new float[b * (prompt + s + 1)];
        for (int i = 0; i < b; i++) {
          next[i] = rng.nextInt(c.vocabSize());
          pos[i] = prompt + s - (i == 1 ? pad : 0);
          for (int k = 0; i == 1 && k < pad; k++) {
            stepMask[i * (prompt + s + 1) + k] = LlamaModel.MASKED;
          }
        }
        int v = c.vocabSize();
        if (s >= idleFrom) {
          // rows 1 (padded: its mask hides the first columns) and 2, in blocks of their own
          cache.readInBlocks(new int[] {1, 2}, new int[] {2, 3}, new int[] {pad, 0});
          int len = prompt + s + 1;
          float[] kept = Arrays.copyOfRange(stepMask, len, 3 * len);
          float[] logits = model.forward(m.create(new long[] {next[1], next[2]}, new Shape(2, 1)),
              m.create(new long[] {pos[1], pos[2]}, new Shape(2, 1)), m.create(kept, new Shape(2, 1, 1, len)),
              cache, true).toFloatArray();
          System.arraycopy(logits, 0, out, at + v, 2 * v);
          at += b * v;
          continue;
        }
        if (blocks) {
          cache.readInBlocks(new int[] {0, 1, 2}, new int[] {1, 2, 3}, new int[] {0, pad, 0});
        }
        float[] logits = model.forward(m.create(next, new Shape(b, 1)), m.create(pos, new Shape(b, 1)),
            m.create(stepMask, new Shape(b, 1, 1, prompt + s + 1)), cache, true).toFloatArray();
        System.arraycopy(logits, 0, out, at, logits.length);
        at += logits.length;
      }
      return out;
    }
  }
}
