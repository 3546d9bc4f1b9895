package dev.nucleon.actors;

import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.BusyTracker;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.actors.serialization.NucleonMessage;
import dev.nucleon.actors.weights.TensorSource;
import dev.nucleon.actors.weights.WeightFetcher;
import dev.nucleon.actors.weights.WeightServer;
import dev.nucleon.actors.weights.WeightStream;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.rollout.RolloutEngine;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * Owns one generation engine on one device. Pulls prompt groups from the coordinator (so a slow worker never
 * hoards work), samples them, and streams each group's trajectories to a reward scorer, which forwards the scored
 * group to the replay buffer. New weights are applied between decode steps of a running batch; tokens carry the
 * version that produced them.
 *
 * <p>With batch slots ({@link RolloutEngine#streams()}) the worker keeps its engine's continuous batch filled: it
 * asks for more groups while fewer than half the slots' worth of its completions (or at most one group) wait for a
 * row, so the batch does not drain between work batches while the coordinator has work, and hands each group on as
 * soon as that group is done. Otherwise it samples one work batch at a time and asks for the next once it is done.
 */
public final class RolloutWorker extends AbstractBehavior<RolloutWorker.Command> {

  public static final ServiceKey<Command> KEY = ServiceKey.create(Command.class, "nucleon-rollout-worker");

  public sealed interface Command {}

  /** New weights from a learner in the same JVM: the tensors themselves, no copy over the network. */
  public record LocalWeights(int version, Map<String, HostTensor> weights) implements Command {}

  /**
   * A learner on another node published a version: the weight server on {@code host:port} (the learner's, or a
   * relaying worker's) streams the newest version it holds to whoever connects, in at most {@code bytes} bytes.
   * {@code learnerHost:learnerPort} is the learner's own server, where a worker turns when a relay fails it.
   */
  public record WeightsAvailable(int version, String host, int port, long bytes, ActorRef<LearnerActor.Command> from,
      String learnerHost, int learnerPort) implements Command, NucleonMessage {

    /** The same announcement pointing at the learner's own server. */
    WeightsAvailable fromLearner() {
      return new WeightsAvailable(version, learnerHost, learnerPort, bytes, from, learnerHost, learnerPort);
    }

    boolean viaRelay() {
      return learnerHost != null && (!host.equals(learnerHost) || port != learnerPort);
    }
  }

  /** A fetch ended: the version that arrived (checked), or why it failed. */
  private record Fetched(WeightsAvailable from, WeightStream.Received received, Throwable error, long startNanos)
      implements Command {}

  /** Time to try the newest announced version again after a failed fetch. */
  private enum RetryFetch implements Command { INSTANCE }


  /**
   * How a worker relays versions to others ({@code nucleon.learner.weight-fanout} > 0): its own weight server on
   * {@code host}, which serves each version this worker has received whole.
   */
  public record Relay(String host, int chunkBytes) {}

  private record Reply(Coordinator.WorkReply reply) implements Command {}

  private record Generated(List<PromptGroup> groups, ActorRef<ReplayActor.Command> replay,
      List<List<Trajectory>> trajectories, Throwable error, long startNanos, long startRowSteps) implements Command {}

  /** One group of a work batch sent to the open continuous batch came back (or failed). */
  private record GroupGenerated(RolloutEngine.GroupRun run, ActorRef<ReplayActor.Command> replay,
      List<Trajectory> trajectories, Throwable error, WorkBatch batch) implements Command {}

  /** None of a streamed group's completions waits for a row any more. */
  private record GroupAdmitted(int completions) implements Command {}

  /** A work batch sent to the open continuous batch: when it started, its groups not yet back, whether one failed. */
  private static final class WorkBatch {
    final long startNanos = System.nanoTime();
    int open;
    boolean failed;

    WorkBatch(int groups) {
      open = groups;
    }
  }

  private record EvalGenerated(Coordinator.Evaluate eval, RolloutEngine.Evaluation result, Throwable error)
      implements Command {}

  private enum AskForWork implements Command {
    INSTANCE
  }

  /** The wait after a failure or a NoWork answer is over: ask for work. */
  private enum AskAgain implements Command {
    INSTANCE
  }

  private record ScorersListing(Receptionist.Listing listing) implements Command {}

  private record ScoreDelivered(RewardScorer.Delivered delivered) implements Command {}

  /** The coordinator did not answer a request for work in time: ask again. */
  private enum ReplyOverdue implements Command {
    INSTANCE
  }

  private static final Duration REPLY_OVERDUE = Duration.ofSeconds(10);

  /** A hand-off not yet delivered, and the scorer that holds it (null: waiting for one). */
  private record Outstanding(RewardScorer.Handoff handoff, ActorRef<RewardScorer.Command> scorer) {}

  /** How long a worker told there is no work waits before it asks again (unless new weights come first). */
  static final Duration RETRY = Duration.ofMillis(20);
  private final Duration noWorkRetry;

  /** A weight stream that sends nothing for this long is given up and fetched again. */
  static final Duration FETCH_IDLE = Duration.ofSeconds(30);

  /** The longest wait before fetching again after failed transfers (1 s after the first, doubling). */
  static final Duration FETCH_RETRY_MOST = Duration.ofSeconds(64);

  private final String name;
  private final RolloutEngine engine;
  private final ActorRef<Coordinator.Command> coordinator;
  /** The reachable reward scorers (receptionist), sent to in turn. */
  private List<ActorRef<RewardScorer.Command>> scorers = List.of();
  private int nextScorer;
  /** Hand-offs by number, held until their scorer says the result went on. */
  private final Map<Long, Outstanding> outstanding = new java.util.LinkedHashMap<>();
  private long nextHandoff;
  /**
   * A request for work is out, or a batch (or an evaluation) is being generated: no second request until it is done.
   * A streaming worker's groups do not count: it asks while its open batch runs.
   */
  private boolean working;
  /** Completions sent to the open continuous batch that wait for a row (streaming). */
  private int queuedCompletions;
  /** Groups sent to the open continuous batch and not back yet (streaming). */
  private int openGroups;
  /** The size of the last group sent (streaming): the worker asks while at most one such group waits for rows. */
  private int lastGroupSize;
  /** An evaluation is being generated. */
  private boolean evaluating;
  /** The generator's row-steps when they were last reported (streaming). */
  private long reportedRowSteps;
  /** A wait before the next request for work runs (after a failure or a NoWork answer): AskAgain ends it. */
  private boolean askWaits;
  /**
   * The wait is a NoWork answer's, not a failure's backoff: new weights end it at once, since the staleness bound
   * that held work back moves with the version the weights come with.
   */
  private boolean waitsForVersion;
  private int failedInRow;
  private final ActorRef<RewardScorer.Delivered> deliveredAdapter;
  private final int groupsPerBatch;
  private final NucleonMetrics metrics;
  private final BusyTracker busy;
  private final TimerScheduler<Command> timers;
  private final ActorRef<Coordinator.WorkReply> replyAdapter;
  /** The arrays of the last fetched version once the model copied them, filled again by the next download. */
  private final Map<String, float[]> spare = new java.util.concurrent.ConcurrentHashMap<>();
  /** The version the spare arrays hold (set once the model copied it) and how many tensors it has. */
  private final java.util.concurrent.atomic.AtomicInteger spareVersion = new java.util.concurrent.atomic.AtomicInteger(-1);
  private int spareCount;
  private WeightsAvailable newest;
  private boolean fetching;
  private int failures;
  private int pendingVersion;
  private final WeightServer relayServer;
  private final java.util.Set<ActorRef<LearnerActor.Command>> learners = new java.util.HashSet<>();

  public static Behavior<Command> create(String name, RolloutEngine engine, ActorRef<Coordinator.Command> coordinator,
      int groupsPerBatch, NucleonMetrics metrics) {
    return create(name, engine, coordinator, groupsPerBatch, metrics, null);
  }

  /** @param relay how this worker relays versions to other workers, or null when it does not */
  public static Behavior<Command> create(String name, RolloutEngine engine, ActorRef<Coordinator.Command> coordinator,
      int groupsPerBatch, NucleonMetrics metrics, Relay relay) {
    return create(name, engine, coordinator, groupsPerBatch, metrics, relay, RETRY);
  }

  /** @param noWorkRetry the wait after a NoWork answer ({@link #RETRY}; tests lengthen it) */
  static Behavior<Command> create(String name, RolloutEngine engine, ActorRef<Coordinator.Command> coordinator,
      int groupsPerBatch, NucleonMetrics metrics, Relay relay, Duration noWorkRetry) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(timers ->
        new RolloutWorker(ctx, timers, name, engine, coordinator, groupsPerBatch, metrics, relay, noWorkRetry)));
  }

  private RolloutWorker(ActorContext<Command> ctx, TimerScheduler<Command> timers, String name, RolloutEngine engine,
      ActorRef<Coordinator.Command> coordinator, int groupsPerBatch, NucleonMetrics metrics, Relay relay,
      Duration noWorkRetry) {
    super(ctx);
    this.noWorkRetry = noWorkRetry;
    this.relayServer = relay == null ? null
        : WeightServer.start(ctx.getSystem(), relay.host(), 0, relay.chunkBytes());
    this.name = name;
    this.engine = engine;
    this.coordinator = coordinator;
    this.groupsPerBatch = groupsPerBatch;
    this.metrics = metrics;
    this.busy = metrics.busyTracker(NucleonMetrics.ROLE_ROLLOUT, name);
    this.timers = timers;
    this.pendingVersion = engine.version();
    this.replyAdapter = ctx.messageAdapter(Coordinator.WorkReply.class, Reply::new);
    this.deliveredAdapter = ctx.messageAdapter(RewardScorer.Delivered.class, ScoreDelivered::new);
    ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
    // work is asked for only while a reward scorer is reachable
    ctx.getSystem().receptionist().tell(Receptionist.subscribe(RewardScorer.KEY,
        ctx.messageAdapter(Receptionist.Listing.class, ScorersListing::new)));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessageEquals(AskForWork.INSTANCE, this::onAskForWork)
        .onMessageEquals(AskAgain.INSTANCE, () -> {
          askWaits = false;
          waitsForVersion = false;
          return onAskForWork();
        })
        .onMessageEquals(ReplyOverdue.INSTANCE, () -> {
          working = false;
          return onAskForWork();
        })
        .onMessage(Reply.class, this::onReply)
        .onMessage(Generated.class, this::onGenerated)
        .onMessage(GroupGenerated.class, this::onGroupGenerated)
        .onMessage(GroupAdmitted.class, a -> {
          queuedCompletions -= a.completions();
          return onAskForWork();
        })
        .onMessage(EvalGenerated.class, this::onEvalGenerated)
        .onMessage(LocalWeights.class, this::onLocalWeights)
        .onMessage(WeightsAvailable.class, this::onWeightsAvailable)
        .onMessage(Fetched.class, this::onFetched)
        .onMessageEquals(RetryFetch.INSTANCE, this::fetchNewest)
        .onMessage(ScorersListing.class, this::onScorersListing)
        .onMessage(ScoreDelivered.class, d -> {
          outstanding.remove(d.delivered().handoff());
          return this;
        })
        .onSignal(PostStop.class, s -> {
          engine.close();
          if (relayServer != null) {
            relayServer.close();
          }
          return this;
        })
        .build();
  }

  /**
   * The reachable scorers changed. What an unreachable or departed scorer holds is sent to another at once (a
   * scorer that was only slow may still deliver its copy; the coordinator admits one result per attempt).
   */
  private Behavior<Command> onScorersListing(ScorersListing l) {
    boolean before = !scorers.isEmpty();
    scorers = l.listing().getServiceInstances(RewardScorer.KEY).stream()
        .sorted(java.util.Comparator.comparing(r -> r.path().toString())).toList();
    java.util.Set<ActorRef<RewardScorer.Command>> live = new java.util.HashSet<>(scorers);
    int lost = 0;
    int waited = 0;
    for (Outstanding o : List.copyOf(outstanding.values())) {
      if (o.scorer() == null || !live.contains(o.scorer())) {
        if (o.scorer() != null) {
          lost++;
        } else {
          waited++;
        }
        send(o.handoff());
      }
    }
    if (lost > 0) {
      getContext().getLog().warn("{} hand-off(s) held by a lost reward scorer sent to {}", lost,
          scorers.isEmpty() ? "the next scorer to appear" : "another scorer");
    }
    if (waited > 0 && !scorers.isEmpty()) {
      getContext().getLog().info("{} hand-off(s) that waited for a reward scorer sent", waited);
    }
    if (!scorers.isEmpty() && !before) {
      getContext().getSelf().tell(AskForWork.INSTANCE);
    }
    return this;
  }

  /** Hands a group (or an evaluation) to the next reachable scorer and holds it until delivered. */
  private void toScorers(java.util.function.LongFunction<RewardScorer.Handoff> make) {
    send(make.apply(nextHandoff++));
  }

  private void send(RewardScorer.Handoff h) {
    ActorRef<RewardScorer.Command> scorer = null;
    if (!scorers.isEmpty()) {
      scorer = scorers.get(Math.floorMod(nextScorer++, scorers.size()));
      scorer.tell(h);
    }
    outstanding.put(h.handoff(), new Outstanding(h, scorer));
  }

  private Behavior<Command> onAskForWork() {
    if (scorers.isEmpty() || working) {
      return this; // asked again when a scorer appears, or once the current work is done
    }
    if (engine.streams() && ((queuedCompletions >= engine.slots() / 2 && queuedCompletions > lastGroupSize)
        || askWaits)) {
      return this; // asked again as completions get rows, or when the timer set after a failure or NoWork fires
    }
    working = true;
    // a reply lost with the coordinator's node must not leave this worker waiting for good
    timers.startSingleTimer(ReplyOverdue.INSTANCE, REPLY_OVERDUE);
    // the version queued last: the generator applies queued weights before it starts the work asked for now
    coordinator.tell(new Coordinator.RequestWork(Coordinator.workerId(getContext().getSystem(),
        getContext().getSelf()), Math.max(engine.version(), pendingVersion), groupsPerBatch, replyAdapter));
    return this;
  }

  private Behavior<Command> onReply(Reply r) {
    timers.cancel(ReplyOverdue.INSTANCE);
    Coordinator.WorkReply reply = r.reply();
    if (reply instanceof Coordinator.Work w) {
      // a prompt the model cannot take (too long, empty, undecodable) is refused alone, not with its whole batch
      List<PromptGroup> ok = new java.util.ArrayList<>();
      List<Long> refused = new java.util.ArrayList<>();
      List<Integer> attempts = new java.util.ArrayList<>();
      List<String> reasons = new java.util.ArrayList<>();
      for (PromptGroup g : w.groups()) {
        String problem = engine.check().problem(g.prompt());
        if (problem == null) {
          ok.add(g);
        } else {
          refused.add(g.promptId());
          attempts.add(g.attempt());
          reasons.add(problem);
        }
      }
      if (!refused.isEmpty()) {
        coordinator.tell(new Coordinator.GroupsRejected(refused, attempts, reasons));
      }
      if (ok.isEmpty()) {
        working = false;
        getContext().getSelf().tell(AskForWork.INSTANCE);
        return this;
      }
      if (engine.streams()) {
        return stream(ok, w.replay());
      }
      long start = System.nanoTime();
      long startRowSteps = engine.rowSteps(); // this worker's generator runs nothing else until the batch is done
      busy.begin();
      getContext().pipeToSelf(started(() -> engine.generate(ok)),
          (result, error) -> new Generated(ok, w.replay(), result, error, start, startRowSteps));
    } else if (reply instanceof Coordinator.Evaluate e) {
      busy.begin();
      evaluating = true;
      // an evaluation's rows are not rollout row-steps: those decoded so far are reported, the ones until the
      // evaluation ends (its own, and the open batch finishing what it took before it) are not
      long rowSteps = engine.rowSteps();
      if (openGroups > 0) {
        metrics.rolloutRowSteps(name, rowSteps - reportedRowSteps);
      }
      reportedRowSteps = rowSteps;
      // labelled with the version that answered: the one held now, or a later one when the open continuous batch
      // takes a while to yield the generator (and applies updates meanwhile)
      getContext().pipeToSelf(started(() -> engine.evaluate(e.prompts())),
          (result, error) -> new EvalGenerated(e, result, error));
    } else {
      working = false;
      // asked again after a while (a streaming worker too: its rows free up whether or not a group comes back)
      if (reply instanceof Coordinator.NoWork n && !n.finished()) {
        askWaits = true;
        waitsForVersion = true;
        timers.startSingleTimer(AskAgain.INSTANCE, noWorkRetry);
      }
    }
    return this;
  }

  /**
   * Sends a work batch's groups to the engine's open continuous batch; each comes back on its own
   * ({@link #onGroupGenerated}), and the worker may ask for more at once.
   */
  private Behavior<Command> stream(List<PromptGroup> groups, ActorRef<ReplayActor.Command> replay) {
    working = false;
    List<RolloutEngine.GroupRun> runs;
    try {
      runs = engine.submit(groups);
    } catch (RuntimeException e) {
      getContext().getLog().error("sampling {} prompt group(s) failed; the coordinator issues them again",
          groups.size(), e);
      coordinator.tell(new Coordinator.GenerationFailed(groups.stream().map(PromptGroup::promptId).toList(),
          groups.stream().map(PromptGroup::attempt).toList(), String.valueOf(e)));
      askAfterFailure();
      return this;
    }
    if (openGroups == 0) {
      busy.begin();
      reportedRowSteps = engine.rowSteps();
    }
    openGroups += runs.size();
    WorkBatch batch = new WorkBatch(runs.size());
    for (RolloutEngine.GroupRun run : runs) {
      int completions = run.group().groupSize();
      queuedCompletions += completions;
      lastGroupSize = completions;
      getContext().pipeToSelf(run.admitted(), (ok, error) -> new GroupAdmitted(completions));
      getContext().pipeToSelf(run.trajectories(), (result, error) -> new GroupGenerated(run, replay, result, error,
          batch));
    }
    return onAskForWork();
  }

  private Behavior<Command> onGroupGenerated(GroupGenerated g) {
    openGroups--;
    g.batch().open--;
    PromptGroup prompt = g.run().group();
    if (g.error() != null) {
      Throwable cause = g.error() instanceof java.util.concurrent.CompletionException && g.error().getCause() != null
          ? g.error().getCause() : g.error();
      getContext().getLog().error("sampling prompt group {} failed; the coordinator issues it again",
          prompt.promptId(), cause);
      coordinator.tell(new Coordinator.GenerationFailed(List.of(prompt.promptId()), List.of(prompt.attempt()),
          String.valueOf(cause)));
      if (!g.batch().failed) {
        g.batch().failed = true; // one failure per work batch: a batch that failed whole backs off once
        askAfterFailure();
      }
    } else {
      failedInRow = 0;
      long tokens = 0;
      for (Trajectory t : g.trajectories()) {
        tokens += t.completionTokens().length;
      }
      toScorers(h -> new RewardScorer.ScoreGroup(h, prompt, g.trajectories(), g.replay(), deliveredAdapter));
      metrics.rolloutTokens(name, tokens);
      metrics.rolloutTrajectories(name, g.trajectories().size());
    }
    long rowSteps = engine.rowSteps();
    metrics.rolloutRowSteps(name, rowSteps - reportedRowSteps);
    reportedRowSteps = rowSteps;
    if (g.batch().open == 0) {
      metrics.rolloutBatchSeconds(name, (System.nanoTime() - g.batch().startNanos) / 1e9);
    }
    if (openGroups == 0 && !evaluating) {
      busy.end();
    }
    return onAskForWork();
  }

  /** The engine's future, or a failed one when the call itself throws (a prompt it cannot encode, say). */
  private static <T> java.util.concurrent.CompletionStage<T> started(
      java.util.function.Supplier<java.util.concurrent.CompletionStage<T>> call) {
    try {
      return call.get();
    } catch (RuntimeException e) {
      return java.util.concurrent.CompletableFuture.failedFuture(e);
    }
  }

  /** After failed batches in a row, wait 1 s, 2 s, ... 30 s before asking for work again (a broken device). */
  private void askAfterFailure() {
    failedInRow++;
    Duration wait = backoff(failedInRow, Duration.ofSeconds(30));
    askWaits = true;
    timers.startSingleTimer(AskAgain.INSTANCE, wait);
  }

  /** 1 s after the first failure in a row, doubling with each further one, at most {@code most}. */
  static Duration backoff(int failuresInRow, Duration most) {
    Duration wait = Duration.ofSeconds(1L << Math.min(20, failuresInRow - 1));
    return wait.compareTo(most) > 0 ? most : wait;
  }

  private Behavior<Command> onGenerated(Generated g) {
    busy.end();
    working = false;
    if (g.error() != null) {
      getContext().getLog().error("sampling {} prompt group(s) failed; the coordinator issues them again",
          g.groups().size(), g.error());
      coordinator.tell(new Coordinator.GenerationFailed(g.groups().stream().map(PromptGroup::promptId).toList(),
          g.groups().stream().map(PromptGroup::attempt).toList(), String.valueOf(g.error())));
      askAfterFailure();
      return this;
    } else {
      failedInRow = 0;
      long tokens = 0;
      int count = 0;
      for (int i = 0; i < g.groups().size(); i++) {
        List<Trajectory> group = g.trajectories().get(i);
        for (Trajectory t : group) {
          tokens += t.completionTokens().length;
          count++;
        }
        PromptGroup prompt = g.groups().get(i);
        toScorers(h -> new RewardScorer.ScoreGroup(h, prompt, group, g.replay(), deliveredAdapter));
      }
      metrics.rolloutTokens(name, tokens);
      metrics.rolloutTrajectories(name, count);
      metrics.rolloutRowSteps(name, engine.rowSteps() - g.startRowSteps());
      metrics.rolloutBatchSeconds(name, (System.nanoTime() - g.startNanos()) / 1e9);
    }
    getContext().getSelf().tell(AskForWork.INSTANCE);
    return this;
  }

  private Behavior<Command> onEvalGenerated(EvalGenerated e) {
    evaluating = false;
    reportedRowSteps = engine.rowSteps();
    if (openGroups == 0) {
      busy.end();
    }
    working = false;
    if (e.error() != null) {
      getContext().getLog().error("evaluation {} failed; the coordinator skips it", e.eval().evalId(), e.error());
      e.eval().replyTo().tell(new Coordinator.EvalFailed(e.eval().evalId(), String.valueOf(e.error())));
    } else {
      toScorers(h -> new RewardScorer.ScoreEval(h, e.eval().evalId(), e.result().version(), e.eval().prompts(),
          e.result().completions(), e.eval().samples(), e.eval().replyTo(), deliveredAdapter));
    }
    getContext().getSelf().tell(AskForWork.INSTANCE);
    return this;
  }

  private Behavior<Command> onLocalWeights(LocalWeights w) {
    if (w.version() > pendingVersion) {
      pendingVersion = w.version();
      engine.updateWeights(w.version(), w.weights());
      return askOnNewVersion();
    }
    return this;
  }

  /**
   * After new weights: a worker that was told there is no work asks again now rather than when its retry timer
   * fires (up to RETRY plus the scheduler's tick later; with short steps that wait was a third of the asynchronous
   * quickstart's step, the learner idle for the batch it held back).
   */
  private Behavior<Command> askOnNewVersion() {
    if (!waitsForVersion) {
      return this;
    }
    timers.cancel(AskAgain.INSTANCE);
    askWaits = false;
    waitsForVersion = false;
    return onAskForWork();
  }

  private Behavior<Command> onWeightsAvailable(WeightsAvailable w) {
    if (relayServer != null && w.from() != null && learners.add(w.from())) {
      // a relaying worker tells each learner, the first time it hears from it, where it relays from
      w.from().tell(new LearnerActor.RelayAt(getContext().getSelf(), relayServer.host(), relayServer.port()));
      if (relayServer.current() != null) {
        w.from().tell(new LearnerActor.Holds(getContext().getSelf(), relayServer.current().version()));
      }
    }
    // another learner (its own server elsewhere), not merely another relay of the same one
    boolean otherLearner = newest != null && (!java.util.Objects.equals(w.learnerHost(), newest.learnerHost())
        || w.learnerPort() != newest.learnerPort());
    if (w.version() > pendingVersion && (newest == null || otherLearner || w.version() > newest.version())) {
      newest = w; // the newest version, or the first word of a learner that restarted elsewhere
      failures = 0;
    }
    return fetching ? this : fetchNewest(); // one transfer at a time; a worker that is behind takes the newest
  }

  /** Starts pulling the newest announced version, unless this worker already holds it. */
  private Behavior<Command> fetchNewest() {
    if (fetching || newest == null || newest.version() <= pendingVersion) {
      return this;
    }
    fetching = true;
    WeightsAvailable from = newest;
    long start = System.nanoTime();
    WeightStream.Collect sink = new WeightStream.Collect(spare);
    // the spare arrays hold the last version whole once the model copied it: deltas against it can be applied
    int base = relayServer == null && spare.size() == spareCount && spareCount > 0 ? spareVersion.get() : -1;
    getContext().pipeToSelf(WeightFetcher.fetch(getContext().getSystem(), from.host(), from.port(), sink,
        from.bytes(), FETCH_IDLE, base).thenApply(d -> new WeightStream.Received(d.version(), d.bf16(), sink.tensors(),
            d.bytes())), (received, error) -> new Fetched(from, received, error, start));
    return this;
  }

  private Behavior<Command> onFetched(Fetched f) {
    fetching = false;
    double seconds = (System.nanoTime() - f.startNanos()) / 1e9;
    if (f.error() != null) {
      Throwable cause = f.error() instanceof java.util.concurrent.CompletionException && f.error().getCause() != null
          ? f.error().getCause() : f.error();
      failures++;
      metrics.weightsFetchFailed(name);
      if (f.from().viaRelay() && newest == f.from()) {
        newest = newest.fromLearner(); // a relay that cannot serve is skipped: the learner's server has it too
      }
      // 1 s, 2 s, 4 s, ... up to a minute: a learner that is gone is not hammered with reconnects
      Duration wait = backoff(failures, FETCH_RETRY_MOST);
      getContext().getLog().warn("policy version {} from {}:{} failed after {} s ({}); fetching the newest version "
          + "again in {} s (failure {})", f.from().version(), f.from().host(), f.from().port(),
          String.format("%.1f", seconds), cause.toString(), wait.toSeconds(), failures);
      timers.startSingleTimer(RetryFetch.INSTANCE, RetryFetch.INSTANCE, wait);
      return this;
    }
    failures = 0;
    WeightStream.Received r = f.received();
    if (r.version() < f.from().version() && newest == f.from()) {
      // the server holds an older version than it announced (a learner restarted from an older checkpoint on the
      // same port): the announcement is void; wait for the next one instead of fetching again and again
      newest = null;
    }
    // a relaying worker serves the arrays it received, so it does not refill them
    Runnable recycle = relayServer != null ? null : () -> {
      r.tensors().values().forEach(t -> spare.put(t.name(), t.data()));
      spareVersion.set(r.version());
    };
    spareCount = r.tensors().size();
    if (r.version() <= pendingVersion) {
      if (recycle != null) {
        recycle.run(); // arrived too late to be used
      }
    } else {
      pendingVersion = r.version();
      engine.updateWeights(r.version(), r.tensors(), recycle);
      askOnNewVersion();
      if (relayServer != null) {
        List<TensorSource> tensors = r.tensors().values().stream().map(TensorSource::of).toList();
        relayServer.publish(new WeightServer.Version(r.version(), tensors, r.bf16(),
            WeightStream.maxWireBytes(tensors, r.bf16())));
        learners.forEach(l -> l.tell(new LearnerActor.Holds(getContext().getSelf(), r.version())));
      }
      metrics.weightsFetched(name, seconds, r.bytes());
      double mb = r.bytes() / 1e6;
      getContext().getLog().info("policy version {}: {} MB ({}) streamed in {} s ({} MB/s)", r.version(),
          String.format("%.1f", mb), r.bf16() ? "bf16" : "f32", String.format("%.3f", seconds),
          String.format("%.0f", mb / seconds));
    }
    return fetchNewest(); // a newer version may have been announced meanwhile
  }
}
