package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.model.io.HostTensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** bfloat16 on an engine that has none of its own: casts, parameters in and out, and the names users type. */
class PrecisionTest {

  /** bfloat16 keeps the top 16 bits of a float32, rounded to nearest, ties to even. */
  private static float bf16(float x) {
    int bits = Float.floatToRawIntBits(x);
    int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
    return Float.intBitsToFloat(rounded & 0xffff0000);
  }

  @Test
  void settingsNameATypeOrLetTheHardwareChoose() {
    assertEquals(DataType.FLOAT32, Precision.resolveType("f32", List.of("cpu")));
    assertEquals(DataType.BFLOAT16, Precision.resolveType(" BF16 ", List.of("cpu")));
    DataType cpu = Engines.hasBf16Units("cpu") ? DataType.BFLOAT16 : DataType.FLOAT32;
    assertEquals(cpu, Precision.resolveType("auto", List.of("cpu")));
    // bfloat16 only if every device has the units: a GPU this machine lacks has none
    assertEquals(DataType.FLOAT32, Precision.resolveType("auto", List.of("cpu", "gpu:64")));
    assertThrows(IllegalArgumentException.class, () -> Precision.resolveType("fp16", List.of("cpu")));
    assertThrows(IllegalArgumentException.class, () -> Precision.resolveType("auto", List.of()));
  }

  @Test
  void castsRoundToNearestEvenBothWays() {
    Engines.start();
    float[] values = {1f, 1.00390625f, 1.01171875f, 3.14159265f, -2.5e-3f, 1e9f, 65504f, 0f};
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray x = m.create(values, new Shape(values.length));
      NDArray half = Precision.as(x, DataType.BFLOAT16, m);
      assertEquals(DataType.BFLOAT16, Precision.typeOf(half));
      NDArray back = Precision.as(half, DataType.FLOAT32, m);
      float[] got = back.toFloatArray();
      for (int i = 0; i < values.length; i++) {
        assertEquals(bf16(values[i]), got[i], "bf16 of " + values[i]);
      }
      assertEquals(1f, got[1], "a tie rounds to the even neighbour");
      assertEquals(1.015625f, got[2], "a tie rounds to the even neighbour (up)");
      assertTrue(Precision.as(x, DataType.FLOAT32, m) == x, "no cast when the type is already right");
    }
  }

  @Test
  void bf16ModelHoldsParametersRoundedAndReturnsThemAsFloat32() {
    Engines.start();
    LlamaConfig c = TinyModels.named("qwen3Like");
    Map<String, HostTensor> weights = LlamaModel.randomWeights(c, 3);
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(c, m, weights, Precision.BF16)) {
      assertEquals(Precision.BF16, model.precision());
      for (var e : model.toHostTensors().entrySet()) {
        float[] want = weights.get(e.getKey()).data().clone();
        for (int i = 0; i < want.length; i++) {
          want[i] = bf16(want[i]);
        }
        assertArrayEquals(want, e.getValue().data(), e.getKey());
      }
      // a newer policy arrives as float32 host tensors (the learner's masters) and is rounded in place
      Map<String, HostTensor> update = new LinkedHashMap<>();
      HostTensor norm = weights.get("model.norm.weight");
      float[] data = new float[norm.data().length];
      java.util.Arrays.fill(data, 1.00390625f);
      update.put(norm.name(), new HostTensor(norm.name(), norm.shape(), data));
      model.loadParameters(update);
      float[] stored = model.toHostTensors().get("model.norm.weight").data();
      for (float v : stored) {
        assertEquals(1f, v);
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /**
   * A model keeps its weights on the device only: the host arrays it was built from can be collected (DJL's
   * parameter initializers held them for the model's whole life, 4 bytes per parameter of Java heap).
   */
  @Test
  void aModelDoesNotKeepTheHostCopyOfItsWeights() throws Exception {
    Engines.start();
    LlamaConfig c = TinyModels.named("qwen3Like");
    Map<String, HostTensor> weights = LlamaModel.randomWeights(c, 4);
    java.lang.ref.WeakReference<float[]> probe =
        new java.lang.ref.WeakReference<>(weights.get("model.embed_tokens.weight").data());
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.create(c, m, weights)) {
      weights = null;
      for (int i = 0; i < 20 && probe.get() != null; i++) {
        System.gc();
        Thread.sleep(10);
      }
      assertTrue(probe.get() == null, "the model still holds the host copy of its embedding");
      assertEquals(c.vocabSize(), model.toHostTensors().get("model.embed_tokens.weight").shape()[0]);
    }
  }

  @Test
  void typeNamesAreCheckedWithTheChoices() {
    assertEquals(DataType.BFLOAT16, Precision.parseType("bf16"));
    assertEquals(DataType.FLOAT32, Precision.parseType("F32"));
    var e = assertThrows(IllegalArgumentException.class, () -> Precision.parseType("fp16"));
    assertTrue(e.getMessage().contains("fp16") && e.getMessage().contains("f32 or bf16"), e.getMessage());
    assertEquals(Precision.BF16_MIXED, Precision.training(DataType.BFLOAT16));
    assertEquals(Precision.BF16, Precision.inference(DataType.BFLOAT16));
  }
}
