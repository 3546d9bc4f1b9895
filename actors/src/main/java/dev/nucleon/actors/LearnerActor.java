package dev.nucleon.actors;

import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.BusyTracker;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.actors.serialization.NucleonMessage;
import dev.nucleon.actors.weights.TensorSource;
import dev.nucleon.actors.weights.WeightServer;
import dev.nucleon.actors.weights.WeightStream;
import dev.nucleon.learner.Learner;
import dev.nucleon.learner.LearnerCheckpoint;
import dev.nucleon.learner.StepStats;
import dev.nucleon.learner.checkpoint.CheckpointStore;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.replay.BatchStats;
import dev.nucleon.replay.TrainingBatch;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * Drives the learner: pulls a training batch from the replay buffer, runs one optimizer step on its own thread
 * (autograd state is per thread), publishes the new policy version to every rollout worker, reports to the
 * coordinator, and checkpoints model, optimizer and the coordinator's state together.
 *
 * <p>Weights go to workers in the same JVM as the tensors themselves (no copy); workers on other nodes get an
 * announcement and pull numbered chunks of at most {@code weight-chunk-bytes}.
 */
public final class LearnerActor extends AbstractBehavior<LearnerActor.Command> {

  public static final org.apache.pekko.actor.typed.receptionist.ServiceKey<Command> KEY =
      org.apache.pekko.actor.typed.receptionist.ServiceKey.create(Command.class, "nucleon-learner");

  public sealed interface Command {}

  /** Training ended before total-steps (the dataset ran out): publish the weights and save the last checkpoint. */
  public record FinishEarly() implements Command, NucleonMessage {}

  /** One training batch from the replay buffer. */
  public record Train(TrainingBatch batch) implements Command {}

  /** A rollout worker relays the versions it holds from its own weight server on {@code host:port}. */
  public record RelayAt(ActorRef<RolloutWorker.Command> worker, String host, int port)
      implements Command, NucleonMessage {}

  /** A relaying rollout worker now holds (and serves) {@code version}. */
  public record Holds(ActorRef<RolloutWorker.Command> worker, int version) implements Command, NucleonMessage {}

  /** A relayed announcement that did not happen in time: announce the learner's own server instead. */
  private record RelayOverdue(ActorRef<RolloutWorker.Command> worker, int version) implements Command {}

  private record Trained(TrainingBatch batch, StepStats stats, Map<String, HostTensor> weights, Throwable error)
      implements Command {}

  private record WorkersListing(Receptionist.Listing listing) implements Command {}

  private record SnapshotReady(Coordinator.Snapshot snapshot, int version, boolean last, Throwable error)
      implements Command {}

  private record Saved(int version, Path dir, boolean last, Throwable error) implements Command {}

  private record FinalWeights(int version, Map<String, HostTensor> weights, Throwable error) implements Command {}

  private final RunSettings settings;
  private final Learner learner;
  private final ActorRef<ReplayActor.Command> replay;
  private final ActorRef<Coordinator.Command> coordinator;
  private final CheckpointStore checkpoints;
  private final NucleonMetrics metrics;
  private final BusyTracker busy;
  private final ExecutorService thread;
  private final Set<ActorRef<RolloutWorker.Command>> workers = new HashSet<>();
  private Map<String, HostTensor> published;
  private int publishedVersion;
  private WeightServer server;
  /** Relaying workers' servers, the version each holds, and what each remote worker was last told. */
  private final Map<ActorRef<RolloutWorker.Command>, RelayAt> relays = new java.util.HashMap<>();
  private final Map<ActorRef<RolloutWorker.Command>, Integer> holds = new java.util.HashMap<>();
  private final Map<ActorRef<RolloutWorker.Command>, Integer> announced = new java.util.HashMap<>();
  private long samplesSeen;
  private boolean finishing;
  private final LearnerCheckpoint.ModelFolder modelFolder;

