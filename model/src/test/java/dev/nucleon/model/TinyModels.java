package dev.nucleon.model;

/** Small random model shapes for tests: fast on two cores, yet with GQA, biases and an untied head. */
public final class TinyModels {
  private TinyModels() {}

  /** d=32, 2 layers, 4 query heads over 2 kv heads, q/k/v biases, separate head, vocab 61. */
  public static LlamaConfig qwenLike() {
    return new LlamaConfig("Qwen2ForCausalLM", 61, 32, 48, 2, 4, 2, 8, 10000.0, null, 1e-6, 128, false, true, 1,
        new int[] {2});
  }

  /** Qwen3: per-head q/k norms, head_dim 12 != d/heads, GQA; d=32, 2 layers, vocab 53. */
  public static LlamaConfig qwen3Like() {
    return new LlamaConfig("Qwen3ForCausalLM", 53, 32, 40, 2, 4, 2, 12, 1e6, null, 1e-6, 64, false, false, 1,
        new int[] {2});
  }

  /** OLMo 2: post-norm blocks, full-width q/k norms, GQA; d=32, 2 layers, vocab 47. */
  public static LlamaConfig olmo2Like() {
    return new LlamaConfig("Olmo2ForCausalLM", 47, 32, 40, 2, 4, 2, 8, 5e5, null, 1e-6, 64, false, false, 1,
        new int[] {2});
  }

  /** ERNIE 4.5 with use_bias: interleaved RoPE, biases on q/k/v, o and the MLP, tied head; d=32, vocab 41. */
  public static LlamaConfig ernieBiased() {
    return new LlamaConfig("Ernie4_5ForCausalLM", 41, 32, 40, 2, 4, 2, 8, 5e5, null, 1e-5, 64, true, true, 1,
        new int[] {2}, true, null);
  }

  /** OLMo 3: OLMo 2 blocks, layer 0 attends through a window of 3 positions, layer 1 fully; d=32, vocab 43. */
  public static LlamaConfig olmo3Like() {
    return new LlamaConfig("Olmo3ForCausalLM", 43, 32, 40, 2, 4, 2, 8, 5e5, null, 1e-6, 64, false, false, 1,
        new int[] {2}, false, new int[] {3, 0});
  }

  /**
   * OLMo 3 with YaRN (factor 4 over 16 original positions): the full-attention layer's rotary table is scaled, the
   * windowed layer's is not, so the model holds two tables.
   */
  public static LlamaConfig olmo3Yarn() {
    LlamaConfig.RopeScaling yarn = new LlamaConfig.RopeScaling("yarn", 4.0, 0, 0, 16, 32, 1, 1.1386294361119891,
        true);
    return new LlamaConfig("Olmo3ForCausalLM", 43, 32, 40, 2, 4, 2, 8, 5e5, yarn, 1e-6, 64, false, false, 1,
        new int[] {2}, false, new int[] {3, 0});
  }

  /**
   * Qwen3-MoE: layer 0 dense, layer 1 a mixture of 6 experts (top 2, renormalized) of inner size 16; d=32, vocab 59.
   */
  public static LlamaConfig qwen3MoeLike() {
    return new LlamaConfig("Qwen3MoeForCausalLM", 59, 32, 40, 2, 4, 2, 8, 1e6, null, 1e-6, 64, false, false, 1,
        new int[] {2}, false, null, new LlamaConfig.Moe(6, 2, 16, 0,
            LlamaConfig.Router.softmax(true), false, 0, java.util.List.of(1)));
  }

  /** ERNIE 4.5 MoE: both layers mixtures of 5 experts (top 2, correction bias) plus a shared expert; vocab 41. */
  public static LlamaConfig ernieMoeLike() {
    return new LlamaConfig("Ernie4_5_MoeForCausalLM", 41, 32, 40, 2, 4, 2, 8, 5e5, null, 1e-5, 64, true, false, 1,
        new int[] {2}, false, null, new LlamaConfig.Moe(5, 2, 16, 16,
            new LlamaConfig.Router(LlamaConfig.Scoring.SOFTMAX, false, true, true, 1e-12, 1, 1, 1), false, 0,
            java.util.List.of(0, 1)));
  }

  /**
   * DeepSeek-V3: latent attention (q bottleneck 24, latent 16, no-rope 8 + rope 4, values 6), layer 0 dense, layer
   * 1 a mixture of 8 experts in 4 groups (2 chosen), top 2 by sigmoid score, a shared expert; d=32, vocab 47.
   */
  public static LlamaConfig deepseekLike() {
    return new LlamaConfig("DeepseekV3ForCausalLM", 47, 32, 40, 2, 4, 4, 12, 1e4, null, 1e-6, 64, false, false, 1,
        new int[] {2}, false, null, new LlamaConfig.Moe(8, 2, 16, 16,
            new LlamaConfig.Router(LlamaConfig.Scoring.SIGMOID, false, true, true, 0, 2.5, 4, 2), false, 0,
            java.util.List.of(1)), new LlamaConfig.Latent(24, 16, 8, 4, 6, 0));
  }

  /** A tensor of values uniform in {@code +-scale/2} from {@code rng} (LoRA matrices, hand-made weights). */
  public static dev.nucleon.model.io.HostTensor randomTensor(String name, long[] shape,
      java.util.SplittableRandom rng, float scale) {
    float[] v = new float[(int) dev.nucleon.model.io.HostTensor.numel(shape)];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (rng.nextDouble() - 0.5) * scale;
    }
    return new dev.nucleon.model.io.HostTensor(name, shape, v);
  }

  /** By name, for parameterized tests. */
  public static LlamaConfig named(String name) {
    return switch (name) {
      case "qwenLike" -> qwenLike();
      case "llamaTied" -> llamaTied();
      case "qwen3Like" -> qwen3Like();
      case "olmo2Like" -> olmo2Like();
      case "ernieBiased" -> ernieBiased();
      case "olmo3Like" -> olmo3Like();
      case "olmo3Yarn" -> olmo3Yarn();
      case "qwen3MoeLike" -> qwen3MoeLike();
      case "ernieMoeLike" -> ernieMoeLike();
      case "deepseekLike" -> deepseekLike();
      default -> throw new IllegalArgumentException("no tiny model named " + name);
    };
  }

  /** d=24, 2 layers, 3 heads (no GQA), tied embeddings, vocab 37. */
  public static LlamaConfig llamaTied() {
    return LlamaConfig.llama(37, 24, 40, 2, 3, 3, 96, true);
  }
}
