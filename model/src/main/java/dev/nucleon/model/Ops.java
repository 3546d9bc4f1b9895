package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;

/**
 * The few tensor operations of the decode loop that DJL's portable API spells with several native calls each
 * (a slice through {@code NDIndex} copies shapes, squeezes and broadcasts). Here each is one libtorch call: decode
 * time on small models goes to per-op overhead, not arithmetic, so the op count is the budget.
 */
public final class Ops {

  private Ops() {}

  /** A view of {@code x} restricted to {@code [start, end)} along {@code axis}, owned by {@code owner}. */
  public static NDArray slice(NDArray x, int axis, long start, long end, NDManager owner) {
    NDArray view = JniUtils.slice((PtNDArray) x, axis, start, end, 1);
    if (owner != null) {
      view.attach(owner);
    }
    return view;
  }

  /** Copies {@code value} into {@code target} at {@code start} along {@code axis} (in place, one libtorch call). */
  static void writeAlong(NDArray target, NDArray value, int axis, long start) {
    long[] shape = target.getShape().getShape();
    long[] min = new long[shape.length];
    long[] max = shape.clone();
    long[] step = new long[shape.length];
    java.util.Arrays.fill(step, 1);
    min[axis] = start;
    max[axis] = start + value.getShape().get(axis);
    JniUtils.indexSet((PtNDArray) target, (PtNDArray) value, min, max, step);
  }
}