  public static Behavior<Command> create(RunSettings settings, Learner learner, ActorRef<ReplayActor.Command> replay,
      ActorRef<Coordinator.Command> coordinator, CheckpointStore checkpoints, NucleonMetrics metrics,
      ExecutorService learnerThread, long samplesSeen, LearnerCheckpoint.ModelFolder modelFolder) {
    return Behaviors.setup(ctx -> new LearnerActor(ctx, settings, learner, replay, coordinator, checkpoints, metrics,
        learnerThread, samplesSeen, modelFolder));
  }

  private LearnerActor(ActorContext<Command> ctx, RunSettings settings, Learner learner,
      ActorRef<ReplayActor.Command> replay, ActorRef<Coordinator.Command> coordinator, CheckpointStore checkpoints,
      NucleonMetrics metrics, ExecutorService learnerThread, long samplesSeen, LearnerCheckpoint.ModelFolder modelFolder) {
    super(ctx);
    this.modelFolder = modelFolder;
    this.settings = settings;
    this.learner = learner;
    this.replay = replay;
    this.coordinator = coordinator;
    this.checkpoints = checkpoints;
    this.metrics = metrics;
    this.busy = metrics.busyTracker(NucleonMetrics.ROLE_LEARNER, "learner");
    this.thread = learnerThread;
    this.samplesSeen = samplesSeen;
    this.publishedVersion = learner.version();
    metrics.policyVersion(learner.version());
    ctx.getSystem().receptionist().tell(Receptionist.subscribe(RolloutWorker.KEY,
        ctx.messageAdapter(Receptionist.Listing.class, WorkersListing::new)));
    if (learner.version() > 0) {
      // resumed: workers start from the base model and must get these weights first
      this.published = onLearnerThread(() -> learner.policy().policyUpdate()).join();
    }
    replay.tell(new ReplayActor.VersionChanged(learner.version()));
    replay.tell(new ReplayActor.LearnerReady(ctx.getSelf()));
    ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
  }

  private <T> CompletableFuture<T> onLearnerThread(java.util.function.Supplier<T> work) {
    return CompletableFuture.supplyAsync(work, thread);
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(Train.class, this::onTrain)
        .onMessage(Trained.class, this::onTrained)
        .onMessage(WorkersListing.class, this::onWorkersListing)
        .onMessage(SnapshotReady.class, this::onSnapshotReady)
        .onMessage(Saved.class, this::onSaved)
        .onMessage(FinishEarly.class, this::onFinishEarly)
        .onMessage(FinalWeights.class, this::onFinalWeights)
        .onMessage(RelayAt.class, this::onRelayAt)
        .onMessage(Holds.class, this::onHolds)
        .onMessage(RelayOverdue.class, this::onRelayOverdue)
        .onSignal(PostStop.class, s -> {
          thread.shutdown();
          if (server != null) {
            server.close();
          }
          return this;
        })
        .build();
  }

  private Behavior<Command> onTrain(Train t) {
    busy.begin();
    int nextVersion = learner.version() + 1;
    boolean publish = nextVersion % settings.learner().publishEverySteps() == 0
        || nextVersion >= settings.run().totalSteps();
    getContext().pipeToSelf(onLearnerThread(() -> {
      StepStats stats = learner.train(t.batch());
      Map<String, HostTensor> weights = publish ? learner.policy().policyUpdate() : null;
      return new Trained(t.batch(), stats, weights, null);
    }), (result, error) -> error != null ? new Trained(t.batch(), null, null, error) : result);
    return this;
  }

