package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import java.util.Arrays;

/**
 * Copies of column ranges between rows of a KV cache's per-layer tensors, all of them in one native call: a
 * continuous batch moves its running rows up when newcomers are admitted and copies each newcomer's prefilled prompt
 * into its row, one copy per row and layer for keys and for values. Through DJL each copy is two slices and an
 * indexed write, each its own JNI crossing with its own tensor handles (about 50 ms per admission at 64 rows of a
 * d=512 model, mostly spent between the copies); here a TorchScript loop makes them.
 *
 * <p>Like {@link Bf16Casts}, the module is TorchScript source compiled from an in-memory archive
 * ({@link TorchScripts}), once per process; it holds no tensors.
 */
final class RowCopies {

  private static final String CLASS = "RowCopies";

  private final NDManager modules;
  private final PtSymbolBlock module;

  private RowCopies() {
    modules = NDManager.newBaseManager();
    modules.setName("row-copies");
    module = TorchScripts.load(modules, CLASS, code());
  }

  /** Compiled on first use (the holder idiom: the JVM initializes the class once, thread-safely). */
  private static final class Holder {
    static final RowCopies INSTANCE = new RowCopies();
  }

  /**
   * For every layer l and copy i: row {@code dstRows[i]} of {@code dst[l]}, at {@code count[i]} positions from
   * {@code dstFrom[i]} along {@code axis} (counted in a row, so the tensor's axis minus one), becomes what row
   * {@code srcRows[i]} of {@code src[l]} holds at as many positions from {@code srcFrom[i]}. Copies run in order, so
   * a row may be copied to a row an earlier copy read from; a copy must not overlap itself.
   */
  static void copy(NDArray[] src, NDArray[] dst, int axis, int[] srcRows, int[] dstRows, int[] srcFrom,
      int[] dstFrom, int[] count) {
    if (srcRows.length == 0) {
      return;
    }
    PtNDArray[] a = new PtNDArray[src.length];
    PtNDArray[] b = new PtNDArray[dst.length];
    for (int l = 0; l < src.length; l++) {
      a[l] = (PtNDArray) src[l];
      b[l] = (PtNDArray) dst[l];
    }
    TorchScripts.plainExecutor();
    IValue[] in = new IValue[8];
    try {
      in[0] = IValue.listFrom(a);
      in[1] = IValue.listFrom(b);
      in[2] = IValue.from((long) axis);
      in[3] = IValue.listFrom(longs(srcRows));
      in[4] = IValue.listFrom(longs(dstRows));
      in[5] = IValue.listFrom(longs(srcFrom));
      in[6] = IValue.listFrom(longs(dstFrom));
      in[7] = IValue.listFrom(longs(count));
      IValueUtils.runMethod(Holder.INSTANCE.module, "forward", in).close();
    } finally {
      for (IValue v : in) {
        if (v != null) {
          v.close();
        }
      }
    }
  }

  private static long[] longs(int[] v) {
    return Arrays.stream(v).asLongStream().toArray();
  }

  static String code() {
    return TorchScripts.classHeader(CLASS)
        + "  def forward(self: __torch__." + CLASS + ", src: List[Tensor], dst: List[Tensor], axis: int, "
        + "src_rows: List[int], dst_rows: List[int], src_from: List[int], dst_from: List[int], "
        + "count: List[int]) -> int:\n"
        + "    for l in range(len(src)):\n"
        + "      a = src[l]\n"
        + "      b = dst[l]\n"
        + "      for i in range(len(src_rows)):\n"
        + "        n = count[i]\n"
        + "        into = torch.slice(torch.select(b, 0, dst_rows[i]), axis, dst_from[i], dst_from[i] + n)\n"
        + "        into.copy_(torch.slice(torch.select(a, 0, src_rows[i]), axis, src_from[i], src_from[i] + n))\n"
        + "    return len(src_rows)\n";
  }
}
