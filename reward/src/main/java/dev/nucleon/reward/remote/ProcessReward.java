package dev.nucleon.reward.remote;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A reward computed by an external command, one process per batch: how to sandbox code-execution rewards.
 *
 * <ol>
 *   <li>Make a fresh directory for the call ({@code <work-dir>/nucleon-reward-*}), with {@code work/} as the
 *       process's working directory and the input, output and error streams as files beside it.
 *   <li>Write one JSON request per line (see {@link WireFormat}) and start {@code command} with that file as its
 *       standard input and the extra {@code env} variables.
 *   <li>Wait up to {@code timeout}. Past it, kill the process and all its descendants (forcibly) and fail the batch
 *       with "timed out".
 *   <li>A non-zero exit fails the batch with the exit code and the end of standard error. Otherwise read one result
 *       per request from standard output (blank lines ignored): a number or a JSON result; too few or too many
 *       lines, or a line that is neither, fail the batch, naming the line.
 *   <li>Delete the call's directory (unless {@code keep-work-dirs}).
 * </ol>
 */
public final class ProcessReward implements RewardFunction {

  private static final Logger log = LoggerFactory.getLogger(ProcessReward.class);

  private final List<String> command;
  private final Duration timeout;
  private final Path workRoot;
  private final boolean keepWorkDirs;
  private final Map<String, String> env;
  private final int maxStderr;
  private final Sandbox sandbox;
  private final Sandbox.Support support;

  public ProcessReward(List<String> command, Duration timeout, Path workRoot, boolean keepWorkDirs,
      Map<String, String> env, int maxStderr) {
    this(command, timeout, workRoot, keepWorkDirs, env, maxStderr, Sandbox.NONE);
  }

  /** @param sandbox the limits the command runs under ({@link Sandbox}) */
  public ProcessReward(List<String> command, Duration timeout, Path workRoot, boolean keepWorkDirs,
      Map<String, String> env, int maxStderr, Sandbox sandbox) {
    if (command.isEmpty()) {
      throw new IllegalArgumentException("command is empty");
    }
    this.command = List.copyOf(command);
    this.timeout = timeout;
    this.workRoot = workRoot;
    this.keepWorkDirs = keepWorkDirs;
    this.env = Map.copyOf(env);
    this.maxStderr = maxStderr;
    this.sandbox = sandbox;
    this.support = sandbox.limits() ? Sandbox.support() : new Sandbox.Support(false, false, false);
    sandbox.warnIfPartial(support, "process");
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    return score(List.of(request)).get(0);
  }

  @Override
  public boolean scoresBatches() {
    return true;
  }

  @Override
  public List<RewardResult> score(List<RewardRequest> batch) {
    int n = batch.size();
    Path dir;
    try {
      Files.createDirectories(workRoot);
      dir = Files.createTempDirectory(workRoot, "nucleon-reward-");
    } catch (IOException e) {
      return WireFormat.allFailed(n, "process: cannot create a working directory under " + workRoot + ": " + e);
    }
    try {
      return run(batch, dir);
    } finally {
      if (!keepWorkDirs) {
        deleteTree(dir);
      }
    }
  }

