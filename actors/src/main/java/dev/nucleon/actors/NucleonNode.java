package dev.nucleon.actors;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.coordinator.DatasetPromptSource;
import dev.nucleon.actors.monitor.ClusterStatus;
import dev.nucleon.actors.monitor.MonitorSettings;
import dev.nucleon.actors.monitor.Monitoring;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.learner.Learner;
import dev.nucleon.learner.LearnerCheckpoint;
import dev.nucleon.learner.checkpoint.Checkpoint;
import dev.nucleon.learner.checkpoint.CheckpointStore;
import dev.nucleon.learner.checkpoint.TrainerState;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.Precision;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.lora.PeftAdapter;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.replay.ReplayBuffer;
import dev.nucleon.reward.Rewards;
import dev.nucleon.reward.RewardSettings;
import dev.nucleon.rollout.PromptCheck;
import dev.nucleon.rollout.RolloutEngine;
import dev.nucleon.rollout.data.Dataset;
import dev.nucleon.core.env.EnvironmentRegistry;
import dev.nucleon.rollout.data.ChatTemplate;
import dev.nucleon.rollout.data.DatasetSettings;
import dev.nucleon.rollout.env.EpisodeRunner;
import dev.nucleon.rollout.env.EpisodeSettings;
import dev.nucleon.rollout.env.GuardedEnvironment;
import dev.nucleon.rollout.env.TurnFormat;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.SingletonActor;

/**
 * One JVM's part of a run: loads what the node's roles need (dataset, models, tokenizer, reward plug-ins), starts
 * the Pekko actor system as a cluster member, and spawns the role actors. The embedded default gives one node every
 * role; {@code nucleon.cluster.roles} and {@code seed-nodes} spread the same run over machines.
 */
public final class NucleonNode implements AutoCloseable {

  private final RunSettings settings;
  private final Path runDir;
  private final ActorSystem<Void> system;
  private final CompletableFuture<RunReporter.Summary> finished = new CompletableFuture<>();
  private final List<AutoCloseable> resources = new ArrayList<>();
  private final NucleonMetrics metrics;
  private final Monitoring monitoring;
  private volatile ActorRef<Coordinator.Command> coordinatorProxy;

