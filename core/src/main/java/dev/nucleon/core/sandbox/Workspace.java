package dev.nucleon.core.sandbox;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SecureDirectoryStream;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A fresh folder for one sandboxed call, and the runs in it: {@code <root>/<prefix>*} holds {@code work/}, the
 * command's working directory, and the files the JVM feeds it or reads back beside it. When the command runs as
 * {@code nobody} ({@link Sandbox.Support#dropRoot()}), {@code work/} is nobody's alone (0700) inside a folder that is
 * only traversable (0711), so no other user can plant links in it, and the files it writes are its own. Closing
 * deletes the folder without following links, unless it is kept for debugging.
 */
public final class Workspace implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(Workspace.class);

  private final Path dir;
  private final Path work;
  private final boolean dropRoot;
  private final boolean keep;

  private Workspace(Path dir, boolean dropRoot, boolean keep) {
    this.dir = dir;
    this.work = dir.resolve("work");
    this.dropRoot = dropRoot;
    this.keep = keep;
  }

  /**
   * Creates the folder and its {@code work/}.
   *
   * @param dropRoot whether the command will run as {@code nobody}
   * @param keep leave the folder in place on {@link #close()} (for debugging)
   */
  public static Workspace create(Path root, String prefix, boolean dropRoot, boolean keep) throws IOException {
    Files.createDirectories(root);
    if (dropRoot) {
      requireTraversable(root);
    }
    // as nobody, every sandboxed command shares one uid: the folders live in a parent nobody cannot list, under
    // random names, so one command cannot find (and tamper with) another's
    Path parent = dropRoot ? privateParent(root) : root;
    Workspace w = new Workspace(Files.createTempDirectory(parent, prefix), dropRoot, keep);
    try {
      Files.createDirectory(w.work);
      if (dropRoot) {
        Files.setPosixFilePermissions(w.dir, PosixFilePermissions.fromString("rwx--x--x"));
        w.giveToNobody(w.work);
        Files.setPosixFilePermissions(w.work, PosixFilePermissions.fromString("rwx------"));
      }
    } catch (IOException | RuntimeException e) {
      w.close();
      throw e;
    }
    return w;
  }

  /**
   * Checks that {@code nobody} can reach folders under {@code root}: every folder on the way needs the execute bit
   * for others, or a program that opens its own file by its full path (Python does) is refused.
   *
   * @throws IOException naming the first folder that others cannot traverse
   */
  public static void requireTraversable(Path root) throws IOException {
    for (Path p = root.toRealPath(); p != null; p = p.getParent()) {
      if (!Files.getPosixFilePermissions(p).contains(java.nio.file.attribute.PosixFilePermission.OTHERS_EXECUTE)) {
        throw new IOException("the sandbox runs commands as nobody, who cannot traverse " + p + " ("
            + PosixFilePermissions.toString(Files.getPosixFilePermissions(p)) + "): choose a work-dir whose every "
            + "folder others may traverse (e.g. under /tmp), or chmod o+x " + p);
      }
    }
  }

  private static final java.util.Map<Path, Path> PRIVATE_PARENTS = new java.util.concurrent.ConcurrentHashMap<>();

  /** A folder of this JVM's under {@code root}: random name, owned by it, 0711 (traversable, not listable). */
  private static Path privateParent(Path root) throws IOException {
    try {
      return PRIVATE_PARENTS.computeIfAbsent(root.toAbsolutePath().normalize(), r -> {
        try {
          Path p = Files.createTempDirectory(r, "nucleon-sandbox-");
          Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwx--x--x"));
          p.toFile().deleteOnExit(); // empty by then: each call's folder is deleted
          return p;
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
  }

  /** The folder of the call. */
  public Path dir() {
    return dir;
  }

  /** The command's working directory. */
  public Path work() {
    return work;
  }

  /**
   * Writes a file for the command (a program, its input), replacing what is there without following a link: a
   * command of an earlier run that left a link in place of the file cannot make the JVM write elsewhere.
   */
  public Path write(Path file, String text) throws IOException {
    Files.deleteIfExists(file); // removes a link itself, never its target
    // the JVM's own file, readable by all (0644): never handed to nobody, so no ownership change can be redirected
    Files.write(file, text.getBytes(StandardCharsets.UTF_8), java.nio.file.StandardOpenOption.CREATE_NEW,
        java.nio.file.StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
    return file;
  }

  /** An empty file beside {@code work/} for the command to write (its stdout or stderr). */
  public Path outputFile(String name) throws IOException {
    Path f = dir.resolve(name);
    Files.deleteIfExists(f);
    Files.createFile(f);
    if (dropRoot) {
      giveToNobody(f); // a command that reopens /dev/stdout must be allowed to write it
    }
    return f;
  }

  /** Hands a file or folder the JVM just created to nobody (the link itself, never a target, should it be one). */
  private void giveToNobody(Path p) throws IOException {
    Files.setAttribute(p, "unix:uid", Sandbox.NOBODY, LinkOption.NOFOLLOW_LINKS);
    Files.setAttribute(p, "unix:gid", Sandbox.NOBODY, LinkOption.NOFOLLOW_LINKS);
  }

  /**
   * How one run ended.
   *
   * @param timedOut whether it ran past its wall-clock limit (and was killed with its children)
   * @param exitCode its exit status; -1 when it timed out
   * @param wallNanos wall-clock time from start to end
   */
  public record Exit(boolean timedOut, int exitCode, long wallNanos) {
    public boolean ok() {
      return !timedOut && exitCode == 0;
    }
  }

  /**
   * Runs {@code command} (already wrapped by the sandbox) in {@code work/} with {@code stdin} as its input and its
   * output in the given files, for at most {@code timeout}; past it the command and all its descendants are killed.
   *
   * @param restrict give the command only the sandbox's environment ({@link Sandbox#restrictEnvironment})
   * @param env variables added on top
   * @throws IOException when it cannot start
   * @throws InterruptedException when the calling thread is interrupted (the command is killed first)
   */
  public Exit run(List<String> command, boolean restrict, Map<String, String> env, Path stdin, Path stdout,
      Path stderr, Duration timeout) throws IOException, InterruptedException {
    ProcessBuilder pb = new ProcessBuilder(command).directory(work.toFile())
        .redirectInput(stdin == null ? ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))
            : ProcessBuilder.Redirect.from(stdin.toFile()))
        .redirectOutput(stdout.toFile()).redirectError(stderr.toFile());
    if (restrict) {
      Sandbox.restrictEnvironment(pb.environment(), work.toString());
    }
    pb.environment().putAll(env);
    long start = System.nanoTime();
    Process process = pb.start();
    boolean finished;
    try {
      finished = process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      kill(process);
      throw e;
    }
    if (!finished) {
      kill(process);
      return new Exit(true, -1, System.nanoTime() - start);
    }
    return new Exit(false, process.exitValue(), System.nanoTime() - start);
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
      // a killed process stays "alive" until its parent (or init) reaps it: wait briefly for that before
      // calling it a survivor (the warning used to fire on such zombies)
      try {
        h.onExit().get(2, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
        // judged below
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      if (h.isAlive()) {
        log.warn("sandboxed process {} (pid {}) survived a forced kill", h.info().command().orElse("?"), h.pid());
      }
    }
  }

  /** The last {@code max} characters of a file the command wrote ("" when it is empty or unreadable). */
  public static String tail(Path file, int max) {
    try {
      String text = readAtMost(file, Math.max(max, 0) * 4L + 4, true).strip();
      return text.length() <= max ? text : "..." + text.substring(text.length() - max);
    } catch (IOException | UncheckedIOException e) {
      return "";
    }
  }

  /**
   * At most {@code limit} bytes of a file, decoded as UTF-8: its start, or its end when {@code end}. A command's
   * output can be as large as the sandbox's output limit; nothing reads more of it than it needs.
   */
  public static String readAtMost(Path file, long limit, boolean end) throws IOException {
    try (java.nio.channels.SeekableByteChannel ch = Files.newByteChannel(file)) {
      long size = ch.size();
      int n = (int) Math.min(size, limit);
      if (end) {
        ch.position(size - n);
      }
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(n);
      while (buf.hasRemaining() && ch.read(buf) > 0) {
        // read until full or the end of the file
      }
      return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8);
    }
  }

  @Override
  public void close() {
    if (!keep) {
      deleteTree(dir);
    }
  }

  /**
   * Deletes a folder without following any symbolic link: entries are removed relative to their open parent
   * directory ({@link SecureDirectoryStream}), so a command replacing a folder by a link while this runs cannot make
   * it delete anything outside. Falls back to a walk where the file system offers no secure directory streams.
   */
  static void deleteTree(Path dir) {
    try (DirectoryStream<Path> top = Files.newDirectoryStream(dir)) {
      if (top instanceof SecureDirectoryStream<Path> secure) {
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

  private static void deleteContents(SecureDirectoryStream<Path> dir) throws IOException {
    List<Path> names = new ArrayList<>();
    dir.forEach(p -> names.add(p.getFileName()));
    for (Path name : names) {
      BasicFileAttributes a = dir.getFileAttributeView(name, BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
          .readAttributes();
      if (a.isDirectory()) {
        try (SecureDirectoryStream<Path> sub = dir.newDirectoryStream(name, LinkOption.NOFOLLOW_LINKS)) {
          deleteContents(sub);
        }
        dir.deleteDirectory(name);
      } else {
        dir.deleteFile(name); // a link is removed itself, never its target
      }
    }
  }
}
