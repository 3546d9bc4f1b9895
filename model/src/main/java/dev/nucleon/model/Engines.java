package dev.nucleon.model;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.util.cuda.CudaUtils;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Starts DJL's PyTorch engine the way Nucleon needs it: offline, without usage tracking, PyTorch pinned as the
 * default engine (the tokenizers jar registers a second one), and a visible cache folder for the extracted libtorch.
 *
 * <p>Call {@link #start()} before the first NDManager is made. Without the offline flags DJL's engine start probes
 * the network; with them a CPU run never downloads anything.
 */
public final class Engines {

  private static volatile Engine engine;

  private Engines() {}

  /** Sets the offline properties (unless the user set them) and loads the PyTorch engine once. */
  public static Engine start() {
    Engine e = engine;
    if (e != null) {
      return e;
    }
    synchronized (Engines.class) {
      if (engine == null) {
        setDefault("ai.djl.offline", "true");
        setDefault("OPT_OUT_TRACKING", "true");
        setDefault("ai.djl.default_engine", "PyTorch");
        if (System.getenv("DJL_CACHE_DIR") == null && System.getProperty("DJL_CACHE_DIR") == null) {
          System.setProperty("DJL_CACHE_DIR", Path.of(System.getProperty("user.home"), ".djl.ai").toString());
        }
        engine = Engine.getEngine("PyTorch");
      }
      return engine;
    }
  }

  /**
   * Sets libtorch's intra-op thread count for this process. The engine reads {@code ai.djl.pytorch.num_threads} only
   * when it loads, so this also applies the count when the engine is already running.
   */
  public static void intraOpThreads(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("intra-op threads must be >= 1, got " + threads);
    }
    System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(threads));
    start();
    ai.djl.pytorch.jni.JniUtils.setNumThreads(threads);
  }

  /** libtorch's intra-op thread count as the calling thread sees it. */
  public static int intraOpThreads() {
    start();
    return ai.djl.pytorch.jni.JniUtils.getNumThreads();
  }

  private static void setDefault(String key, String value) {
    if (System.getProperty(key) == null) {
      System.setProperty(key, value);
    }
  }

  /**
   * Parses a device name from config: {@code cpu}, {@code gpu} (the first GPU) or {@code gpu:N}.
   *
   * @throws IllegalArgumentException when the name is malformed or names a GPU this machine does not have
   */
  public static Device device(String name) {
    start();
    int id = gpuIndex(name);
    if (id < 0) {
      return Device.cpu();
    }
    int gpus = gpuCount();
    if (id >= gpus) {
      throw new IllegalArgumentException("device '" + name + "': this machine has " + gpus + " GPU(s)");
    }
    return Device.gpu(id);
  }

  /** The GPU a device name names ({@code gpu} is GPU 0), or -1 for {@code cpu}. */
  private static int gpuIndex(String name) {
    String n = name.trim().toLowerCase(Locale.ROOT);
    if (n.equals("cpu")) {
      return -1;
    }
    if (n.equals("gpu") || n.startsWith("gpu:") || n.startsWith("cuda")) {
      int colon = n.indexOf(':');
      if (colon < 0) {
        return 0;
      }
      try {
        int id = Integer.parseInt(n.substring(colon + 1));
        if (id >= 0) {
          return id;
        }
      } catch (NumberFormatException ex) {
        // falls through to the error below
      }
    }
    throw new IllegalArgumentException("device '" + name + "': expected cpu, gpu or gpu:N");
  }

  /**
   * Whether a device ({@code cpu}, {@code gpu} or {@code gpu:N}) has bfloat16 arithmetic units, where computing in
   * bfloat16 is faster than in float32: a CUDA GPU of compute capability 8.0 or later (Ampere on), or an x86 CPU with
   * AVX-512 BF16 or AMX-BF16 instructions (read from /proc/cpuinfo, so Linux only), on which libtorch's bfloat16
   * products run on oneDNN's bfloat16 kernels. Everywhere else bfloat16 is emulated through float32 and slower:
   * false. Needs no engine: a GPU is asked through the CUDA runtime, absent on CPU-only machines (false).
   *
   * @throws IllegalArgumentException when the name is malformed
   */
  public static boolean hasBf16Units(String device) {
    int id = gpuIndex(device);
    if (id < 0) {
      try {
        return cpuHasBf16Units(Files.readString(Path.of("/proc/cpuinfo")));
      } catch (IOException e) {
        return false; // not Linux
      }
    }
    if (!CudaUtils.hasCuda() || id >= CudaUtils.getGpuCount()) {
      return false;
    }
    // major and minor run together: "80" for 8.0, "120" for 12.0
    return Integer.parseInt(CudaUtils.getComputeCapability(id)) >= 80;
  }

  /** Whether {@code cpuinfo} (the text of /proc/cpuinfo) lists avx512_bf16 or amx_bf16 among the CPU's flags. */
  static boolean cpuHasBf16Units(String cpuinfo) {
    for (String line : cpuinfo.split("\n")) {
      if (line.startsWith("flags")) {
        int colon = line.indexOf(':');
        List<String> flags = List.of(line.substring(colon + 1).trim().split("\\s+"));
        return flags.contains("avx512_bf16") || flags.contains("amx_bf16");
      }
    }
    return false;
  }

  /** The number of GPUs the engine sees (0 on a CPU-only libtorch). */
  public static int gpuCount() {
    return start().getGpuCount();
  }
}