  private List<RewardResult> run(List<RewardRequest> batch, Path dir) {
    int n = batch.size();
    Path work = dir.resolve("work");
    Path in = dir.resolve("stdin.jsonl");
    Path out = dir.resolve("stdout.txt");
    Path err = dir.resolve("stderr.txt");
    try {
      Files.createDirectory(work);
      if (support.dropRoot()) {
        // the command runs as nobody: its working directory is nobody's alone (0700), the call's folder only
        // traversable (0711), so no other user can plant links in it
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
        Files.setAttribute(work, "unix:uid", Sandbox.NOBODY);
        Files.setAttribute(work, "unix:gid", Sandbox.NOBODY);
        Files.setPosixFilePermissions(work, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        // its output files are its own too: a command that reopens /dev/stdout must be allowed to write it
        for (Path f : List.of(out, err)) {
          Files.createFile(f);
          Files.setAttribute(f, "unix:uid", Sandbox.NOBODY);
          Files.setAttribute(f, "unix:gid", Sandbox.NOBODY);
        }
      }
      StringBuilder lines = new StringBuilder();
      for (RewardRequest r : batch) {
        lines.append(WireFormat.JSON.writeValueAsString(WireFormat.request(r))).append('\n');
      }
      Files.writeString(in, lines, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return WireFormat.allFailed(n, "process: cannot prepare the input: " + e);
    }
    ProcessBuilder pb = new ProcessBuilder(sandbox.wrap(command, support)).directory(work.toFile())
        .redirectInput(in.toFile()).redirectOutput(out.toFile()).redirectError(err.toFile());
    if (sandbox.limits()) {
      Sandbox.restrictEnvironment(pb.environment(), work.toString());
    }
    pb.environment().putAll(env);
    Process process;
    try {
      process = pb.start();
    } catch (IOException e) {
      return WireFormat.allFailed(n, "process: cannot start " + command + ": " + e.getMessage());
    }
    boolean finished;
    try {
      finished = process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      kill(process);
      return WireFormat.allFailed(n, "process: interrupted; killed " + command.get(0));
    }
    if (!finished) {
      kill(process);
      return WireFormat.allFailed(n, "process: timed out after " + timeout.toMillis() + " ms; killed "
          + command.get(0) + " and its children" + stderrTail(err));
    }
    int exit = process.exitValue();
    if (exit != 0) {
      return WireFormat.allFailed(n, "process: " + command.get(0) + " exited with " + exit + stderrTail(err));
    }
    List<String> output;
    try {
      output = Files.readAllLines(out, StandardCharsets.UTF_8).stream().filter(l -> !l.isBlank()).toList();
    } catch (IOException | UncheckedIOException e) {
      return WireFormat.allFailed(n, "process: cannot read its output: " + e);
    }
    if (output.size() != n) {
      return WireFormat.allFailed(n, "process: wrote " + output.size() + " results for " + n + " requests"
          + stderrTail(err));
    }
    List<RewardResult> results = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      String line = output.get(i).strip();
      try {
        JsonNode node = WireFormat.JSON.readTree(line);
        results.add(WireFormat.result(node, "process"));
      } catch (JsonProcessingException | IllegalArgumentException e) {
        String why = e instanceof IllegalArgumentException ? e.getMessage() : "not a number or JSON";
        return WireFormat.allFailed(n, "process: output line " + (i + 1) + " is malformed ("
            + why + "): " + WireFormat.abbreviate(line));
      }
    }
    return results;
  }

  /** Kills the process and every descendant, children first. */
  static void kill(Process process) {
    List<ProcessHandle> descendants = process.descendants().toList();
    descendants.forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
    try {
      process.waitFor(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (ProcessHandle h : descendants) {
      if (h.isAlive()) {
        log.warn("reward process {} (pid {}) survived a forced kill", h.info().command().orElse("?"), h.pid());
      }
    }
  }

  private String stderrTail(Path err) {
    try {
      String text = Files.readString(err, StandardCharsets.UTF_8).strip();
      if (text.isEmpty()) {
        return "";
      }
      return "; stderr: " + (text.length() <= maxStderr ? text : "..." + text.substring(text.length() - maxStderr));
    } catch (IOException | UncheckedIOException e) {
      return "";
    }
  }

  /**
   * Deletes the call's folder without following any symbolic link: entries are removed relative to their open
   * parent directory ({@link java.nio.file.SecureDirectoryStream}), so the command (or anyone) replacing a folder by
   * a link while this runs cannot make it delete anything outside. Falls back to a walk where the file system offers
   * no secure directory streams.
   */
  private static void deleteTree(Path dir) {
    try (java.nio.file.DirectoryStream<Path> top = Files.newDirectoryStream(dir)) {
      if (top instanceof java.nio.file.SecureDirectoryStream<Path> secure) {
        deleteContents(secure);
        Files.delete(dir);
        return;
      }
    } catch (IOException e) {
      log.warn("could not delete {}: {}", dir, e.toString());
      return;
    }
    try (Stream<Path> paths = Files.walk(dir)) {
      paths.sorted(Comparator.reverseOrder()).forEach(p -> {
        try {
          Files.deleteIfExists(p);
        } catch (IOException e) {
          log.warn("could not delete {}: {}", p, e.toString());
        }
      });
    } catch (IOException e) {
      log.warn("could not delete {}: {}", dir, e.toString());
    }
  }

  private static void deleteContents(java.nio.file.SecureDirectoryStream<Path> dir) throws IOException {
    List<Path> names = new ArrayList<>();
    dir.forEach(p -> names.add(p.getFileName()));
    for (Path name : names) {
      java.nio.file.attribute.BasicFileAttributes a = dir.getFileAttributeView(name,
          java.nio.file.attribute.BasicFileAttributeView.class, java.nio.file.LinkOption.NOFOLLOW_LINKS)
          .readAttributes();
      if (a.isDirectory()) {
        try (java.nio.file.SecureDirectoryStream<Path> sub = dir.newDirectoryStream(name,
            java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
          deleteContents(sub);
        }
        dir.deleteDirectory(name);
      } else {
        dir.deleteFile(name); // a link is removed itself, never its target
      }
    }
  }

  /** {@code nucleon.reward.process { command, timeout, work-dir, keep-work-dirs, env, max-stderr }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "process";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "process");
      List<String> command = ConfigValues.stringList(c, "command");
      if (command.isEmpty() || command.get(0).isBlank()) {
        throw ConfigValues.bad(c, "command", "is empty: give the program and its arguments, e.g. "
            + "[\"python3\", \"score.py\"]");
      }
      String dir = ConfigValues.string(c, "work-dir").trim();
      Path root = dir.isEmpty() ? Paths.get(System.getProperty("java.io.tmpdir")) : Paths.get(dir);
      Map<String, String> env = new LinkedHashMap<>();
      if (c.hasPath("env")) {
        Config e = c.getConfig("env");
        for (String key : e.root().keySet()) {
          env.put(key, e.getString("\"" + key + "\""));
        }
      }
      java.time.Duration cpu = c.getDuration("sandbox.cpu-time");
      if (cpu.isNegative()) {
        throw ConfigValues.bad(c, "sandbox.cpu-time", "must not be negative, got " + cpu);
      }
      for (String k : List.of("sandbox.memory", "sandbox.output")) {
        if (c.getBytes(k) < 0) {
          throw ConfigValues.bad(c, k, "must not be negative");
        }
      }
      // whole seconds, rounded up: a limit under one second must not become 0 (no limit)
      long cpuSeconds = (cpu.toMillis() + 999) / 1000;
      Sandbox sandbox = new Sandbox(cpuSeconds, c.getBytes("sandbox.memory"), c.getBytes("sandbox.output"),
          ConfigValues.intAtLeast(c, "sandbox.processes", 0), ConfigValues.bool(c, "sandbox.network"));
      return new ProcessReward(command, ConfigValues.positiveDuration(c, "timeout"), root,
          ConfigValues.bool(c, "keep-work-dirs"), env, ConfigValues.intAtLeast(c, "max-stderr", 0), sandbox);
    }
  }
}
