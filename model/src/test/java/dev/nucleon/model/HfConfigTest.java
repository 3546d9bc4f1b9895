package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Published config.json files read into the right model shape; unsupported architectures refused by name. */
class HfConfigTest {

  static Path config(String name) {
    return TestResources.path("hf-real/configs/" + name + ".config.json");
  }

  @Test
  void qwen25() {
    LlamaConfig c = LlamaConfig.fromHuggingFace(config("qwen2.5-0.5b-instruct"));
    assertEquals("Qwen2ForCausalLM", c.architecture());
    assertEquals(151936, c.vocabSize());
    assertEquals(896, c.hiddenSize());
    assertEquals(4864, c.intermediateSize());
    assertEquals(24, c.numLayers());
    assertEquals(14, c.numHeads());
    assertEquals(2, c.numKvHeads());
    assertEquals(64, c.headDim());
    assertEquals(1_000_000.0, c.ropeTheta());
    assertEquals(1e-6, c.rmsNormEps());
    assertTrue(c.tieWordEmbeddings());
    assertTrue(c.attentionBias(), "Qwen2 has q/k/v biases");
    assertEquals(151643, c.bosTokenId());
    assertArrayEquals(new int[] {151645}, c.eosTokenIds());
    assertNull(c.ropeScaling());
    // 0.5B: the published parameter count is 494M
    assertEquals(494_032_768L, c.parameterCount());
  }

  @Test
  void tinyLlama() {
    LlamaConfig c = LlamaConfig.fromHuggingFace(config("tinyllama-1.1b-chat-v1.0"));
    assertEquals("LlamaForCausalLM", c.architecture());
    assertEquals(32000, c.vocabSize());
    assertEquals(2048, c.hiddenSize());
    assertEquals(5632, c.intermediateSize());
    assertEquals(22, c.numLayers());
    assertEquals(32, c.numHeads());
    assertEquals(4, c.numKvHeads());
    assertEquals(64, c.headDim());
    assertEquals(10000.0, c.ropeTheta());
    assertEquals(1e-5, c.rmsNormEps());
    assertEquals(2048, c.maxPositionEmbeddings());
    assertFalse(c.tieWordEmbeddings());
    assertFalse(c.attentionBias());
    assertEquals(1, c.bosTokenId());
    assertArrayEquals(new int[] {2}, c.eosTokenIds());
    assertEquals(1_100_048_384L, c.parameterCount());
  }

  @Test
  void smolLm2InTheTransformers5Layout() {
    LlamaConfig c = LlamaConfig.fromHuggingFace(config("smollm2-135m.resaved-transformers5"));
    assertEquals(49152, c.vocabSize());
    assertEquals(576, c.hiddenSize());
    assertEquals(1536, c.intermediateSize());
    assertEquals(30, c.numLayers());
    assertEquals(9, c.numHeads());
    assertEquals(3, c.numKvHeads());
    assertEquals(64, c.headDim());
    assertEquals(100000.0, c.ropeTheta(), "rope_theta comes from rope_parameters in transformers 5");
    assertTrue(c.tieWordEmbeddings());
    assertEquals(8192, c.maxPositionEmbeddings());
    assertEquals(134_515_008L, c.parameterCount());
  }

  /** MLA (q_lora_rank 1536, kv_lora_rank 512), 3 dense then 58 sparse layers of 256 experts in 8 groups. */
  @Test
  void deepSeekR1HasThePublishedParameterCounts() {
    LlamaConfig c = LlamaConfig.fromHuggingFace(config("deepseek-r1"));
    // DeepSeek-V3's report: 671B total (the multi-token-prediction module's 14B not included), 37B activated
    assertEquals(671.0e9, c.parameterCount(), 0.05e9, "total: " + c.parameterCount());
    assertEquals(37e9, c.activeParameterCount(), 0.5e9, "active: " + c.activeParameterCount());
    assertEquals(61, c.numLayers());
    assertEquals(58, c.moe().sparseLayers().size(), "first_k_dense_replace 3");
    assertEquals(256, c.moe().numExperts());
    assertEquals(8, c.moe().router().groups());
    assertEquals(512, c.latent().kvLoraRank());
    assertEquals(1536, c.latent().qLoraRank());
    assertEquals(64, c.ropeDim());
  }

