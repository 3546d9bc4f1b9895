package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.learner.checkpoint.Checkpoint;
import dev.nucleon.learner.checkpoint.CheckpointStore;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.lora.PeftAdapter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A learner with a LoRA adapter attached trains the adapter only, publishes weights that generate as the adapted
 * policy does, and checkpoints the adapter alone (PEFT's layout) so a resumed run continues exactly.
 */
class LoraLearnerTest {

  static final PeftAdapter.Settings LORA = PeftAdapter.Settings.of(4, 8, 0, List.of("all-linear"));
  static final int N = 3;

  @Test
  void trainsTheAdapterOnlyAndPublishesTheAdaptedPolicy() {
    Engines.start();
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel policy = LlamaModel.create(ExactResumeTest.SHAPE, m, LlamaModel.randomWeights(ExactResumeTest.SHAPE,
            3));
        LlamaModel published = LlamaModel.create(ExactResumeTest.SHAPE, m,
            LlamaModel.randomWeights(ExactResumeTest.SHAPE, 3))) {
      policy.attachLora(LORA, 5);
      Map<String, HostTensor> base = policy.toHostTensors();
      try (Learner learner = new Learner(policy, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0)) {
        Map<String, HostTensor> state = learner.optimizer().state();
        // two moments for each of the 7 projections' A and B in every layer, nothing for the frozen base
        assertEquals(7 * 2 * 2 * ExactResumeTest.SHAPE.numLayers(), state.size(), state.keySet().toString());
        assertTrue(state.keySet().stream().allMatch(k -> k.contains(".lora_")), state.keySet().toString());
        ExactResumeTest.train(learner, 0, N);
      }
      Map<String, HostTensor> after = policy.toHostTensors();
      for (var e : base.entrySet()) {
        assertArrayEquals(e.getValue().data(), after.get(e.getKey()).data(), e.getKey() + " is frozen");
      }
      double movedB = 0;
      for (PeftAdapter.Module mod : policy.lora().modules().values()) {
        for (float v : mod.b().data()) {
          movedB = Math.max(movedB, Math.abs(v));
        }
      }
      assertTrue(movedB > 1e-4, "the adapter trained (largest B entry " + movedB + ")");

      JniUtils.setGradMode(false);
      long[] ids = {1, 5, 9, 13, 2};
      float[] base0 = published.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      published.loadParameters(policy.effectiveHostTensors());
      float[] want = policy.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      float[] got = published.logits(m.create(ids, new Shape(1, ids.length))).toFloatArray();
      double err = 0;
      double moved = 0;
      for (int i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(want[i] - got[i]));
        moved = Math.max(moved, Math.abs(want[i] - base0[i]));
      }
      assertTrue(err < 1e-5, "published (merged) weights vs the adapted policy: max abs difference " + err);
      assertTrue(moved > 1e-3, "the trained adapter moved the logits away from the base's by " + moved);
    } finally {
      JniUtils.setGradMode(false);
    }
  }

  /**
   * Over a base held in bfloat16 the adapter trains exactly as over float32 masters computing in bfloat16 (the
   * masters would be cast to those very bfloat16 values in every forward), in float32, with half the base's bytes.
   */
  @Test
  void aBfloat16BaseTrainsTheAdapterAsFloat32MastersDo() {
    Engines.start();
    Map<String, HostTensor> weights = LlamaModel.randomWeights(ExactResumeTest.SHAPE, 3);
    PeftAdapter[] adapters = new PeftAdapter[2];
    long[] baseBytes = new long[2];
    dev.nucleon.model.Precision[] precisions = {dev.nucleon.model.Precision.BF16_MIXED,
        dev.nucleon.model.Precision.BF16};
    for (int i = 0; i < 2; i++) {
      try (NDManager m = NDManager.newBaseManager();
          LlamaModel model = LlamaModel.create(ExactResumeTest.SHAPE, m, weights, precisions[i])) {
        baseBytes[i] = model.parameterBytes();
        model.attachLora(LORA, 5);
        model.trainableParameters().values().forEach(p -> assertEquals(ai.djl.ndarray.types.DataType.FLOAT32,
            p.getArray().getDataType(), "the adapter trains in float32"));
        try (Learner learner = new Learner(model, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0)) {
          ExactResumeTest.train(learner, 0, N);
        }
        adapters[i] = model.lora();
      }
    }
    for (var module : adapters[0].modules().values()) {
      assertArrayEquals(module.a().data(), adapters[1].modules().get(module.name()).a().data(), module.name());
      assertArrayEquals(module.b().data(), adapters[1].modules().get(module.name()).b().data(), module.name());
    }
    assertTrue(adapters[1].modules().values().stream().anyMatch(mod -> {
      for (float v : mod.b().data()) {
        if (v != 0) {
          return true;
        }
      }
      return false;
    }), "the adapter trained");
    assertTrue(baseBytes[1] * 2 <= baseBytes[0] + 8, "bf16 base " + baseBytes[1] + " bytes vs masters "
        + baseBytes[0]);
  }

  /**
   * A LoRA policy's KL reference is its base: with the adapter switched off the learner needs no second copy of
   * the model, and trains as with an explicit frozen copy of the base (up to the per-part versus fused products).
   */
  @Test
  void theBaseUnderTheAdapterIsTheKlReference() {
    Engines.start();
    LossSettings kl = new LossSettings(0.2, 0.28, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0.5,
        LossSettings.KlEstimator.K3);
    double[][] kls = new double[2][N];
    PeftAdapter[] trained = new PeftAdapter[2];
    for (int i = 0; i < 2; i++) {
      try (NDManager m = NDManager.newBaseManager(); LlamaModel model = policy(m);
          LlamaModel copy = i == 0 ? LlamaModel.create(ExactResumeTest.SHAPE, m,
              LlamaModel.randomWeights(ExactResumeTest.SHAPE, 3)) : null;
          Learner learner = new Learner(model, copy, kl, ExactResumeTest.OPTIMIZER, 1f, 0)) {
        for (int s = 0; s < N; s++) {
          kls[i][s] = learner.train(ExactResumeTest.batch(s, learner.version())).kl();
        }
        trained[i] = model.lora();
      }
    }
    assertEquals(0, kls[1][0], 1e-6, "a fresh adapter (B = 0) is its base: no KL at the first step");
    assertTrue(kls[1][N - 1] > 1e-6, "the policy moved away from its base: KL " + kls[1][N - 1]);
    for (int s = 0; s < N; s++) {
      assertEquals(kls[0][s], kls[1][s], 1e-5 + 1e-3 * kls[0][s], "KL at step " + s);
    }
    for (var module : trained[0].modules().values()) {
      float[] want = module.b().data();
      float[] got = trained[1].modules().get(module.name()).b().data();
      for (int j = 0; j < want.length; j++) {
        assertEquals(want[j], got[j], 1e-5, module.name());
      }
    }
  }

  @Test
  void resumedLoraTrainingMatchesUninterruptedTraining(@TempDir Path dir) throws Exception {
    Engines.start();
    Map<String, HostTensor> straight;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = policy(m);
        Learner learner = new Learner(model, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0)) {
      ExactResumeTest.train(learner, 0, 2 * N);
      straight = model.effectiveHostTensors();
    }
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = policy(m);
        Learner learner = new Learner(model, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0)) {
      ExactResumeTest.train(learner, 0, N);
      LearnerCheckpoint.save(new CheckpointStore(dir, 2), learner, 8L * N, Map.of(), new byte[0],
          LearnerCheckpoint.ModelFolder.FLOAT32);
    }
    Checkpoint ckpt = new CheckpointStore(dir, 2).latestValid().orElseThrow();
    assertTrue(ckpt.has("adapter/adapter_config.json") && ckpt.has("adapter/adapter_model.safetensors"),
        "the adapter is saved in PEFT's layout");
    assertTrue(!LearnerCheckpoint.hasModel(ckpt) && !java.nio.file.Files.exists(ckpt.dir().resolve("model")),
        "the frozen base is not copied into the checkpoint");
    Map<String, HostTensor> resumed;
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(ExactResumeTest.SHAPE, m,
            LlamaModel.randomWeights(ExactResumeTest.SHAPE, 3))) { // the run's base
      model.attachLora(LORA, 99); // fresh values, which the checkpoint overwrites
      try (Learner learner = new Learner(model, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0)) {
        LearnerCheckpoint.restore(ckpt, learner);
        assertEquals(N, learner.version());
        ExactResumeTest.train(learner, N, 2 * N);
        resumed = model.effectiveHostTensors();
      }
    }
    double maxDiff = 0;
    for (var e : straight.entrySet()) {
      float[] a = e.getValue().data();
      float[] b = resumed.get(e.getKey()).data();
      for (int i = 0; i < a.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      }
    }
    assertTrue(maxDiff <= 1e-6, "resumed vs uninterrupted LoRA training: max difference " + maxDiff);

    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(ExactResumeTest.SHAPE, m,
            LlamaModel.randomWeights(ExactResumeTest.SHAPE, 3));
        Learner learner = new Learner(model, null, ExactResumeTest.LOSS, ExactResumeTest.OPTIMIZER, 1f, 0)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> LearnerCheckpoint.restore(ckpt, learner));
      assertTrue(e.getMessage().contains("trained a LoRA adapter but this run trains every weight"), e.getMessage());
      // a full-weight run builds its policy from the checkpoint, which holds no model: refused with the same reason
      e = assertThrows(IllegalArgumentException.class, () -> LearnerCheckpoint.model(ckpt));
      assertTrue(e.getMessage().contains("trained a LoRA adapter") && e.getMessage().contains("rank = 0"),
          e.getMessage());
    }
  }

  private static LlamaModel policy(NDManager m) {
    LlamaModel model = LlamaModel.create(ExactResumeTest.SHAPE, m, LlamaModel.randomWeights(ExactResumeTest.SHAPE, 3));
    model.attachLora(LORA, 5);
    return model;
  }
}
