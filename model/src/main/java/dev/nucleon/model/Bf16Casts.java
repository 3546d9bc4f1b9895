package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValueUtils;
import ai.djl.pytorch.jni.JniUtils;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

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
  private static volatile Bf16Casts instance;

  private final NDManager modules;
  private final PtSymbolBlock toBf16;
  private final PtSymbolBlock toF32;

  private Bf16Casts() {
    modules = NDManager.newBaseManager();
    modules.setName("bf16-casts");
    toBf16 = load("ToBFloat16", 15); // c10::ScalarType::BFloat16
    toF32 = load("ToFloat32", 6); // c10::ScalarType::Float
  }

  private static Bf16Casts get() {
    Bf16Casts c = instance;
    if (c == null) {
      synchronized (Bf16Casts.class) {
        c = instance;
        if (c == null) {
          c = new Bf16Casts();
          instance = c;
        }
      }
    }
    return c;
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
    Bf16Casts c = get();
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
    try {
      return JniUtils.loadModule((PtNDManager) modules, new ByteArrayInputStream(archive(name, scalarType)), false,
          false);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot load the " + name + " cast module", e);
    }
  }

  /** A TorchScript archive (as {@code torch.jit.save} writes it) of a module whose forward casts to one type. */
  static byte[] archive(String name, int scalarType) throws IOException {
    String code = "class " + name + "(Module):\n"
        + "  __parameters__ = []\n"
        + "  __buffers__ = []\n"
        + "  training : bool\n"
        + "  def forward(self: __torch__." + name + ", x: Tensor) -> Tensor:\n"
        + "    return torch.to(x, " + scalarType + ")\n";
    ByteArrayOutputStream object = new ByteArrayOutputStream();
    object.write(new byte[] {(byte) 0x80, 2}); // PROTO 2
    object.write(("c__torch__\n" + name + "\n").getBytes(StandardCharsets.US_ASCII)); // GLOBAL the class
    object.write(new byte[] {')', (byte) 0x81, '}'}); // EMPTY_TUPLE, NEWOBJ, EMPTY_DICT (its state)
    object.write(new byte[] {'X', 8, 0, 0, 0}); // BINUNICODE of 8 bytes
    object.write("training".getBytes(StandardCharsets.US_ASCII));
    object.write(new byte[] {(byte) 0x88, 's', 'b', '.'}); // NEWTRUE, SETITEM, BUILD, STOP
    ByteArrayOutputStream zip = new ByteArrayOutputStream();
    try (ZipOutputStream z = new ZipOutputStream(zip)) {
      String root = name.toLowerCase(java.util.Locale.ROOT) + "/";
      stored(z, root + "data.pkl", object.toByteArray());
      stored(z, root + "code/__torch__.py", code.getBytes(StandardCharsets.UTF_8));
      stored(z, root + "constants.pkl", new byte[] {(byte) 0x80, 2, ')', '.'}); // an empty tuple
      stored(z, root + "version", "3\n".getBytes(StandardCharsets.US_ASCII));
    }
    return zip.toByteArray();
  }

  /** libtorch reads archives entry by entry from their stored bytes: no compression. */
  private static void stored(ZipOutputStream z, String name, byte[] bytes) throws IOException {
    ZipEntry e = new ZipEntry(name);
    e.setMethod(ZipEntry.STORED);
    e.setSize(bytes.length);
    e.setCompressedSize(bytes.length);
    CRC32 crc = new CRC32();
    crc.update(bytes);
    e.setCrc(crc.getValue());
    z.putNextEntry(e);
    z.write(bytes);
    z.closeEntry();
  }
}
