package dev.nucleon.model;

/** Small random model shapes for tests: fast on two cores, yet with GQA, biases and an untied head. */
public final class TinyModels {
  private TinyModels() {}

  /** d=32, 2 layers, 4 query heads over 2 kv heads, q/k/v biases, separate head, vocab 61. */
  public static LlamaConfig qwenLike() {
    return new LlamaConfig("Qwen2ForCausalLM", 61, 32, 48, 2, 4, 2, 8, 10000.0, null, 1e-6, 128, false, true, 1,
        new int[] {2});
  }

  /** d=24, 2 layers, 3 heads (no GQA), tied embeddings, vocab 37. */
  public static LlamaConfig llamaTied() {
    return LlamaConfig.llama(37, 24, 40, 2, 3, 3, 96, true);
  }
}
