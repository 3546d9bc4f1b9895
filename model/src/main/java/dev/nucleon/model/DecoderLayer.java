package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
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
  private final String[] normNames;
  private final RmsNorm firstNorm;
  private final Attention attention;
  private final RmsNorm secondNorm;
  private final SwiGluMlp mlp;

  DecoderLayer(LlamaConfig c, Precision precision) {
    preNorm = c.normPlacement() == LlamaConfig.NormPlacement.PRE;
    normNames = WeightLayout.blockNorms(c);
    firstNorm = addChildBlock(normNames[0], new RmsNorm(c.hiddenSize(), c.rmsNormEps(), precision));
    attention = addChildBlock("self_attn", new Attention(c, precision));
    secondNorm = addChildBlock(normNames[1], new RmsNorm(c.hiddenSize(), c.rmsNormEps(), precision));
    mlp = addChildBlock("mlp", new SwiGluMlp(c.hiddenSize(), c.intermediateSize(), c.outputBias(), precision));
  }

  Attention attention() {
    return attention;
  }

  RmsNorm firstNorm() {
    return firstNorm;
  }

  RmsNorm secondNorm() {
    return secondNorm;
  }

  SwiGluMlp mlp() {
    return mlp;
  }

  /**
   * A parameter by its Hugging Face name within the layer ({@code self_attn.o_proj.weight}; q/k/v and gate/up in
   * their fused form), or null where this layer's family has no such parameter.
   */
  Parameter parameter(String name) {
    if (name.equals(normNames[0] + ".weight")) {
      return firstNorm.weight();
    }
    if (name.equals(normNames[1] + ".weight")) {
      return secondNorm.weight();
    }
    return switch (name) {
      case "self_attn.qkv_proj.weight" -> attention.qkv();
      case "self_attn.qkv_proj.bias" -> attention.qkvBias();
      case "self_attn.o_proj.weight" -> attention.out();
      case "self_attn.o_proj.bias" -> attention.outBias();
      case "self_attn.q_norm.weight" -> attention.qNorm();
      case "self_attn.k_norm.weight" -> attention.kNorm();
      case "mlp.gate_up_proj.weight" -> mlp.gateUp();
      case "mlp.gate_up_proj.bias" -> mlp.gateUpBias();
      case "mlp.down_proj.weight" -> mlp.down();
      case "mlp.down_proj.bias" -> mlp.downBias();
      default -> null;
    };
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