  private NucleonNode(RunSettings settings, Path runDir, boolean resume, RunReporter.ProgressListener progress) {
    this.settings = settings;
    this.runDir = runDir;
    if (settings.rollout().threads() > 0) {
      Engines.intraOpThreads(settings.rollout().threads());
    } else {
      Engines.start();
    }
    RunSettings bound = settings.cluster().port() == 0 ? withPort(settings, freePort(settings.cluster().host()))
        : settings;
    this.metrics = new NucleonMetrics("pekko://nucleon@" + bound.cluster().host() + ":" + bound.cluster().port(),
        settings.cluster().roles());
    // read and check what the roles need before any actor starts, so a bad path or device stops the node with
    // its own message instead of failing inside the actor system
    if (settings.hasRole("rollout")) {
      settings.rollout().devices().forEach(Engines::device);
    }
    if (settings.hasRole("learner")) {
      Engines.device(settings.learner().device());
    }
    ModelFiles.Checkpoint read = settings.hasRole("rollout") || settings.hasRole("learner")
        ? ModelFiles.read(settings.model().path()) : null;
    PeftAdapter start = read == null ? null : startAdapter(read.config());
    // without LoRA training a starting adapter is part of the model every role loads; with it, the base stays
    // apart and the adapter reaches workers as the learner's first version
    ModelFiles.Checkpoint base = start != null && settings.training().lora() == null ? read.withAdapter(start) : read;
    Dataset dataset = settings.hasRole("coordinator") ? Dataset.load(DatasetSettings.from(settings.config()),
        EpisodeSettings.from(settings.config()).toolDeclarations(EnvironmentRegistry.load())) : null;
    if (settings.hasRole("coordinator")) {
      try {
        // what produced the run: the build, the machine, the hashes of every input (nucleon verify-run)
        dev.nucleon.actors.run.RunDirectory.writeProvenance(runDir, settings.config());
      } catch (IOException e) {
        throw new UncheckedIOException("cannot write the run's provenance record in " + runDir, e);
      }
    }
    if (settings.hasRole("reward")) {
      RewardSettings.from(settings.config());
    }
    if (base != null) {
      checkTokenBudget(settings.replay(), base.config().maxPositionEmbeddings());
    }
    PromptCheck check = settings.hasRole("coordinator") ? promptCheck(base) : null;
    Behavior<Void> guardian = Behaviors.setup(ctx -> {
      Behavior<Coordinator.Command> coordinatorBehavior =
          Behaviors.setup(c -> coordinatorBehavior(ctx.getSystem(), dataset, check, resume, progress));
      ActorRef<Coordinator.Command> coordinator = ClusterSingleton.get(ctx.getSystem()).init(
          SingletonActor.of(coordinatorBehavior, "coordinator")
              .withSettings(ClusterSingletonSettings.create(ctx.getSystem()).withRole("coordinator")));
      if (settings.hasRole("learner")) {
        startLearner(ctx, coordinator, base, start, resume);
      }
      if (settings.hasRole("reward")) {
        startScorers(ctx);
      }
      if (settings.hasRole("rollout")) {
        startWorkers(ctx, coordinator, base, start);
      }
      ctx.spawn(NodeReporter.create(metrics, coordinator, Duration.ofSeconds(2)), "node-reporter");
      coordinatorProxy = coordinator;
      // a role actor that fails ends the run with its error instead of leaving it waiting
      return Behaviors.receive(Void.class)
          .onSignal(org.apache.pekko.actor.typed.ChildFailed.class, failed -> {
            ctx.getLog().error("{} failed; the run stops", failed.getRef().path().name(), failed.getCause());
            finished.completeExceptionally(new IllegalStateException(failed.getRef().path().name() + " failed: "
                + failed.getCause(), failed.getCause()));
            return Behaviors.same();
          })
          .build();
    });
    this.system = ActorSystem.create(guardian, "nucleon", pekkoConfig(bound));
    system.getWhenTerminated().thenRun(() -> finished.completeExceptionally(
        new IllegalStateException("the node stopped before the run finished (see nucleon.log)")));
    this.monitoring = Monitoring.start(system, MonitorSettings.from(settings.config()), metrics,
        settings.hasRole("coordinator"), this::status, () -> runDir);
    Cluster cluster = Cluster.get(system);
    if (settings.cluster().managementPort() > 0) {
      // health checks for Kubernetes' probes (/alive, /ready), and the contact point Cluster Bootstrap asks
      org.apache.pekko.management.javadsl.PekkoManagement.get(
          org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(system)).start();
    }
    if (settings.cluster().bootstrap() != null) {
      // joins the cluster its discovered peers belong to, or forms one with them (deploy/README.md, "Kubernetes")
      org.apache.pekko.management.cluster.bootstrap.ClusterBootstrap.get(
          org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(system)).start();
    } else if (settings.cluster().seedNodes().isEmpty()) {
      cluster.manager().tell(Join.create(cluster.selfMember().address()));
    }
  }

  /** Starts a node; returns once the actor system runs (the run goes on in the background). */
  public static NucleonNode start(RunSettings settings, Path runDir, boolean resume,
      RunReporter.ProgressListener progress) {
    return new NucleonNode(settings, runDir, resume, progress);
  }

  public ActorSystem<Void> system() {
    return system;
  }

  public NucleonMetrics metrics() {
    return metrics;
  }

  /** The node's monitoring endpoints (dashboard URL, metrics URL). */
  public Monitoring monitoring() {
    return monitoring;
  }

