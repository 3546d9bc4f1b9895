package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * One transformer block: attention and a SwiGLU MLP, each a residual branch with an RMSNorm whose placement the
 * family chooses ({@link LlamaConfig#normPlacement()}):
 * <ul>
 *   <li>pre-norm (Llama, Qwen): {@code h = x + attn(norm1(x)); out = h + mlp(norm2(h))};</li>
 *   <li>post-norm (OLMo 2): {@code h = x + norm1(attn(x)); out = h + norm2(mlp(h))}.</li>
 * </ul>
 */
public final class DecoderLayer extends AbstractBlock {

  private final boolean preNorm;
  private final RmsNorm firstNorm;
  private final Attention attention;
  private final RmsNorm secondNorm;
  private final SwiGluMlp mlp;

  DecoderLayer(LlamaConfig c) {
    preNorm = c.normPlacement() == LlamaConfig.NormPlacement.PRE;
    String[] norms = WeightLayout.blockNorms(c);
    firstNorm = addChildBlock(norms[0], new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
    attention = addChildBlock("self_attn", new Attention(c));
    secondNorm = addChildBlock(norms[1], new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
    mlp = addChildBlock("mlp", new SwiGluMlp(c.hiddenSize(), c.intermediateSize(), c.outputBias()));
  }

  /** The norm of the attention branch (before it in pre-norm blocks, after it in post-norm ones). */
  RmsNorm firstNorm() {
    return firstNorm;
  }

  Attention attention() {
    return attention;
  }

  /** The norm of the MLP branch. */
  RmsNorm secondNorm() {
    return secondNorm;
  }

  SwiGluMlp mlp() {
    return mlp;
  }

  NDArray apply(NDArray x, Rope.Angles angles, NDArray mask, KvCache cache, int layer, NDManager step) {
    if (preNorm) {
      NDArray h = x.add(attention.apply(firstNorm.apply(x), angles, mask, cache, layer, step));
      return h.add(mlp.apply(secondNorm.apply(h)));
    }
    NDArray h = x.add(firstNorm.apply(attention.apply(x, angles, mask, cache, layer, step)));
    return h.add(secondNorm.apply(mlp.apply(h)));
  }

  /** Inputs: {@code x [B, T, d]}, positions int64 {@code [B, T]}, additive mask {@code [B or 1, 1, T, T]}. */
  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    NDArray x = inputs.get(0);
    NDArray mask = LlamaModel.groupRows(inputs.get(2), attention.group());
    return new NDList(apply(x, attention.angles(inputs.get(1)), mask, null, 0, x.getManager()));
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
