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

  /**
   * Result of one update.
   *
   * @param norms the gradient norms it was applied with (before clipping)
   * @param lr learning rate used
   * @param skipped true when nothing was changed: the norm was not finite, or the caller asked to skip
   */
  public record Update(Norms norms, double lr, boolean skipped) {

    /** Global L2 norm of the gradient before clipping. */
    public double gradNorm() {
      return norms.norm();
    }
  }

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
   * The norms of the accumulated gradients.
   *
   * @param norm global L2 norm (NaN or infinite when any gradient is not finite)
   * @param maxParamNorm the largest L2 norm of one parameter's gradient
   * @param maxParam the name of that parameter
   * @param nonFinite the parameters whose gradient is not finite
   */
  public record Norms(double norm, double maxParamNorm, String maxParam, List<String> nonFinite) {}

  /** Measures the accumulated gradients: one norm per parameter, read back to the host in one transfer. */
  public Norms measure() {
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager tmp = manager.newSubManager()) {
      List<String> names = new ArrayList<>(params.keySet());
      PtNDArray[] norms = new PtNDArray[names.size()];
      for (int i = 0; i < norms.length; i++) {
        NDArray g = params.get(names.get(i)).getArray().getGradient();
        g.attach(tmp);
        norms[i] = (PtNDArray) g.norm(false);
        norms[i].attach(tmp);
      }
      float[] norms32 = norms.length == 0 ? new float[0] : JniUtils.stack(norms, 0).toFloatArray();
      double[] perParam = new double[norms32.length];
      double sumSq = 0;
      int largest = -1;
      List<String> nonFinite = new ArrayList<>();
      for (int i = 0; i < perParam.length; i++) {
        double n = norms32[i];
        if (!Double.isFinite(n)) {
          // a float32 norm overflows for huge but finite gradients: measure again in float64 to tell a spike
          // from a non-finite gradient
          NDArray g = params.get(names.get(i)).getArray().getGradient();
          g.attach(tmp);
          NDArray wide = g.toType(ai.djl.ndarray.types.DataType.FLOAT64, false);
          n = wide.mul(wide).sum().sqrt().getDouble();
        }
        perParam[i] = n;
        if (!Double.isFinite(n)) {
          nonFinite.add(names.get(i));
        } else if (largest < 0 || n > perParam[largest]) {
          largest = i;
        }
        sumSq += n * n;
      }
      return new Norms(Math.sqrt(sumSq), largest < 0 ? Double.NaN : perParam[largest],
          largest < 0 ? "" : names.get(largest), List.copyOf(nonFinite));
    } finally {
      JniUtils.setGradMode(gradMode);
    }
  }

  /** Measures and applies the accumulated gradients (see {@link #apply(Norms, boolean)}). */
  public Update apply() {
    return apply(measure(), false);
  }

  /** {@link #apply(Norms, boolean, long)} at the schedule position of the optimizer step count. */
  public Update apply(Norms norms, boolean skip) {
    return apply(norms, skip, step);
  }

  /**
   * Applies the accumulated gradients, then zeroes them. A non-finite norm, or {@code skip}, leaves weights and
   * moments as they are (the step is not counted). Runs with autograd off on the calling thread (in-place updates
   * of leaves that require gradients are otherwise refused) and restores the thread's mode after.
   *
   * <p>Per parameter this is one fused libtorch call ({@code JniUtils.adamUpdate} in its AdamW form), which
   * computes {@code p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= c m / (sqrt(v) + e)}. With
   * {@code c = lr sqrt(1-b2^t) / (1-b1^t)} and {@code e = eps sqrt(1-b2^t)} that is exactly PyTorch's
   * {@code p -= lr m^ / (sqrt(v^) + eps)}.
   *
   * @param norms what {@link #measure()} returned for these gradients
   * @param skip true to drop this update (for example a gradient spike the caller refuses)
   * @param schedulePosition the step of the learning-rate schedule this update takes its rate from (the learner
   *     counts training batches there when it takes several updates per batch)
   */
  public Update apply(Norms norms, boolean skip, long schedulePosition) {
    double norm = norms.norm();
    double lr = settings.lr() * settings.schedule().multiplier(schedulePosition);
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager tmp = manager.newSubManager()) {
      if (!Double.isFinite(norm)) {
        LOG.warn("non-finite gradient in {}; update skipped", norms.nonFinite());
      }
      if (!Double.isFinite(norm) || skip) {
        zeroGradients(params.keySet());
        return new Update(norms, lr, true);
      }
      float scale = settings.clipNorm() > 0 && norm > settings.clipNorm()
          ? (float) (settings.clipNorm() / (norm + 1e-6)) : 1f;
      step++;
      double bc1 = 1 - Math.pow(settings.beta1(), step);
      double bc2Sqrt = Math.sqrt(1 - Math.pow(settings.beta2(), step));
      for (var e : params.entrySet()) {
        String name = e.getKey();
        NDArray g = e.getValue().getArray().getGradient();
        g.attach(tmp);
        JniUtils.adamUpdate((PtNDArray) e.getValue().getArray(), (PtNDArray) g, (PtNDArray) m.get(name),
            (PtNDArray) v.get(name), (float) lr, (float) (lr * bc2Sqrt / bc1), (float) settings.weightDecay(),
            scale, -1f, (float) settings.beta1(), (float) settings.beta2(), (float) (settings.eps() * bc2Sqrt),
            true);
      }
      zeroGradients(params.keySet());
      return new Update(norms, lr, false);
    } finally {
      JniUtils.setGradMode(gradMode);
    }
  }

  /** Sets gradients to exactly 0 (a fill, so also where they hold NaN). */
  private void zeroGradients(java.util.Collection<String> names) {
    for (String name : names) {
      JniUtils.zeroGrad((PtNDArray) params.get(name).getArray());
    }
  }

  /** Zeroes gradients without updating (e.g. after a failed micro-batch). */
  public void zeroGradients() {
    zeroGradients(params.keySet());
  }

  /** Bytes the moments take on the device. */
  public long stateBytes() {
    long bytes = 0;
    for (String name : params.keySet()) {
      bytes += m.get(name).getShape().size() * m.get(name).getDataType().getNumOfBytes();
      bytes += v.get(name).getShape().size() * v.get(name).getDataType().getNumOfBytes();
    }
    return bytes;
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
