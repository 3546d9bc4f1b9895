package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import java.util.function.BinaryOperator;

/**
 * Tensor operations that DJL's portable API gets wrong or slow for this project.
 *
 * <p><b>Arithmetic with a Java number.</b> On the CPU engine, DJL's {@code NDArray.mul(Number)} (and {@code div},
 * {@code add}, {@code sub}, {@code pow}, {@code minimum}, {@code maximum}, their in-place and reversed forms) wraps
 * the number in a tensor over a Java direct buffer ({@code from_blob}, no copy) and closes it right after the
 * call. Autograd keeps that tensor for the backward pass; once the garbage collector frees the buffer, backward
 * reads freed memory and produces finite garbage gradients. The methods here make the constant with
 * {@code torch.full}, so libtorch owns its memory and the graph's reference keeps it alive. Never call the
 * {@code Number} forms anywhere in the project: {@code NumberOperandRuleTest} (actors) enforces this, and
 * model/README.md explains it.
 *
 * <p><b>Slices and in-place writes.</b> DJL's portable API spells them with several native calls each (a slice
 * through {@code NDIndex} copies shapes, squeezes and broadcasts). Here each is one libtorch call: decode time on
 * small models goes to per-op overhead, not arithmetic, so the op count is the budget.
 */
public final class Ops {

  private Ops() {}

  /**
   * A 0-d float32 constant in {@code m} whose memory libtorch allocates and owns. Closing it only drops this
   * handle: an autograd graph that uses it keeps its own reference.
   */
  public static NDArray scalar(NDManager m, double value) {
    return m.full(new Shape(), (float) value);
  }

  /** {@code x * c}, safe under autograd (see the class notes); the result lives in x's manager. */
  public static NDArray mul(NDArray x, double c) {
    return withScalar(x, c, NDArray::mul);
  }

  /** {@code x / c}, safe under autograd. */
  public static NDArray div(NDArray x, double c) {
    return withScalar(x, c, NDArray::div);
  }

  /** {@code x + c}, safe under autograd. */
  public static NDArray add(NDArray x, double c) {
    return withScalar(x, c, NDArray::add);
  }

  /** {@code x - c}, safe under autograd. */
  public static NDArray sub(NDArray x, double c) {
    return withScalar(x, c, NDArray::sub);
  }

  /** {@code min(x, c)} element-wise, safe under autograd. */
  public static NDArray minimum(NDArray x, double c) {
    return withScalar(x, c, NDArray::minimum);
  }

  /** {@code max(x, c)} element-wise, safe under autograd. */
  public static NDArray maximum(NDArray x, double c) {
    return withScalar(x, c, NDArray::maximum);
  }

  /**
   * Java data as a tensor whose memory libtorch owns: {@code m.create(...)} on the CPU wraps a Java direct buffer
   * ({@code from_blob}, no copy), which the garbage collector may free once the array's manager is closed, while an
   * autograd graph that kept the tensor (an index for {@code gather} or {@code embedding}, a mask multiplied in)
   * still reads it in backward. The copy here lives as long as any reference to it; the wrapper is closed at once.
   */
  public static NDArray owned(NDArray fromJava) {
    NDArray copy = fromJava.duplicate();
    fromJava.close();
    return copy;
  }

  /** {@code op(x, c)} with {@code c} as a libtorch-owned scalar, whose handle is closed right after the op. */
  private static NDArray withScalar(NDArray x, double c, BinaryOperator<NDArray> op) {
    try (NDArray k = scalar(x.getManager(), c)) {
      return op.apply(x, k);
    }
  }

  /**
   * {@code x} times rows {@code [from, to)} of a fused weight matrix, plus the same rows of its bias (or none): one
   * product against views of the parameters, so its output and gradient are contiguous (the training path's way to
   * apply one part of a fused projection).
   */
  public static NDArray linearRows(NDArray x, NDArray weight, NDArray bias, long from, long to) {
    NDManager owner = x.getManager();
    return ai.djl.nn.core.Linear.linear(x, slice(weight, 0, from, to, owner),
        bias == null ? null : slice(bias, 0, from, to, owner)).singletonOrThrow();
  }

  /** A view of {@code x} restricted to {@code [start, end)} along {@code axis}, owned by {@code owner}. */
  public static NDArray slice(NDArray x, int axis, long start, long end, NDManager owner) {
    NDArray view = JniUtils.slice((PtNDArray) x, axis, start, end, 1);
    if (owner != null) {
      view.attach(owner);
    }
    return view;
  }

  /**
   * Rows shorter than this many columns have no vector path in libtorch's CPU softmax: 19-25 ns an element against
   * 1-3 ns for rows of 16 or more (2.7, AVX-512, one thread; model/README.md, "Short softmax rows").
   */
  static final int SHORT_SOFTMAX_ROW = 16;

  /**
   * The softmax over the last axis of float32 {@code x}. On the CPU a row shorter than {@link #SHORT_SOFTMAX_ROW}
   * columns is padded with {@code -inf} to that width first and the padding dropped after (a view): the padding's
   * probabilities are exactly 0, so the others are the row's own softmax, rounded as the vector path rounds.
   * {@code DecodeScript} does the same, so decoding and scoring stay alike bit for bit.
   */
  static NDArray softmax(NDArray x, NDManager owner) {
    int last = x.getShape().dimension() - 1;
    long n = x.getShape().get(last);
    if (n >= SHORT_SOFTMAX_ROW || x.getDevice().isGpu()) {
      return x.softmax(-1);
    }
    NDArray padded = x.pad(new Shape(0, SHORT_SOFTMAX_ROW - n), Double.NEGATIVE_INFINITY);
    NDArray probs = padded.softmax(-1);
    padded.close();
    NDArray rows = slice(probs, last, 0, n, owner);
    probs.close(); // the view keeps the storage (and autograd what backward needs)
    return rows;
  }

  /** Writes {@code value} into {@code target} as the block that starts at {@code start} (one offset per axis). */
  static void writeBlock(NDArray target, NDArray value, long[] start) {
    long[] shape = value.getShape().getShape();
    long[] max = new long[shape.length];
    long[] step = new long[shape.length];
    for (int i = 0; i < shape.length; i++) {
      max[i] = start[i] + shape[i];
      step[i] = 1;
    }
    JniUtils.indexSet((PtNDArray) target, (PtNDArray) value, start.clone(), max, step);
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