  @Test
  void unknownArchitectureMissingKeyAndMissingFileNameWhatIsWrong(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    Files.writeString(f, "{\"architectures\": [\"MambaForCausalLM\"], \"hidden_size\": 8}");
    var e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(e.getMessage().contains("unknown architecture MambaForCausalLM"), e.getMessage());
    Files.writeString(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, \"num_attention_heads\": 2,"
        + " \"num_hidden_layers\": 1, \"intermediate_size\": 16}");
    e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(e.getMessage().contains("'vocab_size'") && e.getMessage().contains(f.toString()), e.getMessage());
    e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(dir.resolve("nope.json")));
    assertTrue(e.getMessage().contains("nope.json"), e.getMessage());
  }

  /**
   * Qwen3-0.6B's shape as its model card gives it (28 layers, 16 query / 8 key-value heads of 128, hidden 1024,
   * intermediate 3072, vocab 151,936, tied embeddings): the card states 0.6B parameters, 0.44B without embeddings.
   */
  @Test
  void qwen3PublishedShapeHasThePublishersParameterCount(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    Files.writeString(f, "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\","
        + " \"hidden_size\": 1024, \"intermediate_size\": 3072, \"num_hidden_layers\": 28,"
        + " \"num_attention_heads\": 16, \"num_key_value_heads\": 8, \"head_dim\": 128, \"vocab_size\": 151936,"
        + " \"tie_word_embeddings\": true, \"rope_theta\": 1000000, \"rms_norm_eps\": 1e-6,"
        + " \"max_position_embeddings\": 40960, \"attention_bias\": false, \"use_sliding_window\": false,"
        + " \"hidden_act\": \"silu\", \"bos_token_id\": 151643, \"eos_token_id\": 151645}");
    LlamaConfig c = LlamaConfig.fromHuggingFace(f);
    assertEquals(LlamaConfig.QkNorm.PER_HEAD, c.qkNorm());
    assertEquals(128, c.headDim());
    long embedding = 151_936L * 1024;
    assertEquals(0.44e9, c.parameterCount() - embedding, 0.005e9, "non-embedding parameters");
    assertEquals(0.6e9, c.parameterCount(), 0.05e9, "parameters");
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
    assertFalse(c.hasSlidingWindows());
  }

  /**
   * Sliding windows as transformers reads them: Qwen2/Qwen3 slide in the layers from max_window_layers on (or as
   * layer_types says) only with use_sliding_window, Mistral in every layer when sliding_window is set; each
   * round-trips through config.json.
   */
  @Test
  void qwenAndMistralSlidingWindows(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    String qwen = "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
        + " \"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"vocab_size\": 320, \"sliding_window\": 8,"
        + " \"max_window_layers\": 2";
    Files.writeString(f, qwen + ", \"use_sliding_window\": false}");
    assertArrayEquals(new int[] {0, 0, 0, 0}, LlamaConfig.fromHuggingFace(f).slidingWindows());
    Files.writeString(f, qwen + ", \"use_sliding_window\": true}");
    LlamaConfig c = LlamaConfig.fromHuggingFace(f);
    assertArrayEquals(new int[] {0, 0, 8, 8}, c.slidingWindows());
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
    Files.writeString(f, qwen.replace("Qwen2", "Qwen3") + ", \"use_sliding_window\": true, \"layer_types\":"
        + " [\"sliding_attention\", \"full_attention\", \"full_attention\", \"full_attention\"]}");
    assertArrayEquals(new int[] {8, 0, 0, 0}, LlamaConfig.fromHuggingFace(f).slidingWindows());

    String mistral = "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
        + " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 320";
    Files.writeString(f, mistral + ", \"sliding_window\": 4096}");
    c = LlamaConfig.fromHuggingFace(f);
    assertArrayEquals(new int[] {4096, 4096}, c.slidingWindows());
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
    Files.writeString(f, mistral + ", \"sliding_window\": null}");
    assertFalse(LlamaConfig.fromHuggingFace(f).hasSlidingWindows());
    Files.writeString(f, mistral.replace("Mistral", "Llama") + ", \"layer_types\": [\"sliding_attention\","
        + " \"full_attention\"]}");
    var e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(e.getMessage().contains("layer_types[0]") && e.getMessage().contains("LlamaForCausalLM"),
        e.getMessage());
  }

  /**
   * OLMo 2 1B's shape as its model card and config give it (allenai/OLMo-2-0425-1B: 16 layers, hidden 2048, 16 heads
   * of 128, MLP 8192, vocab 100,352, separate output head, full-width q/k norms): the checkpoint holds 1.48B
   * parameters, as its Hugging Face page lists.
   */
  @Test
  void olmo2PublishedShapeHasThePublishersParameterCount(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    Files.writeString(f, "{\"architectures\": [\"Olmo2ForCausalLM\"], \"model_type\": \"olmo2\","
        + " \"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16,"
        + " \"num_attention_heads\": 16, \"num_key_value_heads\": 16, \"vocab_size\": 100352,"
        + " \"tie_word_embeddings\": false, \"rope_theta\": 500000, \"rms_norm_eps\": 1e-6,"
        + " \"max_position_embeddings\": 4096, \"attention_bias\": false, \"hidden_act\": \"silu\","
        + " \"pad_token_id\": 100277, \"eos_token_id\": 100257}");
    LlamaConfig c = LlamaConfig.fromHuggingFace(f);
    assertEquals(LlamaConfig.NormPlacement.POST, c.normPlacement());
    assertEquals(LlamaConfig.QkNorm.FULL_WIDTH, c.qkNorm());
    // per layer: q/k/v/o 4 x 2048^2, q/k norms 2 x 2048, MLP 3 x 2048 x 8192, two norms; embedding and head apart
    long perLayer = 4L * 2048 * 2048 + 2 * 2048 + 3L * 2048 * 8192 + 2 * 2048;
    assertEquals(16 * perLayer + 2L * 100352 * 2048 + 2048, c.parameterCount());
    assertEquals(1.48e9, c.parameterCount(), 0.01e9, "parameters");
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
  }

  /**
   * ERNIE 4.5 0.3B's shape as its model card gives it (baidu/ERNIE-4.5-0.3B-PT: 18 layers, 16 query / 2 key-value
   * heads of 128, hidden 1024, MLP 3072, vocab 103,424, tied embeddings, no biases): the card states 0.36B
   * parameters.
   */
  @Test
  void erniePublishedShapeHasThePublishersParameterCount(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    Files.writeString(f, "{\"architectures\": [\"Ernie4_5ForCausalLM\"], \"model_type\": \"ernie4_5\","
        + " \"hidden_size\": 1024, \"intermediate_size\": 3072, \"num_hidden_layers\": 18,"
        + " \"num_attention_heads\": 16, \"num_key_value_heads\": 2, \"head_dim\": 128,"
        + " \"vocab_size\": 103424, \"tie_word_embeddings\": true, \"rope_theta\": 500000,"
        + " \"rms_norm_eps\": 1e-5, \"use_bias\": false, \"max_position_embeddings\": 131072,"
        + " \"hidden_act\": \"silu\", \"bos_token_id\": 1, \"eos_token_id\": 2}");
    LlamaConfig c = LlamaConfig.fromHuggingFace(f);
    assertEquals(LlamaConfig.RopeLayout.INTERLEAVED, c.ropeLayout());
    assertEquals(128, c.headDim());
    assertEquals(0.36e9, c.parameterCount(), 0.005e9, "parameters");
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
  }

  @Test
  void ernieUseBiasPutsBiasesOnEveryProjectionButTheHead(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    Files.writeString(f, "{\"architectures\": [\"Ernie4_5ForCausalLM\"], \"hidden_size\": 64,"
        + " \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 256,"
        + " \"use_bias\": true}");
    LlamaConfig biased = LlamaConfig.fromHuggingFace(f);
    assertTrue(biased.attentionBias() && biased.outputBias());
    assertEquals(LlamaConfig.RopeLayout.INTERLEAVED, biased.ropeLayout());
    biased.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(biased, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
    Files.writeString(f, Files.readString(f).replace("true", "false"));
    LlamaConfig plain = LlamaConfig.fromHuggingFace(f);
    assertFalse(plain.attentionBias() || plain.outputBias());
    // per layer: q/k/v biases 3 x 64, the output bias 64, gate/up biases 2 x 96 and the down bias 64
    assertEquals(2L * (3 * 64 + 64 + 2 * 96 + 64), biased.parameterCount() - plain.parameterCount());
  }

  @Test
  void olmo3LayerTypesGiveEachLayerItsWindow(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    String base = "{\"architectures\": [\"Olmo3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
        + " \"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"vocab_size\": 320, \"sliding_window\": 6";
    Files.writeString(f, base + ", \"layer_types\": [\"full_attention\", \"sliding_attention\","
        + " \"sliding_attention\", \"full_attention\"]}");
    LlamaConfig c = LlamaConfig.fromHuggingFace(f);
    assertArrayEquals(new int[] {0, 6, 6, 0}, c.slidingWindows());
    assertEquals(LlamaConfig.NormPlacement.POST, c.normPlacement());
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
    Files.writeString(f, base + "}");
    assertArrayEquals(new int[] {6, 6, 6, 0}, LlamaConfig.fromHuggingFace(f).slidingWindows(),
        "transformers' default: every fourth layer full");
    Files.writeString(f, base.replace(", \"sliding_window\": 6", "") + ", \"layer_types\": [\"full_attention\","
        + " \"full_attention\", \"full_attention\", \"full_attention\"]}");
    LlamaConfig allFull = LlamaConfig.fromHuggingFace(f);
    assertFalse(allFull.hasSlidingWindows());
    allFull.writeHuggingFace(dir.resolve("full.json"));
    assertEquals(allFull, LlamaConfig.fromHuggingFace(dir.resolve("full.json")), "all-full OLMo 3 round trip");
    Files.writeString(f, base + ", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"yarn\"}}}");
    var nested = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(nested.getMessage().contains("per layer type"), nested.getMessage());
    Files.writeString(f, base + ", \"layer_types\": [\"full_attention\", \"chunked_attention\","
        + " \"sliding_attention\", \"full_attention\"]}");
    var e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(e.getMessage().contains("layer_types[1]") && e.getMessage().contains("chunked_attention"),
        e.getMessage());
  }

  @Test
  void yarnScalingReadsLikeTransformers(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    String base = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
        + " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 32,"
        + " \"max_position_embeddings\": 32768, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0";
    Files.writeString(f, base + ", \"original_max_position_embeddings\": 4096}}");
    LlamaConfig.RopeScaling s = LlamaConfig.fromHuggingFace(f).ropeScaling();
    assertEquals("yarn", s.type());
    assertEquals(2.0, s.factor(), 0.0, "the explicit factor wins over max_position_embeddings / original");
    assertEquals(4096, s.originalMaxPositionEmbeddings());
    assertEquals(0.1 * Math.log(2.0) + 1, s.attentionFactor(), 1e-12, "YaRN's mscale when no attention_factor");
    assertEquals(32, s.betaFast(), 0.0);
    assertEquals(1, s.betaSlow(), 0.0);
    LlamaConfig c = LlamaConfig.fromHuggingFace(f);
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")));
    Files.writeString(f, base + "}}");
    c = LlamaConfig.fromHuggingFace(f);
    c.writeHuggingFace(dir.resolve("written.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("written.json")), "without original_max_position_embeddings");
    Files.writeString(f, base.replace("yarn", "longrope") + "}}");
    var e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(e.getMessage().contains("'longrope'"), e.getMessage());
  }

  @Test
  void attentionBiasWithAnOutputBiasIsRefusedByName(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("config.json");
    Files.writeString(f, "{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
        + " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 32, \"attention_bias\": true}");
    var e = assertThrows(ModelFormatException.class, () -> LlamaConfig.fromHuggingFace(f));
    assertTrue(e.getMessage().contains("attention_bias") && e.getMessage().contains("Qwen3ForCausalLM"), e.getMessage());
  }

  @Test
  void writtenConfigReadsBackEqual(@TempDir Path dir) throws Exception {
    LlamaConfig c = LlamaConfig.fromHuggingFace(config("qwen2.5-0.5b-instruct"));
    c.writeHuggingFace(dir.resolve("config.json"));
    assertEquals(c, LlamaConfig.fromHuggingFace(dir.resolve("config.json")));
  }
}
