package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.lora.PeftAdapter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * A model with a LoRA adapter attached computes what the model with the adapter merged into its weights computes,
 * with and without autograd and through the KV cache, and trains only the adapter.
 */
class LoraTest {

  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "qwen3Like", "olmo2Like", "ernieBiased", "olmo3Like", "qwen3MoeLike"})
  void baseWithAdapterEqualsTheMergedModel(String shape) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    Map<String, HostTensor> internal = LlamaModel.randomWeights(c, 4);
    PeftAdapter adapter = randomAdapter(c, PeftAdapter.Settings.of(3, 6, 0, List.of("all-linear")), 12);
    Map<String, HostTensor> merged = WeightLayout.fromHuggingFace(c,
        adapter.mergeInto(c, WeightLayout.toHuggingFace(c, internal)), "merged");
    long[] ids = {5, 1, 7, 3, 9, 2, 8};
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel withLora = LlamaModel.create(c, m, internal);
        LlamaModel mergedModel = LlamaModel.create(c, m, merged)) {
      withLora.attachLora(adapter);
      for (boolean grad : new boolean[] {false, true}) {
        JniUtils.setGradMode(grad);
        try {
          float[] want = mergedModel.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
          float[] got = withLora.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
          assertClose(want, got, 2e-5, shape + (grad ? " with autograd" : " without autograd"));
        } finally {
          JniUtils.setGradMode(false);
        }
      }
      // generation's path: through the KV cache, op by op (the decode script has no side products)
      assertFalse(withLora.decodesScripted());
      float[] want = cachedLogits(mergedModel, ids, m);
      float[] got = cachedLogits(withLora, ids, m);
      assertClose(want, got, 2e-5, shape + " through the cache");
      assertArrayEquals(adapter.modules().get("model.layers.0.mlp.down_proj").b().data(),
          withLora.lora().modules().get("model.layers.0.mlp.down_proj").b().data());
    }
  }

  @Test
  void onlyTheAdapterTrainsAndAFreshOneChangesNothing() {
    Engines.start();
    LlamaConfig c = TinyModels.qwen3Like();
    long[] ids = {5, 1, 7, 3};
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 4);
        LlamaModel plain = LlamaModel.random(c, m, 4)) {
      // an adapted model multiplies by each part of the fused projections (the training path's products), which
      // round differently from one fused product: compare with the plain model on that path (autograd on)
      JniUtils.setGradMode(true);
      float[] before = plain.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      model.attachLora(PeftAdapter.Settings.of(2, 4, 0, List.of("q_proj", "v_proj", "up_proj")), 7);
      assertArrayEquals(before, model.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray(),
          "B starts at zero: the adapter changes nothing until trained");
      PeftAdapter fresh = model.lora();
      assertEquals(3 * c.numLayers(), fresh.modules().size());
      float[] a = fresh.modules().get("model.layers.0.self_attn.q_proj").a().data();
      double bound = 1 / Math.sqrt(c.hiddenSize());
      for (float v : a) {
        assertTrue(Math.abs(v) <= bound, "A within +-1/sqrt(in): " + v);
      }
      assertThrows(IllegalStateException.class, () -> model.attachLora(fresh));

      JniUtils.setGradMode(false);
      // a nonzero B, so that A gets a gradient too
      NDArray nudge = Ops.scalar(m, 0.01);
      for (Parameter p : model.trainableParameters().values()) {
        p.getArray().addi(nudge);
      }
      model.setTrainable(true);
      assertEquals(6 * c.numLayers(), model.trainableParameters().size());
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray logits = model.logits(m.create(ids, new Shape(1, ids.length)));
        gc.backward(logits.square().sum());
      }
      for (Parameter p : model.trainableParameters().values()) {
        assertTrue(p.getArray().getGradient().abs().sum().getFloat() > 0, p.getName() + " has a gradient");
      }
      for (Parameter p : model.namedParameters().values()) {
        assertFalse(p.requiresGradient(), p.getName() + " is frozen");
      }
    } finally {
      JniUtils.setGradMode(false);
    }
  }

  /** Mixed precision: bf16 compute, float32 masters; the adapter's float32 matrices get float32 gradients. */
  @Test
  void mixedPrecisionTrainsFloat32AdapterMatrices() {
    Engines.start();
    LlamaConfig c = TinyModels.qwenLike();
    long[] ids = {5, 1, 7, 3};
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(c, m, LlamaModel.randomWeights(c, 4), Precision.BF16_MIXED)) {
      JniUtils.setGradMode(false);
      model.attachLora(PeftAdapter.Settings.of(2, 4, 0, List.of("all-linear")), 7);
      NDArray nudge = Ops.scalar(m, 0.01);
      for (Parameter p : model.trainableParameters().values()) {
        p.getArray().addi(nudge);
      }
      model.setTrainable(true);
      assertThrows(IllegalStateException.class,
          () -> model.attachLora(PeftAdapter.Settings.of(2, 4, 0, List.of("q_proj")), 1));
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        gc.backward(model.logits(m.create(ids, new Shape(1, ids.length))).square().sum());
      }
      for (Parameter p : model.trainableParameters().values()) {
        NDArray g = p.getArray().getGradient();
        assertEquals(ai.djl.ndarray.types.DataType.FLOAT32, g.getDataType(), p.getName());
        assertTrue(g.abs().sum().getFloat() > 0, p.getName() + " has a gradient");
      }
      for (Parameter p : model.namedParameters().values()) {
        assertFalse(p.requiresGradient(), p.getName() + " is frozen");
      }
    } finally {
      JniUtils.setGradMode(false);
    }
  }

  @Test
  void anAdapterForAnotherShapeIsRefused() {
    Engines.start();
    LlamaConfig c = TinyModels.qwenLike();
    LlamaConfig other = TinyModels.qwen3Like();
    PeftAdapter adapter = randomAdapter(other, PeftAdapter.Settings.of(2, 4, 0, List.of("q_proj")), 1);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 4)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.attachLora(adapter));
      assertTrue(e.getMessage().contains("model.layers.0.self_attn.q_proj: B @ A is [48, 32] but the layer is "
          + "[32, 32]"), e.getMessage());
      assertNull(model.lora());
    }
  }

  /**
   * Adapter-only versions: a rollout model that holds the base and is sent the learner's adapter alone (merged
   * into its weights, or as side products) computes what the learner's model computes, version after version
   * (each merge starts from the base, so nothing accumulates).
   */
  @ParameterizedTest
  @CsvSource({"qwenLike, MERGED", "qwenLike, SIDE_PRODUCTS", "ernieBiased, MERGED", "olmo3Like, MERGED",
      "olmo3Like, SIDE_PRODUCTS"})
  void adapterOnlyVersionsGiveTheLearnersModel(String shape, LlamaModel.AdapterUpdates how) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    Map<String, HostTensor> internal = LlamaModel.randomWeights(c, 4);
    PeftAdapter.Settings settings = PeftAdapter.Settings.of(3, 6, 0, List.of("all-linear"));
    long[] ids = {5, 1, 7, 3, 9, 2, 8};
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel learner = LlamaModel.create(c, m, internal);
        LlamaModel rollout = LlamaModel.create(c, m, internal)) {
      learner.attachLora(randomAdapter(c, settings, 12));
      rollout.takeAdapterUpdates(settings, how);
      assertEquals(how == LlamaModel.AdapterUpdates.MERGED, rollout.decodesScripted(),
          "merged versions keep the one-call decode step");
      for (long version = 1; version <= 2; version++) {
        learner.setLoraValues(randomAdapter(c, settings, 12 + version));
        Map<String, HostTensor> update = learner.policyUpdate();
        assertTrue(update.keySet().stream().allMatch(n -> n.startsWith("base_model.model.model.layers.")
            && n.contains(".lora_")), "a version carries the adapter alone: " + update.keySet());
        assertEquals(2 * 7 * c.numLayers(), update.size());
        rollout.loadParameters(update);
        assertClose(cachedLogits(learner, ids, m), cachedLogits(rollout, ids, m), 2e-5,
            shape + " " + how + " version " + version);
      }
    }
  }

  /** In bfloat16 the merged weights are rounded once, as the full-weight path rounds the learner's merged ones. */
  @Test
  void mergedAdapterVersionsInBfloat16MatchFullWeightVersions() {
    Engines.start();
    LlamaConfig c = TinyModels.qwen3Like();
    Map<String, HostTensor> internal = LlamaModel.randomWeights(c, 4);
    PeftAdapter.Settings settings = PeftAdapter.Settings.of(4, 8, 0, List.of("q_proj", "v_proj", "down_proj"));
    Precision bf16 = Precision.inference(ai.djl.ndarray.types.DataType.BFLOAT16);
    long[] ids = {5, 1, 7, 3, 9, 2, 8};
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel learner = LlamaModel.create(c, m, internal);
        LlamaModel full = LlamaModel.create(c, m, internal, bf16);
        LlamaModel rollout = LlamaModel.create(c, m, internal, bf16)) {
      learner.attachLora(randomAdapter(c, settings, 3));
      rollout.takeAdapterUpdates(settings, LlamaModel.AdapterUpdates.MERGED);
      rollout.loadParameters(learner.policyUpdate());
      full.loadParameters(learner.effectiveHostTensors());
      assertClose(cachedLogits(full, ids, m), cachedLogits(rollout, ids, m), 2e-2, "bf16 merged vs full weights");
    }
  }

  @Test
  void adapterVersionsThatDoNotFitAreRefusedWithTheReason() {
    Engines.start();
    LlamaConfig c = TinyModels.qwenLike();
    Map<String, HostTensor> internal = LlamaModel.randomWeights(c, 4);
    PeftAdapter.Settings settings = PeftAdapter.Settings.of(2, 4, 0, List.of("q_proj", "v_proj"));
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel learner = LlamaModel.create(c, m, internal);
        LlamaModel merged = LlamaModel.create(c, m, internal);
        LlamaModel side = LlamaModel.create(c, m, internal);
        LlamaModel plain = LlamaModel.create(c, m, internal)) {
      learner.attachLora(randomAdapter(c, settings, 3));
      merged.takeAdapterUpdates(settings, LlamaModel.AdapterUpdates.MERGED);
      side.takeAdapterUpdates(settings, LlamaModel.AdapterUpdates.SIDE_PRODUCTS);
      Map<String, HostTensor> update = learner.policyUpdate();
      Map<String, HostTensor> partial = new java.util.LinkedHashMap<>(update);
      partial.remove("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
      for (LlamaModel rollout : List.of(merged, side)) {
        var e = assertThrows(IllegalArgumentException.class, () -> rollout.loadParameters(partial));
        assertTrue(e.getMessage().contains("layers.1.self_attn.v_proj"), e.getMessage());
      }
      for (LlamaModel rollout : List.of(merged, side)) {
        var e = assertThrows(IllegalArgumentException.class, () -> rollout.loadParameters(internal));
        assertTrue(e.getMessage().contains("adapter-only") && e.getMessage().contains("full weights"),
            e.getMessage());
      }
      IllegalArgumentException e;
      e = assertThrows(IllegalArgumentException.class, () -> plain.loadParameters(update));
      assertTrue(e.getMessage().contains("takes no adapter"), e.getMessage());
      try (NDManager lm = NDManager.newBaseManager(); LlamaModel other = LlamaModel.create(c, lm, internal)) {
        other.attachLora(randomAdapter(c, PeftAdapter.Settings.of(2, 4, 0, List.of("q_proj", "o_proj")), 3));
        e = assertThrows(IllegalArgumentException.class, () -> merged.loadParameters(other.policyUpdate()));
        assertTrue(e.getMessage().contains("o_proj") && e.getMessage().contains("do not target"), e.getMessage());
      }
      // nothing was written by the refused versions: the models still compute as the base
      long[] ids = {5, 1, 7, 3};
      assertClose(cachedLogits(plain, ids, m), cachedLogits(merged, ids, m), 0, "merged after refusals");
      assertClose(cachedLogits(plain, ids, m), cachedLogits(side, ids, m), 2e-6, "side products after refusals");
    }
  }

  private static float[] cachedLogits(LlamaModel model, long[] ids, NDManager parent) {
    JniUtils.setGradMode(false);
    try (NDManager m = parent.newSubManager();
        KvCache cache = new KvCache(m, model.config(), 1, ids.length, model.precision().compute())) {
      int prompt = 4;
      long[] first = java.util.Arrays.copyOf(ids, prompt);
      long[] pos = {0, 1, 2, 3};
      List<Float> out = new ArrayList<>();
      for (float f : model.forward(m.create(first, new Shape(1, prompt)), m.create(pos, new Shape(1, prompt)),
          LlamaModel.causalMask(m, prompt), cache, true).toFloatArray()) {
        out.add(f);
      }
      for (int t = prompt; t < ids.length; t++) {
        for (float f : model.forward(m.create(new long[] {ids[t]}, new Shape(1, 1)),
            m.create(new long[] {t}, new Shape(1, 1)), m.zeros(new Shape(1, 1, 1, t + 1)), cache, true)
            .toFloatArray()) {
          out.add(f);
        }
      }
      float[] a = new float[out.size()];
      for (int i = 0; i < a.length; i++) {
        a[i] = out.get(i);
      }
      return a;
    }
  }

  private static PeftAdapter randomAdapter(LlamaConfig c, PeftAdapter.Settings s, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    java.util.Map<String, long[]> shapes = new java.util.HashMap<>();
    WeightLayout.huggingFaceShapes(c).forEach((k, v) -> shapes.put(k, v));
    List<PeftAdapter.Module> modules = new ArrayList<>();
    for (String n : s.modules(c)) {
      long[] w = shapes.get(n + ".weight");
      int r = s.rankOf(n);
      modules.add(new PeftAdapter.Module(n, random(new long[] {r, w[1]}, rng), random(new long[] {w[0], r}, rng),
          s.scalingOf(n)));
    }
    return new PeftAdapter(s, modules);
  }

  private static HostTensor random(long[] shape, SplittableRandom rng) {
    return TinyModels.randomTensor("t", shape, rng, 0.3f);
  }

  private static void assertClose(float[] want, float[] got, double tolerance, String what) {
    assertEquals(want.length, got.length, what);
    double err = 0;
    for (int i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(want[i] - got[i]));
    }
    System.out.printf("%s: base + LoRA vs merged max abs difference %.2e%n", what, err);
    assertTrue(err <= tolerance, what + ": max abs difference " + err);
  }
}
