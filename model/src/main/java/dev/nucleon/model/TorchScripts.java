package dev.nucleon.model;

import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * TorchScript modules written here as source text and loaded through DJL's module loader, without Python: the
 * archive {@code torch.jit.save} would write for a module with no parameters or buffers (its code, a pickled object
 * holding only the {@code training} flag, an empty constants table). The tensors a module works on are passed to
 * each call, so one module serves any weights, and a weight update needs nothing from it.
 */
final class TorchScripts {

  private TorchScripts() {}

  /**
   * Compiles and loads a module.
   *
   * @param manager the manager the module belongs to
   * @param className the class name {@code code} defines
   * @param code TorchScript source of the class ({@code class Name(Module): ...}, methods typed as
   *     {@code torch.jit.save} writes them)
   */
  static PtSymbolBlock load(NDManager manager, String className, String code) {
    try {
      return JniUtils.loadModule((PtNDManager) manager, new ByteArrayInputStream(archive(className, code)), false,
          false);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot load the TorchScript module " + className, e);
    }
  }

  /** Whether this thread's graph executor was already set not to optimize (a per-thread libtorch setting). */
  private static final ThreadLocal<Boolean> PLAIN_EXECUTOR = ThreadLocal.withInitial(() -> false);

  /**
   * Sets the calling thread's graph executor not to optimize the modules it runs (once per thread): these modules
   * run the ops they are written with, and the profiling executor would record and re-specialize them over their
   * first calls instead.
   */
  static void plainExecutor() {
    if (!PLAIN_EXECUTOR.get()) {
      JniUtils.setGraphExecutorOptimize(false);
      PLAIN_EXECUTOR.set(true);
    }
  }

  /** The header every module class starts with: no parameters, no buffers, a training flag. */
  static String classHeader(String className) {
    return "class " + className + "(Module):\n"
        + "  __parameters__ = []\n"
        + "  __buffers__ = []\n"
        + "  training : bool\n";
  }

  /** A TorchScript archive (as {@code torch.jit.save} writes it) of a module of class {@code className}. */
  static byte[] archive(String className, String code) throws IOException {
    ByteArrayOutputStream object = new ByteArrayOutputStream();
    object.write(new byte[] {(byte) 0x80, 2}); // PROTO 2
    object.write(("c__torch__\n" + className + "\n").getBytes(StandardCharsets.US_ASCII)); // GLOBAL the class
    object.write(new byte[] {')', (byte) 0x81, '}'}); // EMPTY_TUPLE, NEWOBJ, EMPTY_DICT (its state)
    object.write(new byte[] {'X', 8, 0, 0, 0}); // BINUNICODE of 8 bytes
    object.write("training".getBytes(StandardCharsets.US_ASCII));
    object.write(new byte[] {(byte) 0x88, 's', 'b', '.'}); // NEWTRUE, SETITEM, BUILD, STOP
    ByteArrayOutputStream zip = new ByteArrayOutputStream();
    try (ZipOutputStream z = new ZipOutputStream(zip)) {
      String root = className.toLowerCase(Locale.ROOT) + "/";
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
