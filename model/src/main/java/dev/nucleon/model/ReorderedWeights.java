package dev.nucleon.model;

import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Copies of the decode step's large weight matrices in oneDNN's blocked layout, for products through oneDNN
 * ({@code mkldnn::_linear_pointwise}) instead of MKL's {@code sgemm} on the plain matrix.
 *
 * <p><b>Why.</b> On the 2-core AMD machines this project is measured on, libtorch's float32 products go to MKL, which
 * reached 45-100 GFLOP/s at decode shapes (the [64, 512] x [512, 32000] vocabulary projection 45-54); the same
 * products through oneDNN with the weights reordered once reached 85-100, the vocabulary projection 1.6-1.8x faster
 * at 64 rows and 2.2-3.3x at 26 and 8 (MKL's cost hardly shrinks with the rows). A d=512 decode step went from 116-121
 * ms to 66-67 at 64 rows. Reordering is a copy of every matrix, so it is done once per weight version, not per step.
 * Small matrices lose (oneDNN's per-call overhead: stories260k at batch 1 ran at 0.65x), hence {@link #MIN_ELEMENTS}.
 *
 * <p><b>When the copies are remade.</b> The owner passes the model's weight epoch ({@link LlamaModel}: advanced by
 * every {@code loadParameters}, {@code setTrainable} and {@code weightsChanged}) with each request; a different
 * epoch remakes the copies. A model whose parameters an optimizer writes in place (trainable) never uses copies.
 *
 * <p>CPU only; where libtorch or the CPU cannot run the ops in the model's type ({@link #create} finds out once per
 * type), the decode step multiplies the plain matrices, with a warning.
 */
final class ReorderedWeights implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(ReorderedWeights.class);

  /** Matrices with fewer elements stay plain (2^18: a 512 x 512 matrix and larger are reordered). */
  static final long MIN_ELEMENTS = 1L << 18;
  /**
   * The rows the layout is chosen for. Any row count multiplies correctly with it; copies made for 64 rows ran at 26
   * and 8 rows within 10% of copies made for those (not measured for prefills of hundreds of rows).
   */
  private static final long LAYOUT_ROWS = 64;
  private static final String CLASS = "ReorderWeight";
  private static final String SOURCE = TorchScripts.classHeader(CLASS)
      + "  def forward(self: __torch__." + CLASS + ", w: Tensor, rows: int) -> Tensor:\n"
      + "    return ops.mkldnn._reorder_linear_weight(w, rows)\n"
      + "  def probe(self: __torch__." + CLASS + ", x: Tensor, w: Tensor) -> Tensor:\n"
      + "    return ops.mkldnn._linear_pointwise(x, ops.mkldnn._reorder_linear_weight(w, 1), None, \"none\", "
      + "annotate(List[Optional[number]], []), None)\n";

  /** Per compute type, whether this process's libtorch and CPU run the ops (absent until first asked). */
  private static final Map<DataType, Boolean> AVAILABLE = new HashMap<>();

  private final NDManager parent;
  private final PtSymbolBlock module;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private NDManager copies;
  private long epoch = Long.MIN_VALUE;
  private PtNDArray[] made;

  private ReorderedWeights(NDManager parent, PtSymbolBlock module) {
    this.parent = parent;
    this.module = module;
  }

  /**
   * The reorderer for weights of {@code type}, or null where {@code manager} is not on the CPU, or libtorch or the
   * CPU cannot run the ops in that type (libtorch refuses bfloat16 ones without AVX-512 or AVX-NE-CONVERT): found
   * out once per type by multiplying a 4 x 4 matrix, with a warning when they cannot.
   */
  static synchronized ReorderedWeights create(NDManager manager, DataType type) {
    if (!ai.djl.Device.Type.CPU.equals(manager.getDevice().getDeviceType())
        || Boolean.FALSE.equals(AVAILABLE.get(type))) {
      return null;
    }
    PtSymbolBlock module = null;
    try (NDManager probe = manager.newSubManager()) {
      module = TorchScripts.load(manager, CLASS, SOURCE);
      if (Boolean.TRUE.equals(AVAILABLE.get(type))) {
        return new ReorderedWeights(manager, module); // probed by an earlier model
      }
      NDArray x = Precision.converted(probe.ones(new Shape(1, 4)), type, probe);
      NDArray w = Precision.converted(probe.ones(new Shape(4, 4)), type, probe);
      try (IValue xi = IValue.from((PtNDArray) x); IValue wi = IValue.from((PtNDArray) w);
          IValue out = IValueUtils.runMethod(module, "probe", xi, wi)) {
        out.toTensor((PtNDManager) probe).close();
      }
      AVAILABLE.put(type, true);
      return new ReorderedWeights(manager, module);
    } catch (EngineException e) {
      if (module != null) {
        module.close();
      }
      AVAILABLE.put(type, false);
      LOG.warn("libtorch cannot run oneDNN's linear ops in {} here ({}): decoding multiplies the plain weight "
          + "matrices", Precision.name(type), e.getMessage().strip().lines().findFirst().orElse(""));
      return null;
    }
  }

  /** Whether {@code weight} is worth a reordered copy (a matrix of at least {@link #MIN_ELEMENTS}). */
  static boolean worthIt(NDArray weight) {
    return weight.getShape().dimension() == 2 && weight.getShape().size() >= MIN_ELEMENTS;
  }

  /**
   * Runs {@code use} with the reordered copies of {@code weights} as of weight epoch {@code epoch}: made first if
   * the epoch differs from the copies' (the previous ones are freed), else the same arrays as before. {@code
   * weights} must be the same matrices in the same order on every call. Calls may overlap (two threads decoding
   * with one model): copies are remade only while no call uses them. {@code use} must not call this again (a remake
   * inside it would wait for itself).
   */
  <T> T with(NDArray[] weights, long epoch, Function<PtNDArray[], T> use) {
    lock.readLock().lock();
    try {
      if (made == null || epoch != this.epoch) {
        lock.readLock().unlock();
        lock.writeLock().lock();
        try {
          if (made == null || epoch != this.epoch) {
            remake(weights, epoch);
          }
        } finally {
          lock.readLock().lock(); // downgrade: no remake can start before use returns
          lock.writeLock().unlock();
        }
      }
      return use.apply(made);
    } finally {
      lock.readLock().unlock();
    }
  }

  private void remake(NDArray[] weights, long epoch) {
    if (copies != null) {
      copies.close();
    }
    made = null;
    copies = parent.newSubManager();
    copies.setName("reordered-weights");
    long start = System.nanoTime();
    PtNDArray[] out = new PtNDArray[weights.length];
    for (int i = 0; i < weights.length; i++) {
      try (IValue w = IValue.from((PtNDArray) weights[i]); IValue rows = IValue.from(LAYOUT_ROWS);
          IValue r = IValueUtils.runMethod(module, "forward", w, rows)) {
        out[i] = r.toTensor((PtNDManager) copies);
      }
    }
    made = out;
    this.epoch = epoch;
    LOG.debug("reordered {} weight matrices in {} ms", out.length, (System.nanoTime() - start) / 1_000_000);
  }

  @Override
  public void close() {
    lock.writeLock().lock();
    try {
      if (copies != null) {
        copies.close();
        copies = null;
      }
      made = null;
    } finally {
      lock.writeLock().unlock();
    }
  }
}
