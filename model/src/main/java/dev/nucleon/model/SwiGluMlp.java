package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * The SwiGLU feed-forward block: {@code down(silu(gate x) * up x)}. Gate and up projections are stored fused as one
 * {@code [2 * inner, d]} matrix (gate rows first).
 *
 * <p>Two ways to apply it, the same arithmetic: without autograd (decoding) one matrix product gives both halves
 * and the block splits the result, the fewest native calls per token; with autograd (training, scoring with
 * gradients) each half is its own product against a view of its rows, so the large activations are contiguous
 * (elementwise kernels on split views ran several times slower) and backward accumulates weight-sized slices
 * instead of concatenating activation-sized gradients.
 */
public final class SwiGluMlp extends AbstractBlock {

  private final Parameter gateUp;
  private final Parameter down;
  private final Parameter gateUpBias;
  private final Parameter downBias;

  private final Precision precision;
  /** LoRA on gate, up and down (null entries not adapted); null when no adapter is attached. */
  private LoraPart[] lora;
  private static final LoraPart[] NO_LORA = new LoraPart[3];

  SwiGluMlp(int dim, int inner, boolean bias, Precision precision) {
    this.precision = precision;
    gateUp = addParameter(Parameter.builder().setName("gate_up_proj").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(2L * inner, dim)).build());
    down = addParameter(Parameter.builder().setName("down_proj").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(dim, inner)).build());
    gateUpBias = bias ? addParameter(Parameter.builder().setName("gate_up_proj_bias").setType(Parameter.Type.BIAS)
        .optShape(new Shape(2L * inner)).build()) : null;
    downBias = bias ? addParameter(Parameter.builder().setName("down_proj_bias").setType(Parameter.Type.BIAS)
        .optShape(new Shape(dim)).build()) : null;
  }

  Parameter gateUpBias() {
    return gateUpBias;
  }

  Parameter downBias() {
    return downBias;
  }

  Parameter gateUp() {
    return gateUp;
  }

  Parameter down() {
    return down;
  }

  /** Attaches LoRA to gate, up and down ({@code parts} in that order, null entries not adapted), or detaches. */
  void setLora(LoraPart[] parts) {
    this.lora = parts;
  }

  /** Applies the block to {@code x [..., d]}; the result lives in x's manager. */
  public NDArray apply(NDArray x) {
    NDManager m = x.getManager();
    return apply(x, precision.weight(gateUp, m), precision.weight(gateUpBias, m), precision.weight(down, m),
        precision.weight(downBias, m), lora, 0);
  }

  /** gpt-oss's factor inside its gate's sigmoid. */
  private static final double CLAMPED_ALPHA = 1.702;

  /**
   * SwiGLU with the given weights in the compute type ({@code gateUp [2 * inner, d]}, gate rows first; biases may
   * be null): the block's arithmetic for any weights, such as one routed expert's slice of a {@link MoeMlp}.
   *
   * @param lora LoRA parts on gate, up and down (null entries not adapted), or null for none
   * @param limit 0 for {@code silu(gate) * up}; above 0 gpt-oss's clamped form: {@code gate <= limit},
   *     {@code -limit <= up <= limit}, then {@code (up + 1) * gate * sigmoid(1.702 gate)}
   */
  static NDArray apply(NDArray x, NDArray w, NDArray bias, NDArray down, NDArray downBias, LoraPart[] lora,
      double limit) {
    NDArray gate;
    NDArray up;
    if (JniUtils.isGradMode() || lora != null) {
      long inner = w.getShape().get(0) / 2;
      LoraPart[] l = lora == null ? NO_LORA : lora;
      gate = LoraPart.add(l[0], x, Ops.linearRows(x, w, bias, 0, inner));
      up = LoraPart.add(l[1], x, Ops.linearRows(x, w, bias, inner, 2 * inner));
    } else {
      NDArray proj = Linear.linear(x, w, bias).singletonOrThrow();
      NDList gu = proj.split(2, proj.getShape().dimension() - 1);
      gate = gu.get(0);
      up = gu.get(1);
    }
    NDArray hidden;
    if (limit > 0) {
      gate = Ops.minimum(gate, limit);
      up = Ops.maximum(Ops.minimum(up, limit), -limit);
      hidden = Ops.add(up, 1).mul(gate.mul(Ops.mul(gate, CLAMPED_ALPHA).getNDArrayInternal().sigmoid()));
    } else {
      hidden = gate.mul(gate.getNDArrayInternal().sigmoid()).mul(up);
    }
    NDArray out = Linear.linear(hidden, down, downBias).singletonOrThrow();
    return lora == null ? out : LoraPart.add(lora[2], hidden, out);
  }

  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    return new NDList(apply(inputs.singletonOrThrow()));
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return inputShapes;
  }
}
