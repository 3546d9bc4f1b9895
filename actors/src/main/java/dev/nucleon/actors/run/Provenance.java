package dev.nucleon.actors.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigValueType;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A run's record of what produced it ({@code provenance.json} in the run folder): the Nucleon build (version, git
 * commit and whether the tree had changes, as the launcher found them), the JVM, DJL and libtorch, the machine (OS,
 * CPU model, cores, GPUs), the command line, the SHA-256 of the resolved config and of every model, tokenizer,
 * adapter and dataset file the run read, and every seed in the config. {@link #verify} hashes the inputs again and
 * says what changed since ({@code nucleon verify-run}).
 *
 * <p>A resumed run keeps the first record and adds {@code provenance-resume-N.json}: each start is recorded.
 */
public final class Provenance {

  /** The first start's record. */
  public static final String FILE = "provenance.json";
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Provenance.class);

  private Provenance() {}

  /** An input file of the run: what it is for, where it was, its hash and size. */
  public record Input(String role, Path path, String sha256, long bytes) {}

  /**
   * Writes the record of this start into {@code runDir} ({@link #FILE}, or the next {@code provenance-resume-N.json}
   * when the run already has one) and returns its path.
   *
   * @param config the resolved config (its {@code nucleon} block is what config.conf holds)
   * @param inputs the files the run reads, by role ({@code model}, {@code tokenizer}, {@code adapter},
   *     {@code dataset}, {@code eval-dataset}, ...): a folder stands for every file under it
   */
  public static Path write(Path runDir, Config config, Map<String, Path> inputs) throws IOException {
    Files.createDirectories(runDir);
    ObjectNode root = JSON.createObjectNode();
    root.put("written", Instant.now().toString());
    ObjectNode build = root.putObject("nucleon");
    String version = Provenance.class.getPackage().getImplementationVersion();
    build.put("version", version == null ? "dev" : version);
    putOrNull(build, "git_commit", System.getProperty("nucleon.git.commit"));
    String dirty = System.getProperty("nucleon.git.dirty");
    if (dirty == null || dirty.isEmpty()) {
      build.putNull("git_dirty");
    } else {
      build.put("git_dirty", Boolean.parseBoolean(dirty));
    }
    ArrayNode command = root.putArray("command_line");
    ProcessHandle.current().info().command().ifPresent(command::add);
    ProcessHandle.current().info().arguments().ifPresent(args -> {
      for (String a : args) {
        command.add(a);
      }
    });
    ObjectNode jvm = root.putObject("jvm");
    jvm.put("version", System.getProperty("java.version"));
    jvm.put("vendor", System.getProperty("java.vendor"));
    jvm.put("vm", System.getProperty("java.vm.name"));
    ObjectNode engine = root.putObject("engine");
    engine.put("djl", ai.djl.engine.Engine.getDjlVersion());
    ai.djl.engine.Engine pytorch = ai.djl.engine.Engine.getEngine("PyTorch");
    engine.put("libtorch", pytorch.getVersion());
    ObjectNode machine = root.putObject("machine");
    machine.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version"));
    machine.put("arch", System.getProperty("os.arch"));
    putOrNull(machine, "cpu_model", cpuModel());
    machine.put("cores", Runtime.getRuntime().availableProcessors());
    machine.put("gpus", pytorch.getGpuCount());
    Path conf = runDir.resolve("config.conf");
    root.put("config_sha256", Files.isRegularFile(conf) ? sha256(conf) : null);
    ObjectNode seeds = root.putObject("seeds");
    seeds(config).forEach(seeds::put);
    ArrayNode files = root.putArray("inputs");
    for (Input in : hashed(inputs)) {
      ObjectNode f = files.addObject();
      f.put("role", in.role());
      f.put("path", in.path().toString());
      f.put("sha256", in.sha256());
      f.put("bytes", in.bytes());
    }
    Path file = runDir.resolve(FILE);
    for (int n = 1; Files.exists(file); n++) {
      file = runDir.resolve("provenance-resume-" + n + ".json");
    }
    Files.writeString(file, JSON.writeValueAsString(root));
    return file;
  }

  /** Every numeric config key under {@code nucleon} whose last segment names a seed, with its value. */
  static Map<String, Long> seeds(Config config) {
    Map<String, Long> out = new java.util.TreeMap<>();
    for (var e : config.getConfig("nucleon").entrySet()) {
      String key = e.getKey();
      String last = key.substring(key.lastIndexOf('.') + 1);
      if (last.contains("seed") && e.getValue().valueType() == ConfigValueType.NUMBER) {
        out.put("nucleon." + key, ((Number) e.getValue().unwrapped()).longValue());
      }
    }
    return out;
  }

  /**
   * The inputs' files, hashed: a file, or a folder's regular files (sorted; symbolic links followed; hidden files and
   * folders such as {@code .git} or {@code .cache} left out). An input that names nothing is logged.
   */
  static List<Input> hashed(Map<String, Path> inputs) throws IOException {
    List<Input> out = new ArrayList<>();
    for (var e : inputs.entrySet()) {
      Path given = e.getValue().toAbsolutePath().normalize();
      Path p = Files.exists(given) ? given.toRealPath() : given;
      List<Path> files;
      if (Files.isDirectory(p)) {
        try (Stream<Path> s = Files.walk(p, java.nio.file.FileVisitOption.FOLLOW_LINKS)) {
          files = s.filter(f -> Files.isRegularFile(f) && !hidden(p.relativize(f))).sorted().toList();
        }
      } else {
        files = Files.isRegularFile(p) ? List.of(p) : List.of();
      }
      if (files.isEmpty()) {
        LOG.warn("provenance: {} input {} names no file; it is not recorded", e.getKey(), given);
      }
      for (Path f : files) {
        out.add(new Input(e.getKey(), f, sha256(f), Files.size(f)));
      }
    }
    return out;
  }

  private static boolean hidden(Path relative) {
    for (Path part : relative) {
      if (part.toString().startsWith(".")) {
        return true;
      }
    }
    return false;
  }

  /** What changed in one recorded input since the run read it. */
  public record Change(String role, String path, String was, String now) {
    public boolean changed() {
      return !was.equals(now);
    }
  }

  /**
   * Hashes every input a run's records name again: one entry per file, {@code now} being the current hash, or
   * "missing" when the file is gone.
   *
   * @throws IOException when the folder holds no record
   */
  public static List<Change> verify(Path runDir) throws IOException {
    List<Path> records;
    try (Stream<Path> s = Files.list(runDir)) {
      // the first start, then each resume in order (config.conf is rewritten at every start: the last one counts)
      records = s.filter(p -> p.getFileName().toString().matches("provenance(-resume-\\d+)?\\.json"))
          .sorted(java.util.Comparator.comparingInt(Provenance::startIndex)).toList();
    }
    if (records.isEmpty()) {
      throw new IOException(runDir + " has no " + FILE + " (runs before this version wrote none)");
    }
    // what each start recorded, the later start's entry for a file replacing the earlier one's
    Path conf = runDir.resolve("config.conf");
    Map<String, String[]> recorded = new LinkedHashMap<>(); // path -> {role, sha256}
    for (Path record : records) {
      JsonNode root = JSON.readTree(record.toFile());
      if (root.hasNonNull("config_sha256")) {
        recorded.remove(conf.toString()); // the newest start's config is the one config.conf holds
        recorded.put(conf.toString(), new String[] {"config", root.get("config_sha256").asText()});
      }
      for (JsonNode in : root.path("inputs")) {
        recorded.put(Path.of(in.get("path").asText()).toString(),
            new String[] {in.get("role").asText(), in.get("sha256").asText()});
      }
    }
    // then each file hashed once (a model folder is named by every start's record)
    List<Change> out = new ArrayList<>();
    for (var e : recorded.entrySet()) {
      Path p = Path.of(e.getKey());
      out.add(new Change(e.getValue()[0], e.getKey(), e.getValue()[1],
          Files.isRegularFile(p) ? sha256(p) : "missing"));
    }
    return out;
  }

  /** 0 for provenance.json, N for provenance-resume-N.json. */
  private static int startIndex(Path record) {
    String n = record.getFileName().toString();
    return n.equals(FILE) ? 0 : Integer.parseInt(n.substring("provenance-resume-".length(), n.length() - 5));
  }

  static String sha256(Path file) throws IOException {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    try (InputStream in = new DigestInputStream(Files.newInputStream(file), md)) {
      in.transferTo(java.io.OutputStream.nullOutputStream());
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /** The CPU's model name from /proc/cpuinfo (Linux), or null. */
  private static String cpuModel() {
    Path info = Path.of("/proc/cpuinfo");
    if (!Files.isReadable(info)) {
      return null;
    }
    try (Stream<String> lines = Files.lines(info)) {
      return lines.filter(l -> l.startsWith("model name")).findFirst()
          .map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse(null);
    } catch (IOException | java.io.UncheckedIOException e) {
      return null;
    }
  }

  private static void putOrNull(ObjectNode o, String key, String value) {
    if (value == null || value.isEmpty()) {
      o.putNull(key);
    } else {
      o.put(key, value);
    }
  }
}
