package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import java.util.List;
import java.util.Locale;

/**
 * How a model holds its parameters and in which type it computes.
 *
 * <ul>
 *   <li>{@link #FP32}: float32 parameters and activations (the reference numerics).</li>
 *   <li>{@link #BF16}: bfloat16 parameters and activations, for rollouts: half the memory and, on hardware with
 *       bfloat16 units, faster products.</li>
 *   <li>{@link #BF16_MIXED}: float32 master parameters, bfloat16 activations, for training: each forward pass
 *       casts the parameters it uses to bfloat16 (autograd carries the gradient back through the cast, so the
 *       gradients, the optimizer state and the update stay in float32).</li>
 * </ul>
 * In every mode what needs the range or the precision stays float32: RMSNorm's statistics, the attention softmax,
 * the logits the head produces (cast before any log-softmax) and everything downstream of them.
 *
 * @param weights the parameters' type
 * @param compute the activations' type
 */
public record Precision(DataType weights, DataType compute) {

  public static final Precision FP32 = new Precision(DataType.FLOAT32, DataType.FLOAT32);
  public static final Precision BF16 = new Precision(DataType.BFLOAT16, DataType.BFLOAT16);
  public static final Precision BF16_MIXED = new Precision(DataType.FLOAT32, DataType.BFLOAT16);

  public Precision {
    for (DataType t : new DataType[] {weights, compute}) {
      if (t != DataType.FLOAT32 && t != DataType.BFLOAT16) {
        throw new IllegalArgumentException("precision supports float32 and bfloat16, got " + t);
      }
    }
  }

  /**
   * The type a user names in a setting or flag: {@code f32} (or {@code float32}) or {@code bf16} (or
   * {@code bfloat16}).
   */
  public static DataType parseType(String name) {
    return switch (name.trim().toLowerCase(Locale.ROOT)) {
      case "f32", "fp32", "float32" -> DataType.FLOAT32;
      case "bf16", "bfloat16" -> DataType.BFLOAT16;
      default -> throw new IllegalArgumentException("unknown dtype '" + name + "': expected f32 or bf16");
    };
  }

  /**
   * The type a setting names for work on {@code devices}: {@code f32} or {@code bf16} as {@link #parseType}, or
   * {@code auto}: bfloat16 when every one of the devices has bfloat16 units ({@link Engines#hasBf16Units}: a GPU of
   * compute capability 8.0 or later, a CPU with AVX-512 BF16 or AMX), float32 otherwise.
   *
   * @param devices device names ({@code cpu}, {@code gpu}, {@code gpu:N}), at least one
   */
  public static DataType resolveType(String name, List<String> devices) {
    if (!name.trim().equalsIgnoreCase("auto")) {
      return parseType(name);
    }
    if (devices.isEmpty()) {
      throw new IllegalArgumentException("dtype auto needs at least one device");
    }
    return devices.stream().allMatch(Engines::hasBf16Units) ? DataType.BFLOAT16 : DataType.FLOAT32;
  }

  /** The short name of a type as settings spell it ({@code f32}, {@code bf16}). */
  public static String name(DataType type) {
    return type == DataType.BFLOAT16 ? "bf16" : "f32";
  }

  /** The precision for generating (and scoring without gradients) in {@code type}: weights and compute alike. */
  public static Precision inference(DataType type) {
    return type == DataType.BFLOAT16 ? BF16 : FP32;
  }

  /** The precision for training in {@code type}: float32 master weights always, compute in {@code type}. */
  public static Precision training(DataType type) {
    return type == DataType.BFLOAT16 ? BF16_MIXED : FP32;
  }

  /** A parameter's array (null for none) in the compute type: a cast only under mixed precision. */
  NDArray weight(ai.djl.nn.Parameter p, NDManager owner) {
    if (p == null) {
      return null;
    }
    return weights == compute ? p.getArray() : Bf16Casts.cast(p.getArray(), compute, owner);
  }

  /** {@code x}, made in float32 (a mask, a statistic), in the compute type. */
  NDArray fromFloat32(NDArray x, NDManager owner) {
    return compute == DataType.FLOAT32 ? x : Bf16Casts.cast(x, compute, owner);
  }

  /** {@code x}, in the compute type, as float32. */
  NDArray toFloat32(NDArray x, NDManager owner) {
    return compute == DataType.FLOAT32 ? x : Bf16Casts.cast(x, DataType.FLOAT32, owner);
  }

  /**
   * {@code x} in type {@code t}: {@code x} itself when it has that type, else a cast owned by {@code owner},
   * differentiable when the thread has gradients on (see {@link Bf16Casts}: never {@code NDArray.toType} for
   * this, which aborts the JVM on bfloat16 and cuts the autograd graph). Never attaches {@code x} itself, which
   * may be a parameter.
   */
  public static NDArray as(NDArray x, DataType t, NDManager owner) {
    if (x == null || typeOf(x) == t) {
      return x;
    }
    return Bf16Casts.cast(x, t, owner);
  }

  /**
   * A float32 array just made (from host data, zeros) as an array of {@code t} in {@code owner}: itself, or its
   * cast with the float32 one freed at once.
   */
  static NDArray converted(NDArray float32, DataType t, NDManager owner) {
    if (t == DataType.FLOAT32) {
      return float32;
    }
    NDArray cast = Bf16Casts.cast(float32, t, owner);
    float32.close();
    return cast;
  }

  /** The type of {@code x}, bfloat16 included (DJL reports bfloat16 tensors as {@code UNKNOWN}). */
  public static DataType typeOf(NDArray x) {
    return Bf16Casts.typeOf(x);
  }

  @Override
  public String toString() {
    return weights == compute ? name(compute) : name(compute) + " (" + name(weights) + " master weights)";
  }
}