  private Behavior<Command> onTrained(Trained t) {
    busy.end();
    if (t.error() != null) {
      // a failing step must not pass silently: stop the actor, the run reports it
      throw new IllegalStateException("learner step failed", t.error());
    }
    StepStats s = t.stats();
    if (s.skipped() && !s.gradSpike()) {
      getContext().getLog().warn("step {}: gradient norm {} is not finite; the update was skipped", s.version(),
          s.gradNorm());
    }
    samplesSeen += t.batch().samples().size();
    metrics.learnerStep(s.seconds(), s.tokens(), s.sequences());
    metrics.learnerFlagged(s.gradSpike(), s.skipped());
    metrics.policyVersion(s.version());
    Map<String, Double> stats = statistics(s, t.batch().stats(),
        settings.rollout().topK() == 0 && settings.rollout().topP() >= 1f);
    metrics.trainingSignals(stats);
    // the coordinator hears of the version before the workers get its weights: a worker that asks for work as soon as
    // they arrive then finds the staleness bound already moved (on one node the messages arrive in this order)
    coordinator.tell(new Coordinator.PolicyUpdated(s.version(), t.batch().promptIds(), stats));
    if (t.weights() != null) {
      publish(s.version(), t.weights());
    }
    replay.tell(new ReplayActor.VersionChanged(s.version()));
    boolean last = s.version() >= settings.run().totalSteps();
    finishing |= last;
    int every = settings.run().checkpointEverySteps();
    if (last || (every > 0 && s.version() % every == 0)) {
      getContext().ask(Coordinator.Snapshot.class, coordinator, Duration.ofMinutes(1),
          Coordinator.SnapshotRequest::new, (snap, error) -> new SnapshotReady(snap, s.version(), last, error));
    } else {
      replay.tell(new ReplayActor.LearnerReady(getContext().getSelf()));
    }
    return this;
  }

  static Map<String, Double> statistics(StepStats s, BatchStats b, boolean untruncated) {
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("loss", s.loss());
    m.put("reward_mean", b.rewardMean());
    m.put("reward_std", b.rewardStd());
    if (b.accuracy() != null) {
      m.put("accuracy", b.accuracy());
    }
    if (b.turnsMean() != null) {
      // multi-turn episodes: turns taken, and how many ended by the environment, the turn or the token limit
      m.put("turns_mean", b.turnsMean());
      b.episodeEnds().forEach((end, count) -> m.put("episodes_ended_" + end, (double) count));
      b.episodeCounters().forEach((name, count) -> m.put("episode_" + name, (double) count));
    }
    m.put("kl", s.kl());
    m.put("clip_fraction", s.clipFraction());
    m.put("entropy", s.entropy());
    m.put("grad_norm", s.gradNorm());
    m.put("grad_norm_max_param", s.maxParamGradNorm());
    m.put("grad_spike", s.gradSpike() ? 1.0 : 0.0);
    if (s.logProbGap().tokens() > 0 && untruncated) {
      // behaviour log-probs against the learner's, on tokens its current weights sampled (see LogProbGap); with
      // top-k / top-p the behaviour log-probs are renormalized, so the gap would measure that, not numerics
      m.put("logprob_gap_mean", s.logProbGap().mean());
      m.put("logprob_gap_max", s.logProbGap().max());
      m.put("token_mult_prob_error", s.logProbGap().multProbError());
      m.put("logprob_gap_tokens", (double) s.logProbGap().tokens());
    }
    if (s.routing().compared() > 0) {
      // mixture of experts: where the learner's routers chose other experts than the rollout for the same token
      m.put("router_disagreement", s.routing().disagreement());
    }
    if (s.routing().loadImbalance() > 0) {
      m.put("expert_load_imbalance", s.routing().loadImbalance());
    }
    if (Double.isFinite(s.routing().auxLoss())) {
      m.put("router_aux_loss", s.routing().auxLoss());
    }
    m.put("ratio_mean", s.ratioMean());
    m.put("ratio_max", s.ratioMax());
    m.put("lr", s.lr());
    m.put("skipped_update", s.skipped() ? 1.0 : 0.0);
    m.put("staleness_max", (double) b.maxStaleness());
    m.put("groups", (double) b.groups());
    m.put("samples", (double) b.samples());
    m.put("completion_tokens", (double) b.completionTokens());
    m.put("truncated_fraction", b.truncatedFraction());
    m.put("failed_rewards", (double) b.failedRewards());
    m.put("learner_step_seconds", s.seconds());
    m.put("learner_tokens_per_s", s.seconds() > 0 ? b.tokens() / s.seconds() : 0);
    return m;
  }

