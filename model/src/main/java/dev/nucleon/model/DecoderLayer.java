package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/** One pre-norm transformer block: {@code h = x + attn(norm1(x)); out = h + mlp(norm2(h))}. */
public final class DecoderLayer extends AbstractBlock {

  private final RmsNorm inputNorm;
  private final Attention attention;
  private final RmsNorm postAttentionNorm;
  private final SwiGluMlp mlp;

  DecoderLayer(LlamaConfig c) {
    inputNorm = addChildBlock("input_layernorm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
    attention = addChildBlock("self_attn", new Attention(c));
    postAttentionNorm = addChildBlock("post_attention_layernorm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
    mlp = addChildBlock("mlp", new SwiGluMlp(c.hiddenSize(), c.intermediateSize()));
  }

  RmsNorm inputNorm() {
    return inputNorm;
  }

  Attention attention() {
    return attention;
  }

  RmsNorm postAttentionNorm() {
    return postAttentionNorm;
  }

  SwiGluMlp mlp() {
    return mlp;
  }

  NDArray apply(NDArray x, Rope.Angles angles, NDArray mask, KvCache cache, int layer, NDManager step) {
    NDArray h = x.add(attention.apply(inputNorm.apply(x), angles, mask, cache, layer, step));
    return h.add(mlp.apply(postAttentionNorm.apply(h)));
  }

  /** Inputs: {@code x [B, T, d]}, positions int64 {@code [B, T]}, additive mask {@code [B or 1, 1, T, T]}. */
  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    NDArray x = inputs.get(0);
    NDArray h = x.add(attention.forward(ps, new NDList(inputNorm.apply(x), inputs.get(1), inputs.get(2)), training)
        .singletonOrThrow());
    return new NDList(h.add(mlp.apply(postAttentionNorm.apply(h))));
  }

  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    for (var child : getChildren().values()) {
      child.initialize(manager, dataType, inputShapes[0]);
    }
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return new Shape[] {inputShapes[0]};
  }
}