  /** Asks the coordinator for the cluster-wide status. */
  public java.util.concurrent.CompletionStage<ClusterStatus> status() {
    return org.apache.pekko.actor.typed.javadsl.AskPattern.ask(coordinatorProxy, Coordinator.StatusRequest::new,
        Duration.ofSeconds(3), system.scheduler());
  }

  private static int freePort(String host) {
    try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getByName(host))) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException("no free port on " + host, e);
    }
  }

  private static RunSettings withPort(RunSettings s, int port) {
    RunSettings.Cluster c = s.cluster();
    return new RunSettings(s.run(), s.model(), s.rollout(), s.learner(), s.scorer(),
        new RunSettings.Cluster(c.roles(), c.host(), port, c.seedNodes(), c.managementPort(), c.bootstrap()),
        s.replay(), s.training(), s.config());
  }

  /** Completes with the run's summary on the node that hosts the coordinator. */
  public CompletableFuture<RunReporter.Summary> finished() {
    return finished;
  }

  /**
   * The Pekko part of the node's config: cluster provider, Artery address, roles, seeds. Weights do not travel over
   * Artery (see {@link dev.nucleon.actors.weights.WeightServer}).
   */
  static Config pekkoConfig(RunSettings s) {
    Duration downAfter = s.config().getDuration("nucleon.cluster.down-unreachable-after");
    if (downAfter.compareTo(Duration.ofSeconds(1)) < 0) {
      throw new IllegalArgumentException("nucleon.cluster.down-unreachable-after: at least 1s, got " + downAfter);
    }
    String seeds = quoted(s.cluster().seedNodes());
    String roles = quoted(s.cluster().roles());
    String hocon = "pekko {\n"
        + "  loggers = [\"org.apache.pekko.event.slf4j.Slf4jLogger\"]\n"
        + "  logging-filter = \"org.apache.pekko.event.slf4j.Slf4jLoggingFilter\"\n"
        + "  loglevel = INFO\n"
        + "  actor.provider = cluster\n"
        + "  remote.artery {\n"
        + "    canonical.hostname = \"" + s.cluster().host() + "\"\n"
        + "    canonical.port = " + s.cluster().port() + "\n"
        + "  }\n"
        + "  cluster {\n"
        + "    seed-nodes = [" + seeds + "]\n"
        + "    roles = [" + roles + "]\n"
        + "    downing-provider-class = \"org.apache.pekko.cluster.sbr.SplitBrainResolverProvider\"\n"
        // the side with the coordinator (and its learner) survives any loss of rollout or reward nodes, a 1:1 split
        // included; a side without it downs itself and its nodes rejoin (NodeCommand)
        + "    split-brain-resolver {\n"
        + "      active-strategy = keep-oldest\n"
        + "      keep-oldest { role = \"coordinator\", down-if-alone = off }\n"
        // downing everyone when reachability keeps changing would stop the coordinator's side too
        + "      down-all-when-unstable = off\n"
        + "      stable-after = " + downAfter.toMillis() + "ms\n"
        + "    }\n"
        + "    jmx.multi-mbeans-in-same-jvm = on\n"
        // a node that rejoins (a replaced coordinator, a node that downed itself) tries its seeds every 2 s
        + "    retry-unsuccessful-join-after = 2s\n"
        // a node's proxy to the coordinator asks for the singleton until it finds it, by default once a second; the
        // proxy of the node that starts the singleton usually asks before it is up, so runs waited 0.7 s more for
        // their first work (learner/README.md, "Waiting for the coordinator")
        + "    singleton-proxy.singleton-identification-interval = 100ms\n"
        + "  }\n"
        + "  coordinated-shutdown.exit-jvm = off\n"
        // weight streams read in 1 MiB pieces (128 KiB halves their speed: more, smaller pieces per version)
        + "  io.tcp.direct-buffer-size = 1MiB\n"
        + "}\n";
    if (s.cluster().managementPort() > 0) {
      hocon += "pekko.management {\n"
          + "  http.hostname = \"" + s.cluster().host() + "\"\n"
          + "  http.bind-hostname = \"0.0.0.0\"\n"
          + "  http.port = " + s.cluster().managementPort() + "\n"
          // ready once this node is a cluster member (Up, WeaklyUp); alive while the actor system runs
          + "  health-checks.readiness-checks.cluster-membership = "
          + "\"org.apache.pekko.management.cluster.scaladsl.ClusterMembershipCheck\"\n"
          + "}\n";
    }
    RunSettings.Bootstrap b = s.cluster().bootstrap();
    if (b != null) {
      // the discovery method's own settings (pekko.discovery.<method>) come from the run config
      hocon += "pekko.management.cluster.bootstrap.contact-point-discovery {\n"
          + "  discovery-method = \"" + b.discoveryMethod() + "\"\n"
          + "  service-name = \"" + b.serviceName() + "\"\n"
          + "  required-contact-point-nr = " + b.requiredContactPoints() + "\n"
          + "}\n";
    }
    // these win over the run config, which already carries every reference.conf (pekko's own defaults included)
    return ConfigFactory.parseString(hocon).withFallback(s.config());
  }

  /** A HOCON list body of quoted strings. */
  private static String quoted(java.util.Collection<String> values) {
    return String.join(",", values.stream().map(x -> "\"" + x + "\"").toList());
  }

  /**
   * Refuses a token budget that can never be filled: at most (max-staleness + 1) x batch-groups groups wait to be
   * trained (the coordinator's admission), each of group-size samples no longer than the model's context.
   */
  static void checkTokenBudget(dev.nucleon.replay.ReplaySettings r, int context) {
    if (!r.batchByTokens()) {
      return;
    }
    long groups = (long) (r.maxStaleness() + 1) * r.batchGroups();
    long most = groups * r.groupSize() * context;
    if (most < r.batchTokens()) {
      throw new IllegalArgumentException(dev.nucleon.replay.ReplaySettings.BATCH_TOKENS + " = " + r.batchTokens()
          + " can never be filled, so no batch would ever be trained: at most (" + dev.nucleon.replay.ReplaySettings
          .MAX_STALENESS + " + 1) x " + dev.nucleon.replay.ReplaySettings.BATCH_GROUPS + " = " + groups
          + " groups wait to be trained, of " + dev.nucleon.replay.ReplaySettings.GROUP_SIZE + " = " + r.groupSize()
          + " samples of at most the model's context of " + context + " tokens: " + most + " tokens; raise "
          + dev.nucleon.replay.ReplaySettings.BATCH_GROUPS + " or lower " + dev.nucleon.replay.ReplaySettings
          .BATCH_TOKENS);
    }
  }

  /**
   * The coordinator's check of prompts as it reads them: with the model's tokenizer and context where this node can
   * read them, else emptiness and decoding only (the rollout workers check the length either way).
   */
  private PromptCheck promptCheck(ModelFiles.Checkpoint base) {
    try {
      ModelFiles.Checkpoint m = base != null ? base : ModelFiles.read(settings.model().path());
      TextTokenizer tokenizer = ModelFiles.tokenizer(settings.model().path(), settings.model().tokenizer(),
          m.config());
      resources.add(tokenizer);
      return new PromptCheck(tokenizer, m.config().maxPositionEmbeddings(), settings.rollout().maxNewTokens());
    } catch (RuntimeException e) {
      org.slf4j.LoggerFactory.getLogger(NucleonNode.class).info("prompt lengths are checked by the rollout workers "
          + "only: this node cannot read the model's tokenizer and config ({})", e.getMessage());
      return new PromptCheck(null, Integer.MAX_VALUE, 0);
    }
  }

  private Behavior<Coordinator.Command> coordinatorBehavior(ActorSystem<?> sys, Dataset dataset, PromptCheck check,
      boolean resume, RunReporter.ProgressListener progress) {
    byte[] snapshot = null;
    int version = 0;
    if (resume) {
      Optional<Checkpoint> ckpt = store().latestValid();
      if (ckpt.isPresent()) {
        try {
          TrainerState state = TrainerState.read(ckpt.get().resolve(LearnerCheckpoint.STATE));
          snapshot = state.blob().length == 0 ? null : state.blob();
          version = Integer.parseInt(state.rng().get("policy-version"));
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
    }
    ActorRef<RunReporter.Command> reporter = sys.systemActorOf(
        RunReporter.create(settings, runDir, finished, metrics, progress, resume ? version : -1), "run-reporter",
        org.apache.pekko.actor.typed.Props.empty());
    return Coordinator.create(settings, new DatasetPromptSource(dataset), check, reporter, snapshot, version);
  }

  private CheckpointStore store() {
    return new CheckpointStore(runDir.resolve("checkpoints"), settings.run().keepLast());
  }

  /**
   * {@code nucleon.model.adapter} read and, for LoRA training, checked against {@code nucleon.learner.lora} (the
   * rollout models merge versions with those settings); null when none is named.
   */
  private PeftAdapter startAdapter(dev.nucleon.model.LlamaConfig config) {
    Path dir = settings.model().adapter();
    if (dir == null) {
      return null;
    }
    PeftAdapter adapter;
    try {
      adapter = PeftAdapter.read(dir);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("nucleon.model.adapter: " + e.getMessage(), e);
    }
    if (settings.training().lora() != null) {
      try {
        adapter.requireLike(settings.training().lora(), config);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("nucleon.model.adapter (" + dir + "): " + e.getMessage() + "; set "
            + "nucleon.learner.lora to the adapter's rank, alpha and targets to continue training it", e);
      }
      // trained with the run's settings (no dropout), saved as an adapter of the run's base
      return adapter.withSettings(settings.training().lora().withBaseModel(settings.model().path().toString()));
    }
    return adapter;
  }

  /**
   * @param start the adapter LoRA training continues from ({@code nucleon.model.adapter}), or null for a fresh one
   */
  private void startLearner(org.apache.pekko.actor.typed.javadsl.ActorContext<Void> ctx,
      ActorRef<Coordinator.Command> coordinator, ModelFiles.Checkpoint base, PeftAdapter start, boolean resume) {
    CheckpointStore store = store();
    Optional<Checkpoint> ckpt = resume ? store.latestValid() : Optional.empty();
    if (resume && ckpt.isEmpty()) {
      ctx.getLog().warn("--resume: no valid checkpoint in {}; starting from the base model", store.root());
    }
    NDManager manager = NDManager.newBaseManager(Engines.device(settings.learner().device()));
    resources.add(manager);
    ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "nucleon-learner");
      t.setDaemon(true);
      return t;
    });
    long samplesSeen = 0;
    Learner learner;
    try {
      DataType dtype = settings.learner().dtype();
      PeftAdapter.Settings lora = settings.training().lora();
      LlamaModel policy = CompletableFuture.supplyAsync(() -> {
        // a LoRA run's base never changes: in bfloat16 compute it is held in bfloat16 (what the float32 masters
        // would be cast to in every forward), half their memory; the adapter trains in float32.
        // A LoRA checkpoint holds the adapter alone: its policy is the run's base with it restored below.
        LlamaModel p = lora != null ? base.instantiate(manager, Precision.inference(dtype))
            : (ckpt.isPresent() ? LearnerCheckpoint.model(ckpt.get()) : base)
                .instantiate(manager, Precision.training(dtype));
        if (lora != null && start != null) {
          p.attachLora(start); // continues the given adapter; a resumed run's checkpoint overwrites its values below
        } else if (lora != null) {
          // a fresh adapter on the frozen base; a resumed run's checkpoint overwrites its values below
          p.attachLora(lora.withBaseModel(settings.model().path().toString()), settings.run().seed());
        }
        return p;
      }, thread).join();
      // the KL reference is the initial policy: the base (with the starting adapter merged, if any); a fresh LoRA
      // adapter's base is the policy itself with the adapter off, so no copy is loaded
      ModelFiles.Checkpoint initial = lora == null ? base : start == null ? null : base.withAdapter(start);
      LlamaModel reference = settings.training().loss().klCoef() > 0 && initial != null
          ? CompletableFuture.supplyAsync(() -> initial.instantiate(manager, Precision.inference(dtype)), thread)
              .join()
          : null;
      learner = new Learner(policy, reference, settings.training().loss(), settings.training().optimizer(),
          settings.training().spikes(), settings.training().updates().packedTo(
              settings.replay().microBatchTokens(), settings.replay().microBatchCost()),
          settings.training().temperature(), 0);
      learner.setRoutingReplay(settings.training().routingReplay());
      learner.setRouterAuxLoss(settings.training().routerAuxLossCoef());
      learner.setSharedPrompts(settings.training().sharePrompts());
      if (ckpt.isPresent()) {
        Learner l = learner;
        TrainerState state = CompletableFuture.supplyAsync(() -> {
          try {
            return LearnerCheckpoint.restore(ckpt.get(), l);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }, thread).join();
        samplesSeen = state.samplesSeen();
        // on the console too: it is the run's own news (ConsoleFilter)
        org.slf4j.LoggerFactory.getLogger(dev.nucleon.actors.run.ConsoleFilter.RUN_LOGGER).info(
            "resumed from {} at policy version {}", ckpt.get().dir(), learner.version());
      }
    } catch (RuntimeException e) {
      thread.shutdown();
      throw e;
    }
    resources.add(learner);
    // what nucleon.learner.dtype (auto included) came to on this machine
    ctx.getLog().info("learner on {} computes in {}", settings.learner().device(),
        Precision.training(settings.learner().dtype()));
    ReplayBuffer buffer = new ReplayBuffer(settings.replay());
    ActorRef<ReplayActor.Command> replay = ctx.spawn(ReplayActor.create(buffer, coordinator, metrics), "replay");
    ctx.watch(replay);
    ctx.watch(ctx.spawn(LearnerActor.create(settings, learner, replay, coordinator, store, metrics, thread,
        samplesSeen, new LearnerCheckpoint.ModelFolder(settings.learner().saveDtype() == null ? base.storedType()
            : settings.learner().saveDtype(), modelFiles())), "learner"));
  }

  /** Tokenizer and template files of the base model, copied into every checkpoint's model folder. */
  private List<Path> modelFiles() {
    List<Path> files = new ArrayList<>(dev.nucleon.model.ModelFiles.companionFiles(settings.model().path()));
    Path tok = settings.model().tokenizer();
    if (tok != null && java.nio.file.Files.isRegularFile(tok) && !files.contains(tok)) {
      files.add(tok);
    }
    return files;
  }

  private void startScorers(org.apache.pekko.actor.typed.javadsl.ActorContext<Void> ctx) {
    RewardSettings rewardSettings = RewardSettings.from(settings.config());
    int n = settings.scorer().scorers();
    ExecutorService pool = Executors.newFixedThreadPool(n * settings.scorer().maxInFlight(), r -> {
      Thread t = new Thread(r, "nucleon-reward");
      t.setDaemon(true);
      return t;
    });
    resources.add(pool::shutdownNow);
    for (int i = 0; i < n; i++) {
      RewardFunction reward = Rewards.fromConfig(settings.config());
      resources.add(reward);
      ctx.spawn(Behaviors.supervise(RewardScorer.create("scorer-" + i, reward, rewardSettings.name(), pool,
          settings.scorer().maxInFlight(), metrics)).onFailure(SupervisorStrategy.restart()), "scorer-" + i);
    }
  }

  /**
   * @param start the adapter a LoRA run starts from (applied to every rollout model as version 0), or null
   */
  private void startWorkers(org.apache.pekko.actor.typed.javadsl.ActorContext<Void> ctx,
      ActorRef<Coordinator.Command> coordinator, ModelFiles.Checkpoint base, PeftAdapter start) {
    TextTokenizer tokenizer = ModelFiles.tokenizer(settings.model().path(), settings.model().tokenizer(),
        base.config());
    resources.add(tokenizer);
    EpisodeSettings episodes = EpisodeSettings.from(settings.config());
    // one environment for the node's workers: a remote environment's servers are shared, not handed out twice
    GuardedEnvironment environment = episodes.enabled() ? episodes.environment(EnvironmentRegistry.load()) : null;
    int[] stop = ModelFiles.stopIds(tokenizer, base.config());
    if (environment != null) {
      resources.add(environment);
      stop = EpisodeRunner.stopTokens(stop, environment, tokenizer);
    }
    SamplingParams sampling = new SamplingParams(settings.training().temperature(), settings.rollout().topK(),
        settings.rollout().topP(), settings.rollout().maxNewTokens(), stop);
    List<String> devices = settings.rollout().devices();
    for (int i = 0; i < devices.size(); i++) {
      NDManager manager = NDManager.newBaseManager(Engines.device(devices.get(i)));
      resources.add(manager);
      LlamaModel model = base.instantiate(manager, Precision.inference(settings.rollout().dtype()));
      ctx.getLog().info("rollout worker on {} computes in {}", devices.get(i), model.precision());
      model.setReorderedWeights(settings.rollout().reorderWeights());
      if (settings.training().lora() != null) {
        // the learner sends each version's adapter alone; the base stays as loaded here
        model.takeAdapterUpdates(settings.training().lora(), settings.rollout().adapterUpdates());
      }
      Generator generator = new Generator(model, 0);
      if (settings.training().lora() != null && start != null) {
        // version 0 is base + the starting adapter: the learner publishes only the versions after it
        generator.updateWeights(0, start.tensors());
      }
      RolloutEngine engine = new RolloutEngine(generator, tokenizer, sampling, settings.rollout().batchSlots());
      // an open batch's row layout depends on when work arrives: deterministic runs end a batch with each call
      engine.keepBatchOpen(!settings.run().deterministic());
      if (episodes.enabled()) {
        engine.useEpisodes(new EpisodeRunner(environment, turnFormat(episodes), episodes.maxTurns(),
            episodes.maxTokens()));
      }
      String name = "rollout-" + i;
      // workers beside the learner get its tensors in memory and have no one to relay to
      RolloutWorker.Relay relay = settings.learner().weightFanout() > 0 && !settings.hasRole("learner")
          ? new RolloutWorker.Relay(settings.cluster().host(), settings.learner().weightChunkBytes()) : null;
      ctx.watch(ctx.spawn(RolloutWorker.create(name, engine, coordinator, settings.rollout().groupsPerBatch(),
          metrics, relay), name));
    }
  }

  /**
   * How an environment's messages are written into an episode: through the model's chat template when the dataset
   * renders prompts with it, otherwise as {@code nucleon.environment.message-format} says.
   */
  private TurnFormat turnFormat(EpisodeSettings episodes) {
    DatasetSettings data = DatasetSettings.from(settings.config());
    if (!data.chatTemplate()) {
      return TurnFormat.plain(episodes.messageFormat());
    }
    return TurnFormat.chat(ChatTemplate.fromTokenizerConfig(Path.of(data.tokenizerConfig())));
  }

  /** Leaves the cluster, stops the actor system and frees native memory. */
  @Override
  public void close() {
    monitoring.close();
    system.terminate();
    try {
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      // closing anyway
    }
    for (int i = resources.size() - 1; i >= 0; i--) {
      try {
        resources.get(i).close();
      } catch (Exception e) {
        // best effort at shutdown
      }
    }
  }
}