  private void publish(int version, Map<String, HostTensor> weights) {
    long start = System.nanoTime();
    published = weights;
    publishedVersion = version;
    if (server != null) {
      serve();
    }
    long bytes = 0;
    for (ActorRef<RolloutWorker.Command> w : workers) {
      bytes += send(w);
    }
    metrics.weightsPublished((System.nanoTime() - start) / 1e9, bytes);
  }

  /** Sends the published version to one worker; returns the bytes that will cross the network for it. */
  private long send(ActorRef<RolloutWorker.Command> worker) {
    if (published == null) {
      return 0;
    }
    if (worker.path().address().hasLocalScope()) {
      worker.tell(new RolloutWorker.LocalWeights(publishedVersion, published));
      return 0;
    }
    if (server == null) {
      server = WeightServer.start(getContext().getSystem(), settings.cluster().host(),
          settings.learner().weightPort(), settings.learner().weightChunkBytes(),
          settings.learner().weightDeltaEvery(), org.apache.pekko.stream.javadsl.Flow.create());
      serve();
    }
    ActorRef<RolloutWorker.Command> parent = relayParent(worker);
    if (parent == null) {
      return announce(worker, server.host(), server.port(), publishedVersion);
    }
    if (holds.getOrDefault(parent, -1) >= publishedVersion) {
      RelayAt at = relays.get(parent);
      announce(worker, at.host(), at.port(), holds.get(parent));
    } else {
      // announced when the parent holds this version; from the learner if that takes too long
      getContext().scheduleOnce(RELAY_PATIENCE, getContext().getSelf(), new RelayOverdue(worker, publishedVersion));
    }
    return 0;
  }

  /** A relay parent that has not passed a version on within this time is bypassed for it. */
  static final Duration RELAY_PATIENCE = Duration.ofSeconds(30);

  /**
   * Tells a worker that {@code version} can be fetched from {@code host:port} (the learner's server or a relay's),
   * with the learner's own server to fall back on; returns the bytes the learner's server will send.
   */
  private long announce(ActorRef<RolloutWorker.Command> worker, String host, int port, int version) {
    WeightServer.Version v = server.current();
    announced.put(worker, version);
    worker.tell(new RolloutWorker.WeightsAvailable(version, host, port, v.wireBytes(), getContext().getSelf(),
        server.host(), server.port()));
    return host.equals(server.host()) && port == server.port() ? v.wireBytes() : 0;
  }

  /**
   * Where a remote worker fetches from with {@code nucleon.learner.weight-fanout} = F > 0: the remote workers, in
   * address order, form a tree in which the learner serves the first F and every worker the next F after its own
   * turn (worker i takes from worker (i - F) / F). Null: from the learner (no fan-out, one of the first F, or a
   * parent that does not relay).
   */
  private ActorRef<RolloutWorker.Command> relayParent(ActorRef<RolloutWorker.Command> worker) {
    int fanout = settings.learner().weightFanout();
    if (fanout <= 0) {
      return null;
    }
    List<ActorRef<RolloutWorker.Command>> remote = workers.stream()
        .filter(w -> !w.path().address().hasLocalScope())
        .sorted(java.util.Comparator.comparing(w -> w.path().toString()))
        .toList();
    int i = remote.indexOf(worker);
    if (i < fanout) {
      return null;
    }
    ActorRef<RolloutWorker.Command> parent = remote.get((i - fanout) / fanout);
    return relays.containsKey(parent) ? parent : null;
  }

  private Behavior<Command> onRelayAt(RelayAt r) {
    relays.put(r.worker(), r);
    return this;
  }

  private Behavior<Command> onHolds(Holds h) {
    holds.put(h.worker(), h.version());
    RelayAt at = relays.get(h.worker());
    if (server == null || at == null) {
      return this;
    }
    for (ActorRef<RolloutWorker.Command> w : workers) {
      // every child that has not been told of this version yet, even when a newer one is out by now: the relay
      // serves what it holds, and a child should not wait for the newest to reach it
      if (h.worker().equals(relayParent(w)) && announced.getOrDefault(w, -1) < h.version()) {
        announce(w, at.host(), at.port(), h.version());
      }
    }
    return this;
  }

