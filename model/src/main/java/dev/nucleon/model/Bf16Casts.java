package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValueUtils;
import java.util.regex.Pattern;

/**
 * Casts between float32 and bfloat16 on DJL's PyTorch engine, which has no bfloat16 of its own.
 *
 * <p><b>Why this exists.</b> DJL 0.35's native layer maps its {@code DataType} codes to libtorch types through a
 * table that stops before bfloat16: {@code NDArray.toType(BFLOAT16)} or {@code zeros(shape, BFLOAT16)} throws inside
 * native code and the JVM aborts ("terminate called without an active exception"). Tensors that already are
 * bfloat16 work with every op that takes no type argument (products, sums, views, embedding lookups, in-place
 * copies); DJL reports their type as {@code UNKNOWN}. Its {@code toType} also runs with gradients off, so even a
 * float32 to float32 path through it would cut the autograd graph.
 *
 * <p><b>How.</b> Two TorchScript modules, each one {@code forward(x) = x.to(dtype)}, written here as a TorchScript
 * archive in memory (source text, a pickled module object with only its {@code training} flag, no tensors) and
 * loaded through DJL's module loader, run in training mode so the call is recorded by autograd whenever the
 * calling thread has gradients on: the cast is differentiable like PyTorch's own {@code tensor.to(dtype)}, and
 * rounds to nearest even.
 */
final class Bf16Casts {

  private static final Pattern PLAIN_NAME = Pattern.compile("[A-Za-z0-9_]*");

  private final NDManager modules;
  private final PtSymbolBlock toBf16;
  private final PtSymbolBlock toF32;

  private Bf16Casts() {
    modules = NDManager.newBaseManager();
    modules.setName("bf16-casts");
    toBf16 = load("ToBFloat16", 15); // c10::ScalarType::BFloat16
    toF32 = load("ToFloat32", 6); // c10::ScalarType::Float
  }

  /** Compiled on first use (the holder idiom: the JVM initializes the class once, thread-safely). */
  private static final class Holder {
    static final Bf16Casts INSTANCE = new Bf16Casts();
  }

  /**
   * The type of {@code x}, with the bfloat16 that DJL reports as {@code UNKNOWN} named as such (this project makes
   * no other tensor of a type DJL does not know).
   */
  static DataType typeOf(NDArray x) {
    DataType t = x.getDataType();
    return t == DataType.UNKNOWN ? DataType.BFLOAT16 : t;
  }

  /** {@code x} cast to float32 or bfloat16; the result is attached to {@code owner}. */
  static NDArray cast(NDArray x, DataType target, NDManager owner) {
    if (target != DataType.BFLOAT16 && target != DataType.FLOAT32) {
      throw new IllegalArgumentException("casts go to float32 or bfloat16, not " + target);
    }
    Bf16Casts c = Holder.INSTANCE;
    NDArray in = x;
    if (x.getName() != null && !PLAIN_NAME.matcher(x.getName()).matches()) {
      // DJL reads structure into input names with dots or brackets: pass an unnamed view instead
      in = x.reshape(x.getShape());
      in.attach(owner);
    }
    NDList out = IValueUtils.forward(target == DataType.BFLOAT16 ? c.toBf16 : c.toF32, new NDList(in), true);
    NDArray result = out.singletonOrThrow();
    result.attach(owner);
    return result;
  }

  private PtSymbolBlock load(String name, int scalarType) {
    return TorchScripts.load(modules, name, code(name, scalarType));
  }

  /** The source of a module whose forward casts to one type. */
  static String code(String name, int scalarType) {
    return TorchScripts.classHeader(name)
        + "  def forward(self: __torch__." + name + ", x: Tensor) -> Tensor:\n"
        + "    return torch.to(x, " + scalarType + ")\n";
  }
}
