package dev.nucleon.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.TestResources;
import dev.nucleon.model.TinyModels;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {

  static final long[] TOKENS = {1, 403, 407, 261, 378, 11, 300, 290, 261, 420};

  @BeforeAll
  static void engine() {
    Engines.start();
  }

  static float[] logits(ModelFiles.Checkpoint ckpt) {
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ckpt.instantiate(m)) {
      return model.logits(m.create(TOKENS, new Shape(1, TOKENS.length))).toFloatArray();
    }
  }

  static double maxDiff(float[] a, float[] b) {
    assertEquals(a.length, b.length);
    double d = 0;
    for (int i = 0; i < a.length; i++) {
      d = Math.max(d, Math.abs(a[i] - b[i]));
    }
    return d;
  }

  @Test
  void llama2cToSafetensorsAndBackGivesTheSameLogits(@TempDir Path dir) throws Exception {
    ModelFiles.Checkpoint bin = ModelFiles.read(TestResources.storiesModel());
    HfCheckpoint.write(dir, bin.config(), bin.huggingFace());
    assertTrue(Files.exists(dir.resolve("config.json")) && Files.exists(dir.resolve("model.safetensors")));
    ModelFiles.Checkpoint hf = ModelFiles.read(dir);
    assertEquals(bin.config(), hf.config());
    double d = maxDiff(logits(bin), logits(hf));
    System.out.printf("llama2.c -> safetensors -> reload: max logit difference %.2e%n", d);
    assertTrue(d <= 1e-6, "max difference " + d);
  }

  @Test
  void hfRoundTripKeepsEveryTensorIncludingBiasesAndShards(@TempDir Path dir) throws Exception {
    LlamaConfig c = TinyModels.qwenLike();
    Map<String, HostTensor> hf;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 5)) {
      hf = model.toHuggingFace();
    }
    assertTrue(hf.containsKey("model.layers.1.self_attn.k_proj.bias"));
    assertTrue(hf.containsKey("lm_head.weight"));
    HfCheckpoint.write(dir.resolve("one"), c, hf);
    HfCheckpoint.write(dir.resolve("sharded"), c, hf, ai.djl.ndarray.types.DataType.FLOAT32, 8 * 1024);
    assertTrue(Files.exists(dir.resolve("sharded/model.safetensors.index.json")));
    assertTrue(Files.exists(dir.resolve("sharded/model-00002-of-" + String.format("%05d",
        Files.list(dir.resolve("sharded")).filter(p -> p.toString().endsWith(".safetensors")).count())
        + ".safetensors")));
    for (String variant : new String[] {"one", "sharded"}) {
      ModelFiles.Checkpoint back = ModelFiles.read(dir.resolve(variant));
      assertEquals(c, back.config());
      assertEquals(hf.keySet(), back.huggingFace().keySet());
      for (var e : hf.entrySet()) {
        assertArrayEquals(e.getValue().data(), back.huggingFace().get(e.getKey()).data(), e.getKey());
      }
      try (NDManager m = NDManager.newBaseManager(); LlamaModel model = back.instantiate(m)) {
        assertEquals(hf.keySet(), model.toHuggingFace().keySet());
        for (var e : model.toHuggingFace().entrySet()) {
          assertArrayEquals(hf.get(e.getKey()).data(), e.getValue().data(), e.getKey());
        }
      }
    }
  }

  /**
   * A checkpoint saved as bfloat16 holds every value rounded to nearest even (as PyTorch's {@code .to(bfloat16)}),
   * half the bytes, says {@code torch_dtype: bfloat16}, and reads back as a bfloat16 checkpoint, in one file or
   * in shards.
   */
  @Test
  void bf16SavesRoundToNearestEvenAndReadBackAsBf16(@TempDir Path dir) throws Exception {
    LlamaConfig c = TinyModels.qwenLike();
    Map<String, HostTensor> hf;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 6)) {
      hf = model.toHuggingFace();
    }
    // ties and specials: 1 + 2^-8 (tie, to 1), 1 + 3 * 2^-8 (tie, to 1 + 2^-6), NaN, infinity, -0, overflow
    float[] first = hf.values().iterator().next().data();
    first[0] = 1.00390625f;
    first[1] = 1.01171875f;
    first[2] = Float.NaN;
    first[3] = Float.NEGATIVE_INFINITY;
    first[4] = -0f;
    first[5] = Float.MAX_VALUE; // above bfloat16's largest finite value once rounded: +infinity, as PyTorch gives
    var bf16 = ai.djl.ndarray.types.DataType.BFLOAT16;
    HfCheckpoint.write(dir.resolve("one"), c, hf, bf16);
    HfCheckpoint.write(dir.resolve("sharded"), c, hf, bf16, 8 * 1024);
    HfCheckpoint.write(dir.resolve("f32"), c, hf);
    long half = Files.size(dir.resolve("one/model.safetensors"));
    long full = Files.size(dir.resolve("f32/model.safetensors"));
    assertTrue(Math.abs(2 * half - full) < 4096, "bf16 file " + half + " bytes vs f32 " + full);
    assertTrue(Files.readString(dir.resolve("one/config.json")).contains("\"torch_dtype\" : \"bfloat16\""));
    for (String variant : new String[] {"one", "sharded"}) {
      ModelFiles.Checkpoint back = ModelFiles.read(dir.resolve(variant));
      assertEquals(bf16, back.storedType(), variant);
      for (var e : hf.entrySet()) {
        float[] want = e.getValue().data();
        float[] got = back.huggingFace().get(e.getKey()).data();
        for (int i = 0; i < want.length; i++) {
          float w = want[i];
          float expect = Float.isNaN(w) ? Float.NaN : Float.intBitsToFloat(
              (Float.floatToRawIntBits(w) + 0x7fff + ((Float.floatToRawIntBits(w) >>> 16) & 1)) & 0xffff0000);
          assertEquals(Float.floatToIntBits(expect), Float.floatToIntBits(got[i]), e.getKey() + "[" + i + "]");
        }
      }
    }
    float[] head = ModelFiles.read(dir.resolve("one")).huggingFace().get(hf.keySet().iterator().next()).data();
    assertEquals(1f, head[0]);
    assertEquals(1.015625f, head[1]);
    assertTrue(Float.isNaN(head[2]));
    assertEquals(Float.NEGATIVE_INFINITY, head[3]);
    assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(head[4]));
    assertEquals(Float.POSITIVE_INFINITY, head[5]);
    assertEquals(ai.djl.ndarray.types.DataType.FLOAT32, ModelFiles.read(dir.resolve("f32")).storedType());
  }

  @Test
  void f16AndBf16AreReadAsFloat32(@TempDir Path dir) throws Exception {
    // 1.5, -2.0, 0.099975586 (F16 0x2E66), 65504 (max F16), and a subnormal
    short[] f16 = {0x3E00, (short) 0xC000, 0x2E66, 0x7BFF, 0x0001};
    float[] wantF16 = {1.5f, -2f, 0.099975586f, 65504f, 5.9604645e-8f};
    short[] bf16 = {0x3FC0, (short) 0xC000, 0x4049};
    float[] wantBf16 = {1.5f, -2f, 3.140625f};
    Path f = dir.resolve("mixed.safetensors");
    String header = "{\"a\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
        + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[10,16]}}";
    ByteBuffer buf = ByteBuffer.allocate(8 + header.length() + 16).order(ByteOrder.LITTLE_ENDIAN);
    buf.putLong(header.length()).put(header.getBytes());
    for (short s : f16) {
      buf.putShort(s);
    }
    for (short s : bf16) {
      buf.putShort(s);
    }
    Files.write(f, buf.array());
    Map<String, HostTensor> t = Safetensors.read(f);
    assertArrayEquals(wantF16, t.get("a").data());
    assertArrayEquals(wantBf16, t.get("b").data());
  }

  @Test
  void truncatedSafetensorsNamesTheFileAndTensor(@TempDir Path dir) throws Exception {
    Map<String, HostTensor> w = new LinkedHashMap<>();
    w.put("first", new HostTensor("first", new long[] {4, 4}, new float[16]));
    w.put("second", new HostTensor("second", new long[] {8}, new float[8]));
    Path f = dir.resolve("model.safetensors");
    Safetensors.write(f, w.values(), Map.of());
    try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
      raf.setLength(raf.length() - 4);
    }
    var e = assertThrows(ModelFormatException.class, () -> Safetensors.read(f));
    assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("'second'")
        && e.getMessage().contains("truncated"), e.getMessage());
    Files.write(f, new byte[] {1, 2, 3});
    e = assertThrows(ModelFormatException.class, () -> Safetensors.read(f));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  /** gpt-oss's MXFP4 and DeepSeek's FP8 checkpoints are refused with the method and the way to dequantize. */
  @Test
  void quantizedCheckpointsAreRefusedWithTheWayOut(@TempDir Path dir) throws Exception {
    LlamaConfig c = TinyModels.llamaTied();
    HfCheckpoint.write(dir, c, WeightLayoutAccess.hf(c));
    com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
    var config = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(dir.resolve("config.json").toFile());
    config.putObject("quantization_config").put("quant_method", "mxfp4");
    java.nio.file.Files.writeString(dir.resolve("config.json"), json.writeValueAsString(config));
    var e = assertThrows(ModelFormatException.class, () -> HfCheckpoint.read(dir));
    assertTrue(e.getMessage().contains("quant_method = mxfp4") && e.getMessage().contains("dequantize"),
        e.getMessage());
  }

  @Test
  void shapeDisagreeingWithConfigNamesTheTensor(@TempDir Path dir) throws Exception {
    LlamaConfig c = TinyModels.llamaTied();
    Map<String, HostTensor> hf = WeightLayoutAccess.hf(c);
    hf.put("model.layers.1.mlp.up_proj.weight",
        new HostTensor("model.layers.1.mlp.up_proj.weight", new long[] {39, 24}, new float[39 * 24]));
    HfCheckpoint.write(dir, c, hf);
    var e = assertThrows(ModelFormatException.class, () -> {
      try (NDManager m = NDManager.newBaseManager()) {
        ModelFiles.read(dir).instantiate(m);
      }
    });
    assertTrue(e.getMessage().contains("model.layers.1.mlp.up_proj.weight")
        && e.getMessage().contains("[39, 24]") && e.getMessage().contains("[40, 24]"), e.getMessage());
    hf.remove("model.layers.1.mlp.up_proj.weight");
    HfCheckpoint.write(dir, c, hf);
    e = assertThrows(ModelFormatException.class, () -> {
      try (NDManager m = NDManager.newBaseManager()) {
        ModelFiles.read(dir).instantiate(m);
      }
    });
    assertTrue(e.getMessage().contains("missing tensor 'model.layers.1.mlp.up_proj.weight'"), e.getMessage());
  }

  @Test
  void missingAndTruncatedFilesAreClearErrors(@TempDir Path dir) throws Exception {
    var e = assertThrows(ModelFormatException.class, () -> ModelFiles.read(dir.resolve("nothing-here.bin")));
    assertTrue(e.getMessage().contains("nothing-here.bin") && e.getMessage().contains("not found"), e.getMessage());
    e = assertThrows(ModelFormatException.class, () -> ModelFiles.read(dir));
    assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    Path cut = dir.resolve("cut.bin");
    byte[] full = Files.readAllBytes(TestResources.storiesModel());
    Files.write(cut, java.util.Arrays.copyOf(full, full.length / 2));
    e = assertThrows(ModelFormatException.class, () -> ModelFiles.read(cut));
    assertTrue(e.getMessage().contains("cut.bin") && e.getMessage().contains("truncated"), e.getMessage());
  }
}
