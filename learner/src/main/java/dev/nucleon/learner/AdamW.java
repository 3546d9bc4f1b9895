package dev.nucleon.learner;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.model.io.HostTensor;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Adam with decoupled weight decay (Loshchilov and Hutter), as PyTorch's {@code torch.optim.AdamW} computes it:
 *
 * <pre>
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * </pre>
 *
 * <p>Before the update, gradients are scaled so their global L2 norm is at most {@code clipNorm}. A step whose
 * gradient norm is not finite is skipped (parameters and moments unchanged) and reported. DJL's own Adam applies
 * weight decay as an L2 term inside the gradient, which is not AdamW, hence this class.
 */
public final class AdamW implements AutoCloseable {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(AdamW.class);

  private final OptimizerSettings settings;
  private final Map<String, Parameter> params;
  private final NDManager manager;
  private final Map<String, NDArray> m = new LinkedHashMap<>();
  private final Map<String, NDArray> v = new LinkedHashMap<>();
  private long step;

  /** Result of one update. */
  public record Update(double gradNorm, double lr, boolean skipped) {}

  public AdamW(Map<String, Parameter> params, NDManager parent, OptimizerSettings settings) {
    this.settings = settings;
    this.params = params;
    this.manager = parent.newSubManager();
    for (var e : params.entrySet()) {
      m.put(e.getKey(), manager.zeros(e.getValue().getArray().getShape()));
      v.put(e.getKey(), manager.zeros(e.getValue().getArray().getShape()));
    }
  }

  /** Optimizer steps taken so far. */
  public long step() {
    return step;
  }

  /**
   * Applies the accumulated gradients, then zeroes them. Runs with autograd off on the calling thread (in-place
   * updates of leaves that require gradients are otherwise refused) and restores the thread's mode after.
   */
  public Update apply() {
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager tmp = manager.newSubManager()) {
      Map<String, NDArray> grads = new LinkedHashMap<>();
      double sumSq = 0;
      List<String> nonFinite = new ArrayList<>();
      for (var e : params.entrySet()) {
        NDArray g = e.getValue().getArray().getGradient();
        g.attach(tmp);
        grads.put(e.getKey(), g);
        double sq = g.toType(ai.djl.ndarray.types.DataType.FLOAT64, false).square().sum().getDouble();
        if (!Double.isFinite(sq)) {
          nonFinite.add(e.getKey());
        }
        sumSq += sq;
      }
      double norm = Math.sqrt(sumSq);
      double lr = settings.lr() * settings.schedule().multiplier(step);
      if (!Double.isFinite(norm)) {
        LOG.warn("non-finite gradient in {}; update skipped", nonFinite);
        zero(grads);
        return new Update(norm, lr, true);
      }
      float scale = settings.clipNorm() > 0 && norm > settings.clipNorm()
          ? (float) (settings.clipNorm() / (norm + 1e-6)) : 1f;
      step++;
      float b1 = (float) settings.beta1();
      float b2 = (float) settings.beta2();
      float bc1 = (float) (1 - Math.pow(settings.beta1(), step));
      float bc2 = (float) (1 - Math.pow(settings.beta2(), step));
      for (var e : params.entrySet()) {
        String name = e.getKey();
        NDArray p = e.getValue().getArray();
        NDArray g = scale == 1f ? grads.get(name) : grads.get(name).mul(scale);
        NDArray mt = m.get(name);
        NDArray vt = v.get(name);
        mt.muli(b1).addi(g.mul(1 - b1));
        vt.muli(b2).addi(g.square().mul(1 - b2));
        // results of ops on the moments attach to the moments' manager: move them to tmp, which closes them
        NDArray denominator = vt.div(bc2);
        denominator.attach(tmp);
        NDArray update = mt.div(bc1);
        update.attach(tmp);
        update = update.div(denominator.sqrt().add((float) settings.eps())).mul((float) lr);
        if (settings.weightDecay() > 0) {
          p.muli((float) (1 - lr * settings.weightDecay()));
        }
        p.subi(update);
      }
      zero(grads);
      return new Update(norm, lr, false);
    } finally {
      JniUtils.setGradMode(gradMode);
    }
  }

  /** Sets gradients to exactly 0 (also when they hold NaN, where {@code g - g} would not). */
  private static void zero(Map<String, NDArray> grads) {
    for (NDArray g : grads.values()) {
      long[] shape = g.getShape().getShape();
      long[] start = new long[shape.length];
      long[] stride = new long[shape.length];
      java.util.Arrays.fill(stride, 1);
      try (NDArray z = g.getManager().zeros(new ai.djl.ndarray.types.Shape())) {
        JniUtils.indexSet((PtNDArray) g, (PtNDArray) z, start, shape, stride);
      }
    }
  }

  /** Zeroes gradients without updating (e.g. after a failed micro-batch). */
  public void zeroGradients() {
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager tmp = manager.newSubManager()) {
      Map<String, NDArray> grads = new LinkedHashMap<>();
      for (var e : params.entrySet()) {
        NDArray g = e.getValue().getArray().getGradient();
        g.attach(tmp);
        grads.put(e.getKey(), g);
      }
      zero(grads);
    } finally {
      JniUtils.setGradMode(gradMode);
    }
  }

  /** The moments as host tensors ({@code m.NAME}, {@code v.NAME}) for checkpoints. */
  public Map<String, HostTensor> state() {
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (String name : params.keySet()) {
      out.put("m." + name, host("m." + name, m.get(name)));
      out.put("v." + name, host("v." + name, v.get(name)));
    }
    return out;
  }

  private static HostTensor host(String name, NDArray a) {
    return new HostTensor(name, a.getShape().getShape(), a.toFloatArray());
  }

  /** Restores moments and the step count written by {@link #state()}. */
  public void restore(Map<String, HostTensor> state, long steps) {
    for (String name : params.keySet()) {
      for (String kind : new String[] {"m.", "v."}) {
        HostTensor t = state.get(kind + name);
        if (t == null) {
          throw new IllegalArgumentException("optimizer state lacks '" + kind + name + "'");
        }
        NDArray target = (kind.equals("m.") ? m : v).get(name);
        if (!java.util.Arrays.equals(t.shape(), target.getShape().getShape())) {
          throw new IllegalArgumentException("optimizer state '" + kind + name + "' has shape "
              + java.util.Arrays.toString(t.shape()) + ", expected " + target.getShape());
        }
        target.set(FloatBuffer.wrap(t.data()));
      }
    }
    this.step = steps;
  }

  @Override
  public void close() {
    manager.close();
  }
}
