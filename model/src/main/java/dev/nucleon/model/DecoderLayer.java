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
 * One transformer block: attention (grouped-query {@link Attention}, or DeepSeek's {@link LatentAttention}) and an
 * MLP (a dense SwiGLU, or in a model's sparse layers a {@link MoeMlp}), each a residual branch with an RMSNorm whose
 * placement the family chooses ({@link LlamaConfig#normPlacement()}):
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
  private final LatentAttention latent;
  private final RmsNorm secondNorm;
  private final SwiGluMlp mlp;
  private final MoeMlp moe;
  private final int index;

  DecoderLayer(LlamaConfig c, int index, Precision precision) {
    this.index = index;
    preNorm = c.normPlacement() == LlamaConfig.NormPlacement.PRE;
    normNames = WeightLayout.blockNorms(c);
    firstNorm = addChildBlock(normNames[0], new RmsNorm(c.hiddenSize(), c.rmsNormEps(), precision));
    attention = c.latent() == null ? addChildBlock("self_attn", new Attention(c, precision)) : null;
    latent = c.latent() != null ? addChildBlock("self_attn", new LatentAttention(c, precision)) : null;
    secondNorm = addChildBlock(normNames[1], new RmsNorm(c.hiddenSize(), c.rmsNormEps(), precision));
    boolean sparse = c.isSparse(index);
    mlp = sparse ? null
        : addChildBlock("mlp", new SwiGluMlp(c.hiddenSize(), c.intermediateSize(), c.outputBias(), precision));
    moe = sparse ? addChildBlock("mlp", new MoeMlp(c.hiddenSize(), c.moe(), precision)) : null;
  }

  /** The grouped-query attention, or null in a latent-attention model. */
  Attention attention() {
    return attention;
  }

  void setRope(Rope rope) {
    if (attention != null) {
      attention.setRope(rope);
    } else {
      latent.setRope(rope);
    }
  }

  RmsNorm firstNorm() {
    return firstNorm;
  }

  RmsNorm secondNorm() {
    return secondNorm;
  }

  /** The dense MLP, or null in a sparse layer. */
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
    if (moe != null && name.startsWith("mlp.")) {
      return moe.parameter(name);
    }
    if (latent != null && name.startsWith("self_attn.")) {
      return latent.parameter(name);
    }
    return switch (name) {
      case "self_attn.qkv_proj.weight" -> attention.qkv();
      case "self_attn.qkv_proj.bias" -> attention.qkvBias();
      case "self_attn.o_proj.weight" -> attention.out();
      case "self_attn.o_proj.bias" -> attention.outBias();
      case "self_attn.q_norm.weight" -> attention.qNorm();
      case "self_attn.k_norm.weight" -> attention.kNorm();
      case "self_attn.sinks" -> attention.sinks();
      case "mlp.gate_up_proj.weight" -> mlp.gateUp();
      case "mlp.gate_up_proj.bias" -> mlp.gateUpBias();
      case "mlp.down_proj.weight" -> mlp.down();
      case "mlp.down_proj.bias" -> mlp.downBias();
      default -> null;
    };
  }

  /**
   * The block over {@code x [B, T, d]}.
   *
   * @param routing records or replays a sparse layer's expert choices (null: the router chooses)
   * @param shared where {@code x} is a {@link SharedPromptRows} packed sequence, its rows as this layer attends them
   *     (the mask is then unused); else null
   */
  NDArray apply(NDArray x, Rope.Angles angles, NDArray mask, KvCache cache, Routing routing,
      SharedPromptRows.Layer shared, NDManager step) {
    if (preNorm) {
      NDArray h = x.add(attend(firstNorm.apply(x), angles, mask, cache, shared, step));
      return h.add(feedForward(secondNorm.apply(h), routing));
    }
    NDArray h = x.add(firstNorm.apply(attend(x, angles, mask, cache, shared, step)));
    return h.add(secondNorm.apply(feedForward(h, routing)));
  }

  private NDArray attend(NDArray x, Rope.Angles angles, NDArray mask, KvCache cache, SharedPromptRows.Layer shared,
      NDManager step) {
    return attention != null ? attention.apply(x, angles, mask, cache, index, shared, step)
        : latent.apply(x, angles, mask, cache, index, shared, step);
  }

  private NDArray feedForward(NDArray x, Routing routing) {
    return moe == null ? mlp.apply(x) : moe.apply(x, routing, index);
  }

  /** Inputs: {@code x [B, T, d]}, positions int64 {@code [B, T]}, additive mask {@code [B or 1, 1, T, T]}. */
  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    NDArray x = inputs.get(0);
    NDArray mask = attention == null ? inputs.get(2) : LlamaModel.groupRows(inputs.get(2), attention.group());
    Rope.Angles angles = attention != null ? attention.angles(inputs.get(1)) : latent.angles(inputs.get(1));
    return new NDList(apply(x, angles, mask, null, null, null, x.getManager()));
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
