package dev.nucleon.model;

import ai.djl.Device;
import ai.djl.engine.Engine;
import java.nio.file.Path;
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
    String n = name.trim().toLowerCase(Locale.ROOT);
    if (n.equals("cpu")) {
      return Device.cpu();
    }
    if (n.equals("gpu") || n.startsWith("gpu:") || n.startsWith("cuda")) {
      int id = 0;
      int colon = n.indexOf(':');
      if (colon >= 0) {
        try {
          id = Integer.parseInt(n.substring(colon + 1));
        } catch (NumberFormatException ex) {
          throw new IllegalArgumentException("device '" + name + "': expected cpu, gpu or gpu:N");
        }
      }
      int gpus = gpuCount();
      if (id >= gpus) {
        throw new IllegalArgumentException("device '" + name + "': this machine has " + gpus + " GPU(s)");
      }
      return Device.gpu(id);
    }
    throw new IllegalArgumentException("device '" + name + "': expected cpu, gpu or gpu:N");
  }

  /** The number of GPUs the engine sees (0 on a CPU-only libtorch). */
  public static int gpuCount() {
    return start().getGpuCount();
  }
}