  private Behavior<Command> onRelayOverdue(RelayOverdue o) {
    if (workers.contains(o.worker()) && announced.getOrDefault(o.worker(), -1) < o.version()) {
      getContext().getLog().warn("relay parent of {} did not pass on version {} within {} s; announcing the "
          + "learner's own server", o.worker().path(), o.version(), RELAY_PATIENCE.toSeconds());
      metrics.weightsSent(announce(o.worker(), server.host(), server.port(), publishedVersion));
    }
    return this;
  }

  /** Makes the published version the one the weight server streams (in the wire type the settings name). */
  private void serve() {
    List<TensorSource> tensors = published.values().stream().map(TensorSource::of).toList();
    boolean bf16 = settings.learner().weightDtype() == ai.djl.ndarray.types.DataType.BFLOAT16;
    // receivers are told the most a version can take: a delta's masks can add to the whole version's bytes
    server.publish(new WeightServer.Version(publishedVersion, tensors, bf16, WeightStream.maxWireBytes(tensors, bf16)));
  }

  private Behavior<Command> onFinishEarly(FinishEarly f) {
    if (finishing) {
      return this;
    }
    finishing = true;
    int version = learner.version();
    getContext().pipeToSelf(onLearnerThread(() -> learner.policy().policyUpdate()),
        (weights, error) -> new FinalWeights(version, weights, error));
    return this;
  }

  private Behavior<Command> onFinalWeights(FinalWeights f) {
    if (f.weights() != null && f.version() > publishedVersion) {
      publish(f.version(), f.weights()); // the final evaluation needs a worker holding this version
    }
    getContext().ask(Coordinator.Snapshot.class, coordinator, Duration.ofMinutes(1), Coordinator.SnapshotRequest::new,
        (snap, error) -> new SnapshotReady(snap, f.version(), true, error));
    return this;
  }

  private Behavior<Command> onWorkersListing(WorkersListing l) {
    Set<ActorRef<RolloutWorker.Command>> now = l.listing().getServiceInstances(RolloutWorker.KEY);
    Set<ActorRef<RolloutWorker.Command>> joined = new HashSet<>(now);
    joined.removeAll(workers);
    workers.clear();
    workers.addAll(now);
    // relay addresses stay known (a worker that was unreachable for a while and comes back relays again)
    holds.keySet().retainAll(now);
    announced.keySet().retainAll(now);
    for (ActorRef<RolloutWorker.Command> w : now) {
      // newcomers, and workers whose relay parent left before passing the version on
      if (joined.contains(w) || (published != null && announced.getOrDefault(w, publishedVersion) < publishedVersion
          && !w.path().address().hasLocalScope())) {
        send(w);
      }
    }
    return this;
  }

  private Behavior<Command> onSnapshotReady(SnapshotReady r) {
    if (r.error() != null) {
      getContext().getLog().error("no coordinator state for the checkpoint of version {}; not saved", r.version(),
          r.error());
      afterCheckpoint(r.version(), null, r.last());
      return this;
    }
    long seen = samplesSeen;
    getContext().pipeToSelf(onLearnerThread(() -> {
      try {
        return LearnerCheckpoint.save(checkpoints, learner, seen, Map.of(), r.snapshot().state(), modelFolder);
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }), (dir, error) -> new Saved(r.version(), dir, r.last(), error));
    return this;
  }

  private Behavior<Command> onSaved(Saved s) {
    if (s.error() != null) {
      getContext().getLog().error("checkpoint of version {} failed", s.version(), s.error());
    } else {
      getContext().getLog().info("checkpoint of version {} saved in {}", s.version(), s.dir());
    }
    afterCheckpoint(s.version(), s.error() == null ? s.dir() : null, s.last());
    return this;
  }

  private void afterCheckpoint(int version, Path dir, boolean last) {
    coordinator.tell(new Coordinator.CheckpointSaved(version, dir == null ? "" : dir.toString(), last));
    if (!last) {
      replay.tell(new ReplayActor.LearnerReady(getContext().getSelf()));
    }
  }
}
