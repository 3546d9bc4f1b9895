package dev.nucleon.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import ai.djl.ndarray.types.DataType;
import dev.nucleon.learner.LearnerSettings;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Precision;
import dev.nucleon.replay.ReplaySettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Everything a node needs to run its part of a post-training run, read once from the run's config and validated
 * at start: a missing or wrong key stops the node with the key, the file and what was expected.
 */
public record RunSettings(Run run, Model model, Rollout rollout, Learner learner, Scorer scorer, Cluster cluster,
    ReplaySettings replay, LearnerSettings training, Config config) {

  /** {@code nucleon.run}. */
  public record Run(String name, Path dir, int totalSteps, long seed, int logEverySteps, int evalEverySteps,
      int evalSize, int evalSamples, int checkpointEverySteps, int keepLast, boolean deterministic) {}

  /**
   * {@code nucleon.model}.
   *
   * @param adapter a LoRA adapter in PEFT's layout to start from, or null: with {@code nucleon.learner.lora} its
   *     training continues, without it the adapter is merged into the base and every weight trains
   */
  public record Model(Path path, Path tokenizer, Path adapter) {}

  /** {@code nucleon.rollout}; {@code dtype} is float32 or bfloat16 (weights and compute). */
  public record Rollout(List<String> devices, int groupsPerBatch, int topK, float topP, int maxNewTokens, int threads,
      Duration groupTimeout, DataType dtype, int batchSlots, LlamaModel.AdapterUpdates adapterUpdates,
      boolean reorderWeights) {}

  /**
   * {@code nucleon.learner}; {@code dtype} is the compute type (bfloat16: mixed precision over float32 masters),
   * {@code saveDtype} the checkpoints' model type (null: the base model's), {@code weightDtype} the type weights
   * travel in to remote workers, {@code weightPort} the weight server's port (0: any free one), {@code weightFanout}
   * how many remote workers the learner and each relaying worker serve (0: the learner serves all),
   * {@code weightDeltaEvery} whether versions go as bfloat16 deltas (0: never; N: a whole version every N).
   */
  public record Learner(String device, int publishEverySteps, int weightChunkBytes, DataType dtype,
      DataType saveDtype, DataType weightDtype, int weightPort, int weightFanout, int weightDeltaEvery) {}

  /** {@code nucleon.reward-scorer}. */
  public record Scorer(int scorers, int maxInFlight) {}

  /**
   * {@code nucleon.cluster}.
   *
   * @param managementPort the port of Pekko Management's HTTP endpoint (health checks {@code /alive} and
   *     {@code /ready}, what Kubernetes probes), or 0 for none ({@code nucleon.cluster.management})
   * @param bootstrap how the node finds its cluster without seed nodes, or null to join {@code seedNodes}
   */
  public record Cluster(Set<String> roles, String host, int port, List<String> seedNodes, int managementPort,
      Bootstrap bootstrap) {}

  /**
   * {@code nucleon.cluster.bootstrap}: Pekko Management's Cluster Bootstrap.
   *
   * @param discoveryMethod how peers are found: {@code kubernetes-api}, {@code config}, {@code pekko-dns}, ...
   * @param serviceName the name peers are discovered under
   * @param requiredContactPoints peers that must be found before a new cluster is formed
   */
  public record Bootstrap(String discoveryMethod, String serviceName, int requiredContactPoints) {}

  public static final Set<String> ROLES = Set.of("coordinator", "learner", "rollout", "reward");

  public static RunSettings from(Config c) {
    Run run = new Run(
        nonEmpty(c, "nucleon.run.name"),
        Path.of(c.getString("nucleon.run.dir")),
        atLeast(c, "nucleon.run.total-steps", 1),
        c.getLong("nucleon.run.seed"),
        atLeast(c, "nucleon.run.log-every-steps", 1),
        atLeast(c, "nucleon.run.eval.every-steps", 0),
        atLeast(c, "nucleon.run.eval.size", 0),
        atLeast(c, "nucleon.run.eval.samples", 0),
        atLeast(c, "nucleon.run.checkpoint.every-steps", 0),
        atLeast(c, "nucleon.run.checkpoint.keep-last", 1),
        c.getBoolean("nucleon.run.deterministic"));
    String tok = c.getString("nucleon.model.tokenizer");
    String adapter = c.getString("nucleon.model.adapter");
    Model model = new Model(Path.of(nonEmpty(c, "nucleon.model.path")), tok.isBlank() ? null : Path.of(tok),
        adapter.isBlank() ? null : Path.of(adapter));
    List<String> devices = c.getStringList("nucleon.rollout.devices");
    if (devices.isEmpty()) {
      throw bad(c, "nucleon.rollout.devices", "must name at least one device (cpu, gpu or gpu:N)");
    }
    for (String d : devices) {
      checkDevice(c, "nucleon.rollout.devices", d);
    }
    double topP = c.getDouble("nucleon.rollout.top-p");
    if (!(topP > 0 && topP <= 1)) {
      throw bad(c, "nucleon.rollout.top-p", "must be in (0, 1], got " + topP);
    }
    Rollout rollout = new Rollout(devices, atLeast(c, "nucleon.rollout.groups-per-batch", 1),
        atLeast(c, "nucleon.rollout.top-k", 0), (float) topP, atLeast(c, "nucleon.rollout.max-new-tokens", 1),
        atLeast(c, "nucleon.rollout.threads", 0), c.getDuration("nucleon.rollout.group-timeout"),
        dtype(c, "nucleon.rollout.dtype", devices), atLeast(c, "nucleon.rollout.batch-slots", 0),
        adapterUpdates(c), c.getBoolean("nucleon.rollout.reorder-weights"));
    String learnerDevice = c.getString("nucleon.learner.device");
    checkDevice(c, "nucleon.learner.device", learnerDevice);
    long chunk = c.getBytes("nucleon.learner.weight-chunk-bytes");
    if (chunk < 1024 || chunk > 64L << 20) {
      throw bad(c, "nucleon.learner.weight-chunk-bytes", "must be between 1KiB and 64MiB, got " + chunk);
    }
    boolean saveAuto = isAuto(c, "nucleon.learner.save-dtype");
    // auto: the rollout's type, unless that is auto too: then each worker resolves it on its own hardware, which
    // may differ from this node's, and float32 on the wire loses nothing whatever they resolve it to
    DataType wire = !isAuto(c, "nucleon.learner.weight-dtype") ? dtype(c, "nucleon.learner.weight-dtype", List.of())
        : isAuto(c, "nucleon.rollout.dtype") ? DataType.FLOAT32 : rollout.dtype();
    int weightPort = atLeast(c, "nucleon.learner.weight-port", 0);
    if (weightPort > 65535) {
      throw bad(c, "nucleon.learner.weight-port", "must be a TCP port (0 for any free one), got " + weightPort);
    }
    Learner learner = new Learner(learnerDevice, atLeast(c, "nucleon.learner.publish-every-steps", 1), (int) chunk,
        dtype(c, "nucleon.learner.dtype", List.of(learnerDevice)),
        saveAuto ? null : dtype(c, "nucleon.learner.save-dtype", List.of()),
        wire, weightPort, atLeast(c, "nucleon.learner.weight-fanout", 0),
        atLeast(c, "nucleon.learner.weight-delta-every", 0));
    if (learner.weightDeltaEvery() > 0 && wire != DataType.BFLOAT16) {
      throw bad(c, "nucleon.learner.weight-delta-every", "deltas need bf16 weights on the wire "
          + "(nucleon.learner.weight-dtype = bf16, or auto with nucleon.rollout.dtype = bf16): float32 values all "
          + "change at every step");
    }
    Scorer scorer = new Scorer(atLeast(c, "nucleon.reward-scorer.scorers", 1),
        atLeast(c, "nucleon.reward-scorer.max-in-flight", 1));
    List<String> roles = c.getStringList("nucleon.cluster.roles");
    for (String r : roles) {
      if (!ROLES.contains(r)) {
        throw bad(c, "nucleon.cluster.roles", "unknown role '" + r + "'; roles are " + ROLES);
      }
    }
    int management = c.getBoolean("nucleon.cluster.management.enabled")
        ? atLeast(c, "nucleon.cluster.management.port", 1) : 0;
    List<String> seeds = c.getStringList("nucleon.cluster.seed-nodes");
    Bootstrap bootstrap = null;
    if (c.getBoolean("nucleon.cluster.bootstrap.enabled")) {
      if (management == 0) {
        throw bad(c, "nucleon.cluster.bootstrap.enabled", "Cluster Bootstrap asks its peers through Pekko "
            + "Management: set nucleon.cluster.management.enabled = true");
      }
      if (!seeds.isEmpty()) {
        throw bad(c, "nucleon.cluster.seed-nodes", "must be empty with nucleon.cluster.bootstrap.enabled (the "
            + "node finds its cluster by discovery), got " + seeds);
      }
      String method = c.getString("nucleon.cluster.bootstrap.discovery-method");
      String service = c.getString("nucleon.cluster.bootstrap.service-name");
      if (method.isBlank() || service.isBlank()) {
        throw bad(c, "nucleon.cluster.bootstrap", "discovery-method and service-name must not be empty");
      }
      bootstrap = new Bootstrap(method, service, atLeast(c, "nucleon.cluster.bootstrap.required-contact-points", 1));
    }
    Cluster cluster = new Cluster(Set.copyOf(roles), c.getString("nucleon.cluster.host"),
        atLeast(c, "nucleon.cluster.port", 0), seeds, management, bootstrap);
    ReplaySettings replay = ReplaySettings.from(c);
    if (learner.publishEverySteps() > replay.maxStaleness() + 1) {
      throw bad(c, "nucleon.learner.publish-every-steps", "must be at most nucleon.algorithm.max-staleness + 1 ("
          + (replay.maxStaleness() + 1) + "): workers with older weights get no work, so the run would stall");
    }
    if (run.deterministic()) {
      checkDeterministic(c, rollout, replay);
    }
    return new RunSettings(run, model, rollout, learner, scorer, cluster, replay, LearnerSettings.from(c), c);
  }

  /**
   * Deterministic mode promises bit-identical weights from two runs of the same file. It holds only where every
   * input of every update is a function of the config: refuse the settings where it cannot, naming why.
   */
  private static void checkDeterministic(Config c, Rollout rollout, ReplaySettings replay) {
    String mode = "nucleon.run.deterministic = true";
    if (replay.maxStaleness() != 0) {
      throw bad(c, ReplaySettings.MAX_STALENESS, mode + " needs synchronous RL (max-staleness = 0): with "
          + "asynchronous rollouts, which policy version samples which group depends on timing; got "
          + replay.maxStaleness());
    }
    if (rollout.devices().size() != 1) {
      throw bad(c, "nucleon.rollout.devices", mode + " needs exactly one rollout worker: several workers split "
          + "the groups by timing, and a batch's composition changes the floating-point results; got "
          + rollout.devices());
    }
    if (rollout.threads() != 1) {
      throw bad(c, "nucleon.rollout.threads", mode + " needs one libtorch thread (threads = 1): multi-threaded "
          + "kernels are not guaranteed to reduce in the same order; got " + rollout.threads());
    }
    if (replay.batchByTokens()) {
      throw bad(c, ReplaySettings.BATCH_TOKENS, mode + " needs batches by groups (batch-tokens = 0): a token "
          + "budget takes whichever groups finished first");
    }
    if (replay.dropZeroVariance() || replay.dropOverlong()) {
      throw bad(c, replay.dropZeroVariance() ? ReplaySettings.DROP_ZERO_VARIANCE : ReplaySettings.DROP_OVERLONG,
          mode + " needs every sampled group to be trained: a filtered group is replaced by groups issued when the "
          + "worker next asks, so generation batches would depend on timing");
    }
    if (rollout.groupsPerBatch() < replay.batchGroups()) {
      throw bad(c, "nucleon.rollout.groups-per-batch", mode + " needs the worker to sample a training batch's groups "
          + "in one generation batch (groups-per-batch >= nucleon.algorithm.batch-groups = " + replay.batchGroups()
          + "); got " + rollout.groupsPerBatch());
    }
  }

  public boolean hasRole(String role) {
    return cluster.roles().contains(role);
  }

  private static void checkDevice(Config c, String key, String d) {
    String n = d.trim().toLowerCase(Locale.ROOT);
    if (!(n.equals("cpu") || n.equals("gpu") || n.matches("gpu:\\d+"))) {
      throw bad(c, key, "device '" + d + "': expected cpu, gpu or gpu:N");
    }
  }

  /** {@code nucleon.rollout.adapter-updates}: merged or side-products. */
  private static LlamaModel.AdapterUpdates adapterUpdates(Config c) {
    String key = "nucleon.rollout.adapter-updates";
    return switch (c.getString(key)) {
      case "merged" -> LlamaModel.AdapterUpdates.MERGED;
      case "side-products" -> LlamaModel.AdapterUpdates.SIDE_PRODUCTS;
      default -> throw bad(c, key, "must be merged or side-products, got '" + c.getString(key) + "'");
    };
  }

  private static boolean isAuto(Config c, String key) {
    return c.getString(key).trim().equalsIgnoreCase("auto");
  }

  /**
   * A type setting: f32, bf16, or auto, resolved for {@code devices} ({@link Precision#resolveType}; the settings
   * where auto means something else resolve it before they get here).
   */
  private static DataType dtype(Config c, String key, List<String> devices) {
    try {
      return Precision.resolveType(c.getString(key), devices);
    } catch (IllegalArgumentException e) {
      throw bad(c, key, e.getMessage() + " (or auto)");
    }
  }

  private static int atLeast(Config c, String key, int min) {
    int v = c.getInt(key);
    if (v < min) {
      throw bad(c, key, "must be >= " + min + ", got " + v);
    }
    return v;
  }

  private static String nonEmpty(Config c, String key) {
    String v = c.getString(key);
    if (v.isBlank()) {
      throw bad(c, key, "must be set");
    }
    return v;
  }

  static ConfigException bad(Config c, String key, String message) {
    return new ConfigException.BadValue(c.hasPath(key) ? c.getValue(key).origin() : c.origin(), key, message);
  }
}
