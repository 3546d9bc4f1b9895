package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * The SwiGLU feed-forward block: {@code down(silu(gate x) * up x)}. Gate and up projections are stored fused as one
 * {@code [2 * inner, d]} matrix (gate rows first) so a step makes one matrix product for both.
 */
public final class SwiGluMlp extends AbstractBlock {

  private final Parameter gateUp;
  private final Parameter down;

  SwiGluMlp(int dim, int inner) {
    gateUp = addParameter(Parameter.builder().setName("gate_up_proj").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(2L * inner, dim)).build());
    down = addParameter(Parameter.builder().setName("down_proj").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(dim, inner)).build());
  }

  Parameter gateUp() {
    return gateUp;
  }

  Parameter down() {
    return down;
  }

  /** Applies the block to {@code x [..., d]}; the result lives in x's manager. */
  public NDArray apply(NDArray x) {
    NDArray proj = Linear.linear(x, gateUp.getArray()).singletonOrThrow();
    NDList gu = proj.split(2, proj.getShape().dimension() - 1);
    NDArray gate = gu.get(0);
    NDArray hidden = gate.mul(gate.getNDArrayInternal().sigmoid()).mul(gu.get(1));
    return Linear.linear(hidden, down.getArray()).singletonOrThrow();
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
