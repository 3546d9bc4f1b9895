package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/** Root-mean-square layer norm: {@code x / sqrt(mean(x^2) + eps) * weight}, over the last axis. */
public final class RmsNorm extends AbstractBlock {

  private final Parameter weight;
  private final float eps;

  RmsNorm(int dim, double eps) {
    this.eps = (float) eps;
    this.weight = addParameter(Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(dim)).build());
  }

  Parameter weight() {
    return weight;
  }

  /** Normalizes {@code x} (any leading shape, last axis = dim). The result lives in x's manager. */
  public NDArray apply(NDArray x) {
    return normalize(x, weight.getArray(), eps);
  }

  /** {@code x / sqrt(mean(x^2) + eps) * weight} over the last axis of {@code x}. */
  static NDArray normalize(NDArray x, NDArray weight, float eps) {
    NDArray rms = Ops.add(x.square().mean(new int[] {-1}, true), eps).sqrt();
    return x.div(rms).mul(weight);
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
