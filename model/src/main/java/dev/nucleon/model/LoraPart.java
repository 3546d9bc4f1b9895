package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.Dropout;
import ai.djl.pytorch.jni.JniUtils;

/**
 * One projection adapted by LoRA: {@code y = W x + scaling * B (A dropout(x))}, with {@code A [r, in]} and
 * {@code B [out, r]} as PEFT names them ({@code lora_A}, {@code lora_B}). The low-rank side product is added to the
 * frozen projection's output, so gradients reach A and B only. Dropout acts only while autograd records (training).
 * To train, A and B are float32 parameters over a base of either type (a bfloat16 base needs no float32 masters:
 * it never changes); a rollout model taking side products holds them in its weights' type.
 */
final class LoraPart {

  private final Parameter a;
  private final Parameter b;
  private final double scaling;
  private final float dropout;
  private final Precision precision;
  /** False while the model computes as its base ({@link LlamaModel#withoutAdapter}). */
  private boolean enabled = true;

  LoraPart(Parameter a, Parameter b, double scaling, double dropout, Precision precision) {
    this.a = a;
    this.b = b;
    this.scaling = scaling;
    this.dropout = (float) dropout;
    this.precision = precision;
  }

  Parameter a() {
    return a;
  }

  Parameter b() {
    return b;
  }

  double scaling() {
    return scaling;
  }

  void setEnabled(boolean enabled) {
    this.enabled = enabled;
  }

  /** {@code base + scaling * B (A x)}, where {@code base} is the frozen projection of {@code x}. */
  static NDArray add(LoraPart part, NDArray x, NDArray base) {
    return part == null || !part.enabled ? base : base.add(part.delta(x));
  }

  private NDArray delta(NDArray x) {
    NDManager m = x.getManager();
    NDArray in = dropout > 0 && JniUtils.isGradMode()
        ? Dropout.dropout(x, dropout, true).singletonOrThrow() : x;
    // A and B are float32 whatever the base's type: in the compute type for the products (a cast autograd
    // carries back, so their gradients stay float32)
    NDArray low = Linear.linear(in, Precision.as(a.getArray(), precision.compute(), m)).singletonOrThrow();
    return Ops.mul(Linear.linear(low, Precision.as(b.getArray(), precision.compute(), m)).singletonOrThrow(),
        scaling);
  }
}
