package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * Root-mean-square layer norm: {@code x / sqrt(mean(x^2) + eps) * weight}, over the last axis. The statistics are
 * float32 whatever the input's type; the normalized values return to that type before the weight multiplies them
 * (as transformers' Llama-family norms do).
 */
public final class RmsNorm extends AbstractBlock {

  private final Parameter weight;
  private final float eps;
  private final Precision precision;

  RmsNorm(int dim, double eps, Precision precision) {
    this.eps = (float) eps;
    this.precision = precision;
    this.weight = addParameter(Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(dim)).build());
  }

  Parameter weight() {
    return weight;
  }

  /** Normalizes {@code x} (any leading shape, last axis = dim). The result lives in x's manager. */
  public NDArray apply(NDArray x) {
    return normalize(x, weight, eps, precision);
  }

  /** {@code x / sqrt(mean(x^2) + eps) * weight} over the last axis of {@code x} (in the compute type). */
  static NDArray normalize(NDArray x, Parameter weight, float eps, Precision precision) {
    NDManager m = x.getManager();
    NDArray wide = precision.toFloat32(x, m);
    NDArray rms = Ops.add(wide.square().mean(new int[] {-1}, true), eps).sqrt();
    return precision.fromFloat32(wide.div(rms), m).mul(precision.weight(weight, m));
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
