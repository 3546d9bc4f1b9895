package dev.nucleon.core.sandbox;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The limits a reward process runs under, enforced by the kernel through util-linux's {@code prlimit} and
 * {@code unshare} (no daemon, no privileges):
 *
 * <ul>
 *   <li>resource limits ({@code prlimit}): CPU seconds per process ({@code RLIMIT_CPU}: SIGXCPU, then SIGKILL),
 *       address space ({@code RLIMIT_AS}: allocations fail; it counts reserved, not used, memory, so a JVM or Node
 *       command needs a larger value or 0), bytes per written file ({@code RLIMIT_FSIZE}: stdout and stderr are
 *       files, so endless output ends: SIGXFSZ, or a failed write for the namespace's first process), processes and
 *       threads ({@code RLIMIT_NPROC}, counted per user namespace on Linux 5.14 and later; on older kernels per
 *       user, so a non-root JVM's own threads count too);</li>
 *   <li>namespaces ({@code unshare --user --map-root-user --net --pid --fork --kill-child}): a network namespace with
 *       no interface up (no network at all), a PID namespace whose every process the kernel kills when its first one
 *       ends (so killing the command kills everything it started, double-forked daemons included);</li>
 *   <li>when the JVM runs as root, the command runs as {@code nobody} ({@code setpriv}): the kernel exempts root
 *       from {@code RLIMIT_NPROC}, so a fork bomb started by root would fill the machine's process table (measured
 *       here: 8,585 processes in 20 seconds, and the JVM beside it could no longer start threads).</li>
 * </ul>
 *
 * What the machine allows is probed once, when the reward is created; a part it does not allow (no {@code unshare},
 * user namespaces switched off) is logged as not enforced and skipped, never silently assumed.
 *
 * @param cpuSeconds CPU time per process of the call (each process of the command has its own), 0 for no limit
 * @param memoryBytes address space per process, 0 for no limit
 * @param outputBytes size of any file the command writes (its stdout and stderr included), 0 for no limit
 * @param processes processes and threads in the sandbox, 0 for no limit
 * @param network whether the command may use the network
 */
public record Sandbox(long cpuSeconds, long memoryBytes, long outputBytes, int processes, boolean network) {

  private static final Logger log = LoggerFactory.getLogger(Sandbox.class);

  /** No limits: the command runs as it is. */
  public static final Sandbox NONE = new Sandbox(0, 0, 0, 0, true);

  public Sandbox {
    if (cpuSeconds < 0 || memoryBytes < 0 || outputBytes < 0 || processes < 0) {
      throw new IllegalArgumentException("sandbox limits must not be negative");
    }
  }

  /**
   * What the machine lets a sandbox enforce.
   *
   * @param dropRoot the JVM runs as root and {@code setpriv} can run the command as {@code nobody}
   */
  public record Support(boolean prlimit, boolean namespaces, boolean dropRoot) {}

  /** The user a root JVM runs sandboxed commands as ({@code nobody}). */
  static final int NOBODY = 65534;

  private static volatile Support probed;

  /** Probes (once per JVM) whether prlimit and unprivileged user, network and PID namespaces work here. */
  public static Support support() {
    Support s = probed;
    if (s == null) {
      boolean root = isRoot();
      List<String> drop = List.of("setpriv", "--reuid=" + NOBODY, "--regid=" + NOBODY, "--clear-groups", "--");
      boolean dropRoot = root && runs(concat(drop, List.of("true")));
      List<String> unshare = List.of("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork",
          "--kill-child", "true");
      s = new Support(runs(List.of("prlimit", "--cpu=10", "true")), runs(dropRoot ? concat(drop, unshare) : unshare),
          dropRoot);
      probed = s;
    }
    return s;
  }

  /** Whether this JVM runs as uid 0 (by the kernel's account, not the user name). */
  public static boolean isRoot() {
    try {
      return ((Number) java.nio.file.Files.getAttribute(java.nio.file.Path.of("/proc/self"), "unix:uid")).intValue()
          == 0;
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return "root".equals(System.getProperty("user.name"));
    }
  }

  private static List<String> concat(List<String> a, List<String> b) {
    List<String> out = new ArrayList<>(a);
    out.addAll(b);
    return out;
  }

  private static boolean runs(List<String> command) {
    Process p = null;
    try {
      p = new ProcessBuilder(command).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
      boolean done = p.waitFor(10, TimeUnit.SECONDS);
      return done && p.exitValue() == 0;
    } catch (IOException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } finally {
      if (p != null && p.isAlive()) {
        p.destroyForcibly();
      }
    }
  }

  /**
   * The limits in a reward's {@code sandbox} block ({@code cpu-time}, {@code memory}, {@code output},
   * {@code processes}, {@code network}); a bad value throws naming its key.
   */
  public static Sandbox fromConfig(com.typesafe.config.Config c) {
    java.time.Duration cpu = c.getDuration("sandbox.cpu-time");
    if (cpu.isNegative()) {
      throw bad(c, "sandbox.cpu-time", "must not be negative, got " + cpu);
    }
    for (String k : List.of("sandbox.memory", "sandbox.output")) {
      if (c.getBytes(k) < 0) {
        throw bad(c, k, "must not be negative");
      }
    }
    int processes = c.getInt("sandbox.processes");
    if (processes < 0) {
      throw bad(c, "sandbox.processes", "must not be negative, got " + processes);
    }
    // whole seconds, rounded up: a limit under one second must not become 0 (no limit)
    long cpuSeconds = (cpu.toMillis() + 999) / 1000;
    return new Sandbox(cpuSeconds, c.getBytes("sandbox.memory"), c.getBytes("sandbox.output"), processes,
        c.getBoolean("sandbox.network"));
  }

  private static com.typesafe.config.ConfigException bad(com.typesafe.config.Config c, String key, String message) {
    return new com.typesafe.config.ConfigException.BadValue(c.getValue(key).origin(), key, message);
  }


  /** Whether any limit is asked for. */
  public boolean limits() {
    return resourceLimits() || !network;
  }

  /** Whether any of the prlimit limits is asked for. */
  boolean resourceLimits() {
    return cpuSeconds > 0 || memoryBytes > 0 || outputBytes > 0 || processes > 0;
  }

  /**
   * The environment of a sandboxed command: only {@code PATH}, the locale and {@code TZ} of the JVM's (no tokens or
   * keys a JVM may hold), {@code HOME} and {@code TMPDIR} set to the call's working directory; the reward's own
   * {@code env} goes on top.
   */
  public static void restrictEnvironment(java.util.Map<String, String> env, String workDir) {
    java.util.Map<String, String> kept = new java.util.HashMap<>();
    for (String k : List.of("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")) {
      if (env.containsKey(k)) {
        kept.put(k, env.get(k));
      }
    }
    env.clear();
    env.putAll(kept);
    env.put("HOME", workDir);
    env.put("TMPDIR", workDir);
  }

  /** The command wrapped in what the machine supports of these limits. */
  public List<String> wrap(List<String> command, Support support) {
    List<String> out = new ArrayList<>();
    if (support.dropRoot()) { // never as root when the machine lets the JVM drop it, limits or not
      out.addAll(List.of("setpriv", "--reuid=" + NOBODY, "--regid=" + NOBODY, "--clear-groups", "--"));
    }
    if (!limits()) {
      out.addAll(command);
      return out;
    }
    if (support.namespaces()) {
      out.addAll(List.of("unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child"));
      if (!network) {
        out.add("--net");
      }
      out.add("--");
    }
    if (support.prlimit() && resourceLimits()) {
      out.add("prlimit");
      if (cpuSeconds > 0) {
        out.add("--cpu=" + cpuSeconds);
      }
      if (memoryBytes > 0) {
        out.add("--as=" + memoryBytes);
      }
      if (outputBytes > 0) {
        out.add("--fsize=" + outputBytes);
      }
      if (processes > 0) {
        out.add("--nproc=" + processes);
      }
      out.add("--");
    }
    out.addAll(command);
    return out;
  }

  /** What of these limits the machine cannot enforce, for a warning ("" when everything is enforced). */
  String unenforced(Support support) {
    List<String> missing = new ArrayList<>();
    if (!support.prlimit() && resourceLimits()) {
      missing.add("CPU, memory, output and process limits (no working prlimit)");
    }
    if (processes > 0 && isRoot() && !support.dropRoot()) {
      missing.add("the process limit (the JVM runs as root, which RLIMIT_NPROC exempts, and setpriv cannot drop to "
          + "nobody)");
    }
    if (!support.namespaces()) {
      missing.add((network ? "" : "no-network, ") + "the PID namespace that kills every child (no unprivileged "
          + "unshare: user namespaces off or util-linux missing)");
    }
    return String.join("; ", missing);
  }

  /** Logs once what cannot be enforced here. */
  public void warnIfPartial(Support support, String reward) {
    String missing = unenforced(support);
    if (limits() && !missing.isEmpty()) {
      log.warn("{} reward sandbox: not enforced on this machine: {}", reward, missing);
    }
  }

  /**
   * Makes ready to run model-written code for {@code who} (a reward or a tool, named in messages): refuses where the
   * JVM runs as root and setpriv cannot run programs as nobody, logs once what of these limits cannot be enforced,
   * and, where programs run as nobody, creates {@code workRoot} and checks nobody can reach it. Returns what the
   * machine supports.
   */
  public Support prepareForUntrustedCode(String who, java.nio.file.Path workRoot) {
    Support support = support();
    if (isRoot() && !support.dropRoot()) {
      throw new IllegalStateException(who + ": the JVM runs as root and setpriv cannot run programs as nobody here; "
          + "refusing to run model-written code as root (install util-linux's setpriv, or run as another user)");
    }
    warnIfPartial(support, who);
    if (support.dropRoot()) {
      try {
        java.nio.file.Files.createDirectories(workRoot);
        Workspace.requireTraversable(workRoot);
      } catch (IOException e) {
        throw new IllegalArgumentException(who + ": work-dir " + workRoot + ": " + e.getMessage(), e);
      }
    }
    return support;
  }
}
