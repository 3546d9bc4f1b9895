package dev.nucleon.learner.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A folder of checkpoints, written atomically, verified on read and pruned to the last N. It stores files and
 * knows nothing about tensors: the caller's {@link Writer} puts whatever it needs (model safetensors, optimizer
 * moments, {@link TrainerState}, ...) into a fresh directory, and the store makes that directory a checkpoint.
 *
 * <h2>Layout</h2>
 *
 * <pre>
 * root/
 *   step-000000120/            a published checkpoint (nine digits, more when the step needs them)
 *     manifest.json            {"format":1,"step":120,"created":"2025-...Z",
 *                               "files":{"model/model.safetensors":{"sha256":"...","bytes":N}, ...}}
 *     model/model.safetensors  ... whatever the writer wrote
 *   step-000000140/
 *   .tmp-step-000000160-1f2e.. a save in progress (or a crashed one: removed, never loaded)
 *   .old-step-000000140-...    the previous copy of a step being re-saved (during the swap only)
 *   .del-step-000000100-...    a pruned checkpoint being deleted
 * </pre>
 *
 * <h2>Saving ({@link #save})</h2>
 *
 * <ol>
 *   <li>Remove leftovers of an interrupted save (see "Crash recovery").
 *   <li>Create {@code .tmp-step-<step>-<random>} under the root and call the writer with it.
 *   <li>Walk the directory: every regular file gets its SHA-256 and size (relative paths with '/'), and is
 *       fsynced; every sub-directory is fsynced. Symbolic links and other special files are refused.
 *   <li>Write {@code manifest.json} <em>last</em> and fsync it and the directory. A directory without a manifest
 *       is therefore always an unfinished save.
 *   <li>Rename the directory to {@code step-<step>} with {@code ATOMIC_MOVE} and fsync the root. If that step
 *       already exists (saving the same step twice), the old one is first renamed to {@code .old-step-...}, the
 *       new one takes its name, then the old one is deleted: at every instant one complete copy exists.
 *   <li>Prune: keep the checkpoint just written plus the {@code keepLast - 1} others with the highest steps;
 *       delete the rest, oldest first (each renamed to {@code .del-step-...} before deletion, so that a crash in
 *       the middle of a delete never leaves a half-deleted {@code step-*} directory). Retention counts
 *       directories by step number whether or not they verify (hashing every checkpoint on each save would cost
 *       too much); the one just written has been hashed and is never deleted.
 * </ol>
 *
 * <p>fsync of a directory opens it for reading and calls {@link FileChannel#force}; file systems or platforms
 * that refuse that (Windows) are tolerated silently.
 *
 * <h2>Reading ({@link #latestValid}, {@link #verify})</h2>
 *
 * A checkpoint is valid when its manifest exists and parses (format 1, a step that agrees with the directory
 * name), and every listed file exists as a regular file with the listed size and SHA-256. Files the manifest does
 * not list are <b>tolerated and ignored</b>: a save of this store can never produce them (the manifest is written
 * after the writer finished), so they can only have been added later by a person or a tool (notes, evaluation
 * output, NFS silly-rename files); loaders read only listed files, so they cannot affect a resume. They are
 * logged at DEBUG. {@link #latestValid} tries the {@code step-*} directories newest first and returns the first
 * valid one; each invalid one is skipped with a WARN that names the directory, the file and what is wrong.
 *
 * <h2>Crash recovery</h2>
 *
 * At construction and at the start of every save, {@code .tmp-step-*} and {@code .del-step-*} directories are
 * deleted. An {@code .old-step-N-*} directory whose {@code step-N} is missing (a crash between the two renames of
 * a re-save) is renamed back to {@code step-N}; otherwise it is deleted.
 *
 * <h2>Concurrency</h2>
 *
 * One store instance per root, in one process: {@link #save} is synchronized, but two processes (or two
 * instances) writing one root would remove each other's temp directories. Reading while saving is safe: readers
 * only look at {@code step-*} names, which appear atomically.
 */
public final class CheckpointStore {

  /** Name of the manifest inside a checkpoint directory (reserved: a writer must not create it). */
  public static final String MANIFEST = "manifest.json";

  /** Manifest format written and understood by this class. */
  public static final int FORMAT = 1;

  static final String STEP_PREFIX = "step-";
  static final String TMP_PREFIX = ".tmp-step-";
  static final String OLD_PREFIX = ".old-step-";
  static final String DEL_PREFIX = ".del-step-";

  private static final Pattern STEP_DIR = Pattern.compile("step-(\\d{1,19})");
  private static final Pattern HIDDEN_DIR = Pattern.compile("\\.(tmp|old|del)-step-(\\d{1,19})-[0-9a-f]+");
  private static final Pattern SHA256_HEX = Pattern.compile("[0-9a-f]{64}");
  private static final Logger LOG = LoggerFactory.getLogger(CheckpointStore.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int BUFFER = 1 << 20;

  /** Fills a fresh, empty directory with the files of one checkpoint. */
  @FunctionalInterface
  public interface Writer {
    /**
     * @param dir an empty directory that becomes the checkpoint; sub-directories are allowed, symbolic links
     *     and the name {@value CheckpointStore#MANIFEST} at the top level are not
     */
    void write(Path dir) throws IOException;
  }

  private final Path root;
  private final int keepLast;

  /**
   * Opens (creating it if needed) a checkpoint folder and removes leftovers of interrupted saves.
   *
   * @param root the folder that holds the {@code step-*} directories
   * @param keepLast how many checkpoints to keep, at least 1 ({@link Integer#MAX_VALUE} keeps all)
   * @throws UncheckedIOException when the folder cannot be created or read
   */
  public CheckpointStore(Path root, int keepLast) {
    Objects.requireNonNull(root, "root");
    if (keepLast < 1) {
      throw new IllegalArgumentException("keepLast must be >= 1, got " + keepLast);
    }
    this.root = root.toAbsolutePath().normalize();
    this.keepLast = keepLast;
    try {
      Files.createDirectories(this.root);
      recoverAndCleanStale();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot open checkpoint folder " + this.root + ": " + e, e);
    }
  }

  /** The folder holding the checkpoints. */
  public Path root() {
    return root;
  }

  /** How many checkpoints are kept. */
  public int keepLast() {
    return keepLast;
  }

  /** The directory name of a step: {@code step-} and the step with at least nine digits. */
  public static String dirName(long step) {
    requireStep(step);
    return String.format("%s%09d", STEP_PREFIX, step);
  }

  /** Where the checkpoint of {@code step} lives (whether or not it exists). */
  public Path dirOf(long step) {
    return root.resolve(dirName(step));
  }

  /**
   * Writes a checkpoint atomically (see the class comment), replacing any earlier checkpoint of the same step,
   * then prunes to {@link #keepLast()}.
   *
   * <p>If the writer throws, or hashing, fsync or the rename fail, the temp directory is removed, no {@code
   * step-*} directory is created or changed, and the exception propagates.
   *
   * @return the published checkpoint directory {@code root/step-<step>}
   */
  public synchronized Path save(long step, Writer writer) throws IOException {
    requireStep(step);
    Objects.requireNonNull(writer, "writer");
    recoverAndCleanStale();
    String padded = dirName(step).substring(STEP_PREFIX.length());
    Path tmp = root.resolve(TMP_PREFIX + padded + "-" + randomSuffix());
    Files.createDirectory(tmp);
    Path target = dirOf(step);
    boolean published = false;
    try {
      writer.write(tmp);
      if (Files.exists(tmp.resolve(MANIFEST), LinkOption.NOFOLLOW_LINKS)) {
        throw new IOException(
            "the checkpoint writer created " + MANIFEST + " in " + tmp + "; that name is reserved for the store");
      }
      Map<String, Checkpoint.FileEntry> files = hashAndSync(tmp);
      writeManifest(tmp, step, Instant.now(), files);
      fsyncDir(tmp);
      publish(tmp, target, padded);
      published = true;
    } finally {
      if (!published) {
        deleteQuietly(tmp, "unfinished save of step " + step);
      }
    }
    LOG.info("checkpoint step {} written to {}", step, target);
    prune(step);
    return target;
  }

  /**
   * The newest checkpoint that verifies, trying {@code step-*} directories from the highest step down; each
   * invalid one is skipped with a WARN log naming the directory, the file and the fault.
   *
   * @throws UncheckedIOException when the root cannot be listed
   */
  public Optional<Checkpoint> latestValid() {
    List<Long> all = new ArrayList<>(steps());
    Collections.reverse(all);
    for (long step : all) {
      try {
        return Optional.of(verify(dirOf(step)));
      } catch (CorruptCheckpointException e) {
        LOG.warn("skipping invalid checkpoint: {}", e.getMessage());
      }
    }
    return Optional.empty();
  }

  /**
   * The steps of all {@code step-*} directories under the root, valid or not, ascending. Temp, old and
   * being-deleted directories are not included.
   *
   * @throws UncheckedIOException when the root cannot be listed
   */
  public List<Long> steps() {
    List<Long> out = new ArrayList<>();
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(root)) {
      for (Path p : entries) {
        long step = parseStepDir(p.getFileName().toString());
        if (step >= 0 && Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
          out.add(step);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list checkpoint folder " + root + ": " + e, e);
    }
    Collections.sort(out);
    return out;
  }

  /**
   * Verifies one checkpoint directory (inside a store or anywhere else, e.g. a path given by a user): the
   * manifest exists and parses, its step agrees with a {@code step-N} directory name, and every listed file
   * exists as a regular file with the listed size and SHA-256. Unlisted files are ignored.
   *
   * @throws CorruptCheckpointException naming the directory, the file and the reason; I/O errors while reading
   *     are reported this way too
   */
  public static Checkpoint verify(Path dir) {
    Objects.requireNonNull(dir, "dir");
    if (!Files.exists(dir)) {
      throw new CorruptCheckpointException(dir, null, "does not exist");
    }
    if (!Files.isDirectory(dir)) {
      throw new CorruptCheckpointException(dir, null, "is not a directory");
    }
    Path manifestPath = dir.resolve(MANIFEST);
    if (!Files.exists(manifestPath, LinkOption.NOFOLLOW_LINKS)) {
      throw new CorruptCheckpointException(
          dir, MANIFEST, "missing: partial write (the save did not finish; the manifest is written last)");
    }
    Manifest manifest = readManifest(dir, manifestPath);
    Path name = dir.getFileName();
    long dirStep = name == null ? -1 : parseStepDir(name.toString());
    if (dirStep >= 0 && dirStep != manifest.step) {
      throw new CorruptCheckpointException(
          dir, MANIFEST, "says step " + manifest.step + " but the directory is step " + dirStep);
    }
    for (Map.Entry<String, Checkpoint.FileEntry> e : manifest.files.entrySet()) {
      verifyFile(dir, e.getKey(), e.getValue());
    }
    if (LOG.isDebugEnabled()) {
      logUnlisted(dir, manifest.files);
    }
    return new Checkpoint(manifest.step, dir, manifest.created, manifest.files);
  }

  // ---------------------------------------------------------------------------------------------- verification

  private record Manifest(long step, Instant created, Map<String, Checkpoint.FileEntry> files) {}

  private static Manifest readManifest(Path dir, Path manifestPath) {
    JsonNode node;
    try {
      node = JSON.readTree(Files.readAllBytes(manifestPath));
    } catch (JsonProcessingException e) {
      throw new CorruptCheckpointException(
          dir, MANIFEST, "not valid JSON (" + e.getOriginalMessage() + " at line " + line(e) + ")", e);
    } catch (IOException e) {
      throw new CorruptCheckpointException(dir, MANIFEST, "unreadable: " + e, e);
    }
    if (node == null || !node.isObject()) {
      throw new CorruptCheckpointException(dir, MANIFEST, "is not a JSON object");
    }
    JsonNode format = node.get("format");
    if (format == null || !format.isIntegralNumber()) {
      throw new CorruptCheckpointException(dir, MANIFEST, "has no integer \"format\"");
    }
    if (format.asInt() != FORMAT) {
      throw new CorruptCheckpointException(
          dir, MANIFEST, "has format " + format.asText() + "; this version reads format " + FORMAT);
    }
    JsonNode stepNode = node.get("step");
    if (stepNode == null || !stepNode.isIntegralNumber() || !stepNode.canConvertToLong() || stepNode.asLong() < 0) {
      throw new CorruptCheckpointException(dir, MANIFEST, "has no non-negative integer \"step\"");
    }
    Instant created;
    JsonNode createdNode = node.get("created");
    try {
      if (createdNode == null || !createdNode.isTextual()) {
        throw new DateTimeParseException("missing", "", 0);
      }
      created = Instant.parse(createdNode.asText());
    } catch (DateTimeParseException e) {
      throw new CorruptCheckpointException(dir, MANIFEST, "has no ISO-8601 \"created\" time");
    }
    JsonNode filesNode = node.get("files");
    if (filesNode == null || !filesNode.isObject()) {
      throw new CorruptCheckpointException(dir, MANIFEST, "has no \"files\" object");
    }
    Map<String, Checkpoint.FileEntry> files = new TreeMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = filesNode.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> f = it.next();
      String rel = f.getKey();
      String bad = checkRelative(rel);
      if (bad != null) {
        throw new CorruptCheckpointException(dir, MANIFEST, "lists an unsafe path \"" + rel + "\": " + bad);
      }
      JsonNode sha = f.getValue().get("sha256");
      JsonNode bytes = f.getValue().get("bytes");
      if (sha == null || !sha.isTextual() || !SHA256_HEX.matcher(sha.asText()).matches()) {
        throw new CorruptCheckpointException(dir, MANIFEST, "entry " + rel + " has no valid \"sha256\"");
      }
      if (bytes == null || !bytes.isIntegralNumber() || !bytes.canConvertToLong() || bytes.asLong() < 0) {
        throw new CorruptCheckpointException(dir, MANIFEST, "entry " + rel + " has no valid \"bytes\"");
      }
      files.put(rel, new Checkpoint.FileEntry(sha.asText(), bytes.asLong()));
    }
    return new Manifest(stepNode.asLong(), created, files);
  }

  private static String line(JsonProcessingException e) {
    return e.getLocation() == null
        ? "?"
        : e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
  }

  /** Null when {@code rel} is a safe relative path with '/' separators, else why not. */
  private static String checkRelative(String rel) {
    if (rel.isEmpty()) {
      return "empty";
    }
    if (rel.startsWith("/") || rel.contains("\\") || rel.contains(":") || rel.indexOf('\0') >= 0) {
      return "must be relative with '/' separators";
    }
    for (String part : rel.split("/", -1)) {
      if (part.isEmpty() || part.equals(".") || part.equals("..")) {
        return "must not contain empty, '.' or '..' segments";
      }
    }
    if (rel.equals(MANIFEST)) {
      return "the manifest cannot list itself";
    }
    return null;
  }

  private static Path resolveRelative(Path dir, String rel) {
    Path p = dir;
    for (String part : rel.split("/")) {
      p = p.resolve(part);
    }
    return p;
  }

  private static void verifyFile(Path dir, String rel, Checkpoint.FileEntry expected) {
    Path p = resolveRelative(dir, rel);
    if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
      throw new CorruptCheckpointException(dir, rel, "missing (the manifest lists " + expected.bytes() + " bytes)");
    }
    if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
      throw new CorruptCheckpointException(dir, rel, "is not a regular file");
    }
    try {
      long size = Files.size(p);
      if (size < expected.bytes()) {
        throw new CorruptCheckpointException(
            dir, rel, "truncated: " + size + " bytes, the manifest says " + expected.bytes());
      }
      if (size > expected.bytes()) {
        throw new CorruptCheckpointException(
            dir, rel, "size mismatch: " + size + " bytes, the manifest says " + expected.bytes());
      }
      String actual = sha256(p, false).sha256();
      if (!actual.equals(expected.sha256())) {
        throw new CorruptCheckpointException(
            dir, rel, "checksum mismatch: sha256 " + actual + ", the manifest says " + expected.sha256());
      }
    } catch (NoSuchFileException e) {
      throw new CorruptCheckpointException(dir, rel, "missing", e);
    } catch (IOException e) {
      throw new CorruptCheckpointException(dir, rel, "unreadable: " + e, e);
    }
  }

  private static void logUnlisted(Path dir, Map<String, Checkpoint.FileEntry> listed) {
    try (Stream<Path> walk = Files.walk(dir)) {
      walk.filter(p -> !Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS))
          .map(p -> relative(dir, p))
          .filter(rel -> !rel.equals(MANIFEST) && !listed.containsKey(rel))
          .forEach(rel -> LOG.debug("checkpoint {}: file {} is not in the manifest; ignored", dir, rel));
    } catch (IOException | UncheckedIOException e) {
      LOG.debug("checkpoint {}: cannot list for unlisted files: {}", dir, e.toString());
    }
  }

  // ---------------------------------------------------------------------------------------------- writing

  private static Map<String, Checkpoint.FileEntry> hashAndSync(Path tmp) throws IOException {
    Map<String, Checkpoint.FileEntry> files = new TreeMap<>();
    List<Path> dirs = new ArrayList<>();
    try (Stream<Path> walk = Files.walk(tmp)) {
      for (Iterator<Path> it = walk.iterator(); it.hasNext(); ) {
        Path p = it.next();
        BasicFileAttributes attrs =
            Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (attrs.isDirectory()) {
          dirs.add(p);
        } else if (attrs.isRegularFile()) {
          String rel = relative(tmp, p);
          String bad = checkRelative(rel);
          if (bad != null) {
            throw new IOException("checkpoint file name \"" + rel + "\" cannot be stored: " + bad);
          }
          files.put(rel, sha256(p, true));
        } else {
          throw new IOException(
              "checkpoint writer created " + p + ", which is not a regular file or directory (links are refused)");
        }
      }
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
    Collections.reverse(dirs); // deepest first, the checkpoint directory itself last
    for (Path d : dirs) {
      fsyncDir(d);
    }
    return files;
  }

  private static void writeManifest(Path tmp, long step, Instant created, Map<String, Checkpoint.FileEntry> files)
      throws IOException {
    ObjectNode node = JSON.createObjectNode();
    node.put("format", FORMAT);
    node.put("step", step);
    node.put("created", created.toString());
    ObjectNode filesNode = node.putObject("files");
    files.forEach(
        (rel, e) -> {
          ObjectNode f = filesNode.putObject(rel);
          f.put("sha256", e.sha256());
          f.put("bytes", e.bytes());
        });
    byte[] bytes = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(node);
    writeAndSync(tmp.resolve(MANIFEST), bytes);
  }

  /** Writes a new file completely and fsyncs it. */
  static void writeAndSync(Path file, byte[] bytes) throws IOException {
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ByteBuffer buf = ByteBuffer.wrap(bytes);
      while (buf.hasRemaining()) {
        ch.write(buf);
      }
      ch.force(true);
    }
  }

  private void publish(Path tmp, Path target, String padded) throws IOException {
    if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
      Path old = root.resolve(OLD_PREFIX + padded + "-" + randomSuffix());
      Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
      try {
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (IOException e) {
        try {
          Files.move(old, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException back) {
          e.addSuppressed(back);
        }
        throw e;
      }
      fsyncDir(root);
      deleteQuietly(old, "replaced copy of " + target.getFileName());
      LOG.info("checkpoint {} replaced by a new save of the same step", target);
    } else {
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
      fsyncDir(root);
    }
  }

  private void prune(long justWritten) {
    List<Long> others;
    try {
      others = new ArrayList<>(steps());
    } catch (UncheckedIOException e) {
      LOG.warn("cannot list {} to prune old checkpoints: {}", root, e.getCause().toString());
      return;
    }
    others.remove(Long.valueOf(justWritten));
    int excess = others.size() - (keepLast - 1);
    for (int i = 0; i < excess; i++) {
      long step = others.get(i);
      Path dir = dirOf(step);
      String padded = dirName(step).substring(STEP_PREFIX.length());
      Path doomed = root.resolve(DEL_PREFIX + padded + "-" + randomSuffix());
      try {
        Files.move(dir, doomed, StandardCopyOption.ATOMIC_MOVE);
      } catch (IOException e) {
        LOG.warn("cannot prune checkpoint {} (keeping it): {}", dir, e.toString());
        continue;
      }
      fsyncDir(root);
      deleteQuietly(doomed, "pruned checkpoint step " + step);
      LOG.info("pruned checkpoint {} (keep-last {})", dir, keepLast);
    }
  }

  // ---------------------------------------------------------------------------------------------- recovery

  private void recoverAndCleanStale() throws IOException {
    List<Path> hidden = new ArrayList<>();
    try (DirectoryStream<Path> entries = Files.newDirectoryStream(root)) {
      for (Path p : entries) {
        if (HIDDEN_DIR.matcher(p.getFileName().toString()).matches()) {
          hidden.add(p);
        }
      }
    }
    Collections.sort(hidden);
    boolean renamed = false;
    for (Path p : hidden) {
      Matcher m = HIDDEN_DIR.matcher(p.getFileName().toString());
      if (!m.matches()) {
        continue;
      }
      String kind = m.group(1);
      if (kind.equals("old")) {
        long step = parseLong(m.group(2));
        Path target = step < 0 ? null : dirOf(step);
        if (target != null && !Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
          Files.move(p, target, StandardCopyOption.ATOMIC_MOVE);
          renamed = true;
          LOG.warn(
              "restored checkpoint {} from {}: a re-save of that step was interrupted between its two renames",
              target,
              p.getFileName());
          continue;
        }
      }
      String why =
          switch (kind) {
            case "tmp" -> "left by an interrupted save; never loaded";
            case "del" -> "left by an interrupted prune";
            default -> "left by an interrupted re-save";
          };
      LOG.warn("removing stale checkpoint directory {} ({})", p, why);
      deleteQuietly(p, "stale directory");
    }
    if (renamed) {
      fsyncDir(root);
    }
  }

  // ---------------------------------------------------------------------------------------------- helpers

  private static void requireStep(long step) {
    if (step < 0) {
      throw new IllegalArgumentException("step must be >= 0, got " + step);
    }
  }

  /** The step of a canonical {@code step-N} name, or -1. */
  static long parseStepDir(String name) {
    Matcher m = STEP_DIR.matcher(name);
    if (!m.matches()) {
      return -1;
    }
    long step = parseLong(m.group(1));
    // only the canonical spelling, so one step maps to one directory
    return step >= 0 && dirName(step).equals(name) ? step : -1;
  }

  private static long parseLong(String digits) {
    try {
      return Long.parseLong(digits);
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  private static String relative(Path base, Path p) {
    Path rel = base.relativize(p);
    StringBuilder sb = new StringBuilder();
    for (Path part : rel) {
      if (sb.length() > 0) {
        sb.append('/');
      }
      sb.append(part);
    }
    return sb.toString();
  }

  private static String randomSuffix() {
    return Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE);
  }

  /** SHA-256 and size of a file, read once; with {@code sync} the file is fsynced too. */
  private static Checkpoint.FileEntry sha256(Path file, boolean sync) throws IOException {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is required of every Java platform", e);
    }
    long total = 0;
    StandardOpenOption[] options =
        sync
            ? new StandardOpenOption[] {StandardOpenOption.READ, StandardOpenOption.WRITE}
            : new StandardOpenOption[] {StandardOpenOption.READ};
    try (FileChannel ch = FileChannel.open(file, options)) {
      ByteBuffer buf = ByteBuffer.allocate(BUFFER);
      int n;
      while ((n = ch.read(buf)) >= 0) {
        if (n > 0) {
          buf.flip();
          md.update(buf);
          buf.clear();
          total += n;
        }
      }
      if (sync) {
        ch.force(true);
      }
    }
    return new Checkpoint.FileEntry(HexFormat.of().formatHex(md.digest()), total);
  }

  /** fsync a directory so that renames and new entries in it are durable; refused on some platforms. */
  static void fsyncDir(Path dir) {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    } catch (IOException e) {
      LOG.trace("directory fsync not supported for {}: {}", dir, e.toString());
    }
  }

  private static void deleteQuietly(Path p, String what) {
    try {
      deleteTree(p);
    } catch (IOException e) {
      LOG.warn("cannot delete {} ({}): {}; it will be removed at the next save", p, what, e.toString());
    }
  }

  private static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    Files.walkFileTree(
        p,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
            Files.delete(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path d, IOException exc) throws IOException {
            if (exc != null) {
              throw exc;
            }
            Files.delete(d);
            return FileVisitResult.CONTINUE;
          }
        });
  }
}
