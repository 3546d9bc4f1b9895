package dev.nucleon.actors.coordinator;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.nucleon.actors.LearnerActor;
import dev.nucleon.actors.ReplayActor;
import dev.nucleon.actors.RolloutWorker;
import dev.nucleon.actors.RunReporter;
import dev.nucleon.actors.RunSettings;
import dev.nucleon.actors.monitor.ClusterStatus;
import dev.nucleon.actors.monitor.NodeSnapshot;
import dev.nucleon.actors.serialization.NucleonMessage;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.rollout.PromptCheck;
import dev.nucleon.rollout.data.DatasetRow;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * The run's coordinator (a cluster singleton): owns the dataset cursor, knows where every prompt is (by id),
 * admits new prompt groups under the staleness bound, schedules evaluation and ends the run.
 *
 * <p>Rollout workers pull work ({@link RequestWork}); a worker whose weights are older than
 * {@code version - max-staleness} gets none until it has newer ones. The replay buffer asks before a scored group
 * enters ({@link GroupReady}); only the current attempt of an in-flight prompt is admitted, so when a worker is lost
 * and its prompts are re-issued, a late result is refused and nothing is trained twice.
 */
public final class Coordinator extends AbstractBehavior<Coordinator.Command> {

  public sealed interface Command {}

  /** A worker asks for up to {@code maxGroups} prompt groups; it holds weights of {@code version}. */
  public record RequestWork(String worker, int version, int maxGroups, ActorRef<WorkReply> replyTo)
      implements Command, NucleonMessage {}

  /** The answer to {@link RequestWork}. */
  public sealed interface WorkReply extends NucleonMessage {}

  /** Prompt groups to sample; scored groups go to {@code replay}. */
  public record Work(List<PromptGroup> groups, ActorRef<ReplayActor.Command> replay) implements WorkReply {}

  /** Nothing to do now (ask again later), or the run is over. */
  public record NoWork(boolean finished) implements WorkReply {}

  /** Evaluate greedily on held-out prompts (groups of size 1) and have the scores sent to the coordinator. */
  public record Evaluate(long evalId, List<PromptGroup> prompts, int samples, ActorRef<Command> replyTo)
      implements WorkReply {}

  /** The replay buffer asks whether a scored group may enter. */
  public record GroupReady(long promptId, int attempt, ActorRef<Admission> replyTo) implements Command, NucleonMessage {}

  /** Yes or no to {@link GroupReady}. */
  public record Admission(long promptId, int attempt, boolean admitted) implements NucleonMessage {}

  /**
   * The replay buffer filtered groups out: for good ({@code dropped}, each with its reason in {@code reasons}) or as
   * too stale (generated again).
   */
  public record GroupsFiltered(List<Long> dropped, List<String> reasons, List<Long> stale)
      implements Command, NucleonMessage {}

  /**
   * A worker refused to sample these attempts of prompts ({@code reasons}: {@link dev.nucleon.rollout.PromptCheck});
   * they are dropped for good.
   */
  public record GroupsRejected(List<Long> promptIds, List<Integer> attempts, List<String> reasons)
      implements Command, NucleonMessage {}

  /** The evaluation {@code evalId} could not be generated ({@code error}): it is skipped, not retried. */
  public record EvalFailed(long evalId, String error) implements Command, NucleonMessage {}

  /** Sampling these attempts failed ({@code error}); they are issued again, or dropped after repeated failures. */
  public record GenerationFailed(List<Long> promptIds, List<Integer> attempts, String error)
      implements Command, NucleonMessage {}

  /** The learner made {@code version} from the groups of {@code consumed}; {@code stats} for the run report. */
  public record PolicyUpdated(int version, List<Long> consumed, Map<String, Double> stats)
      implements Command, NucleonMessage {}

  /** Scores of an evaluation, in prompt order, for the policy version that generated them. */
  public record EvalScored(long evalId, int version, List<RewardResult> results,
      List<RunReporter.EvalSample> samples) implements Command, NucleonMessage {}

  /** The learner saved a checkpoint ({@code dir} empty when saving failed); {@code last} after the final step. */
  public record CheckpointSaved(int version, String dir, boolean last) implements Command, NucleonMessage {}

  /** The learner asks for the coordinator's state to store in a checkpoint. */
  public record SnapshotRequest(ActorRef<Snapshot> replyTo) implements Command, NucleonMessage {}

  /** The coordinator's resumable state (dataset cursor, accounting), opaque to the learner. */
  public record Snapshot(byte[] state) implements NucleonMessage {}

  /** A node's latest figures, pushed every few seconds for the cluster-wide status. */
  public record NodeReport(NodeSnapshot snapshot) implements Command, NucleonMessage {}

  /** The cluster-wide status (dashboard, {@code nucleon status}). */
  public record StatusRequest(ActorRef<ClusterStatus> replyTo) implements Command {}

  private record Listing(Receptionist.Listing listing) implements Command {}

  private record WorkerStopped(String worker) implements Command {}

  private enum Tick implements Command {
    INSTANCE
  }

  private static final ObjectMapper JSON = new ObjectMapper();

  /** A prompt whose sampling failed this many times is dropped instead of issued again. */
  static final int MAX_GENERATION_FAILURES = 3;

  /** Tells the reporter why the coordinator failed (the run then ends with that error instead of hanging). */
  static final class FailureReport extends org.apache.pekko.actor.typed.BehaviorInterceptor<Command, Command> {
    private final ActorRef<RunReporter.Command> reporter;

    FailureReport(ActorRef<RunReporter.Command> reporter) {
      super(Command.class);
      this.reporter = reporter;
    }

    @Override
    public Behavior<Command> aroundReceive(org.apache.pekko.actor.typed.TypedActorContext<Command> ctx, Command msg,
        ReceiveTarget<Command> target) {
      try {
        return target.apply(ctx, msg);
      } catch (RuntimeException e) {
        reporter.tell(new RunReporter.Failed("coordinator: " + e));
        throw e;
      }
    }
  }

  private final RunSettings settings;
  private final PromptSource source;
  private final PromptCheck check;
  private final ActorRef<RunReporter.Command> reporter;
  private final PromptLedger ledger;
  private final Map<Long, DatasetRow> inPlay = new HashMap<>();
  private final Set<String> workers = new HashSet<>();
  /** In deterministic mode, the one worker that samples every group. */
  private String deterministicWorker;
  private ActorRef<ReplayActor.Command> replay;
  private ActorRef<LearnerActor.Command> learner;
  private int version;
  private boolean trainingDone;
  private boolean finished;
  private boolean evalPending;
  private boolean flushAsked;
  private boolean finalCheckpointPending;
  private String lastCheckpoint = "";
  private final Map<String, NodeSnapshot> nodes = new java.util.TreeMap<>();
  private final long startNanos = System.nanoTime();
  private int evalTarget = -1;
  private long evalId;
  private String evalWorker;
  private long evalIssuedNanos;
  private int finalEvalVersion = -1;
  /** The version the last evaluation answered with (-1: none): a final version answered already is not redone. */
  private int lastEvaluated = -1;
  private long nextEvalId = 1;

  /**
   * @param snapshot the state of a checkpoint to resume from, or null for a fresh run
   * @param startVersion the policy version of the resumed weights (0 for a fresh run)
   */
  public static Behavior<Command> create(RunSettings settings, PromptSource source,
      ActorRef<RunReporter.Command> reporter, byte[] snapshot, int startVersion) {
    return create(settings, source, null, reporter, snapshot, startVersion);
  }

  /** As above; {@code check} (or null) drops prompts that cannot be sampled as they are read. */
  public static Behavior<Command> create(RunSettings settings, PromptSource source, PromptCheck check,
      ActorRef<RunReporter.Command> reporter, byte[] snapshot, int startVersion) {
    Behavior<Command> coordinator = Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
      timers.startTimerWithFixedDelay(Tick.INSTANCE, Duration.ofSeconds(5));
      return new Coordinator(ctx, settings, source, check, reporter, snapshot, startVersion);
    }));
    return Behaviors.intercept(() -> new FailureReport(reporter), coordinator);
  }

  private Coordinator(ActorContext<Command> ctx, RunSettings settings, PromptSource source, PromptCheck check,
      ActorRef<RunReporter.Command> reporter, byte[] snapshot, int startVersion) {
    super(ctx);
    this.settings = settings;
    this.source = source;
    this.check = check;
    this.reporter = reporter;
    this.ledger = new PromptLedger(settings.replay().batchGroups(), settings.replay().maxStaleness(),
        settings.replay().batchByTokens());
    this.version = startVersion;
    if (snapshot != null) {
      restore(snapshot);
    }
    if (settings.run().evalSize() > 0 && !source.evalRows().isEmpty()) {
      evalTarget = version;
    }
    // one adapter per message class: both subscriptions share it and are told apart by their key
    ActorRef<Receptionist.Listing> listings = ctx.messageAdapter(Receptionist.Listing.class, Listing::new);
    ctx.getSystem().receptionist().tell(Receptionist.subscribe(RolloutWorker.KEY, listings));
    ctx.getSystem().receptionist().tell(Receptionist.subscribe(ReplayActor.KEY, listings));
    ctx.getSystem().receptionist().tell(Receptionist.subscribe(LearnerActor.KEY, listings));
    ctx.getLog().info("coordinator started at policy version {} ({} prompts to redo)", version, inPlay.size());
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(RequestWork.class, this::onRequestWork)
        .onMessage(GroupReady.class, this::onGroupReady)
        .onMessage(GroupsFiltered.class, this::onGroupsFiltered)
        .onMessage(GroupsRejected.class, this::onGroupsRejected)
        .onMessage(GenerationFailed.class, this::onGenerationFailed)
        .onMessage(EvalFailed.class, this::onEvalFailed)
        .onMessage(PolicyUpdated.class, this::onPolicyUpdated)
        .onMessage(EvalScored.class, this::onEvalScored)
        .onMessage(SnapshotRequest.class, this::onSnapshotRequest)
        .onMessage(CheckpointSaved.class, this::onCheckpointSaved)
        .onMessage(NodeReport.class, this::onNodeReport)
        .onMessage(StatusRequest.class, this::onStatusRequest)
        .onMessage(Listing.class, this::onListing)
        .onMessage(WorkerStopped.class, this::onWorkerStopped)
        .onMessageEquals(Tick.INSTANCE, this::onTick)
        .build();
  }

  private Behavior<Command> onRequestWork(RequestWork r) {
    if (settings.run().deterministic()) {
      if (deterministicWorker == null) {
        deterministicWorker = r.worker();
      } else if (!deterministicWorker.equals(r.worker())) {
        throw new IllegalStateException("nucleon.run.deterministic = true allows one rollout worker in the whole "
            + "cluster, but " + r.worker() + " asked for work while " + deterministicWorker + " is the run's worker");
      }
    }
    if (finished) {
      r.replyTo().tell(new NoWork(true));
      return this;
    }
    if (evalTarget >= 0 && evalWorker == null && r.version() >= evalTarget) {
      evalId = nextEvalId++;
      evalWorker = r.worker();
      evalIssuedNanos = System.nanoTime();
      List<PromptGroup> prompts = new ArrayList<>();
      List<DatasetRow> rows = source.evalRows();
      int skipped = 0;
      for (int i = 0; i < Math.min(settings.run().evalSize(), rows.size()); i++) {
        DatasetRow row = rows.get(i);
        if (check != null && check.problem(row.prompt()) != null) {
          skipped++; // a held-out prompt the model cannot take would fail the whole evaluation
          continue;
        }
        prompts.add(new PromptGroup(row.id(), 0, row.prompt(), row.groundTruth(), row.metadata(), 1, 0));
      }
      if (skipped > 0) {
        getContext().getLog().warn("{} held-out prompt(s) left out of the evaluation: they cannot be sampled (empty, "
            + "undecodable or too long for the model)", skipped);
      }
      getContext().getLog().info("evaluating policy version {} on {} held-out prompts", r.version(), prompts.size());
      r.replyTo().tell(new Evaluate(evalId, prompts, settings.run().evalSamples(), getContext().getSelf()));
      return this;
    }
    if (trainingDone || replay == null || r.version() < version - settings.replay().maxStaleness()) {
      r.replyTo().tell(new NoWork(false));
      return this;
    }
    List<PromptGroup> groups = new ArrayList<>();
    long now = System.nanoTime();
    while (groups.size() < r.maxGroups() && ledger.mayStart(version)) {
      Optional<Long> again = ledger.nextRequeued();
      DatasetRow row;
      boolean alone = false;
      if (again.isPresent()) {
        // a prompt whose batch failed goes alone, so that a bad prompt fails by itself
        alone = ledger.entry(again.get()).map(PromptLedger.Entry::suspect).orElse(false);
        if (alone && !groups.isEmpty()) {
          break;
        }
        row = inPlay.get(again.get());
      } else {
        Optional<DatasetRow> next = source.next();
        if (next.isEmpty()) {
          break;
        }
        row = next.get();
        String problem = check == null ? null : check.problem(row.prompt());
        if (problem != null) {
          ledger.droppedAtRead(problem, 1);
          getContext().getLog().warn("prompt {} dropped as it was read: {}: {}", row.id(), check.describe(row.prompt()),
              abbreviated(row.prompt()));
          continue;
        }
        inPlay.put(row.id(), row);
      }
      int attempt = ledger.issue(row.id(), r.worker(), now);
      groups.add(new PromptGroup(row.id(), attempt, row.prompt(), row.groundTruth(), row.metadata(),
          settings.replay().groupSize(), groupSeed(row.id(), attempt, source.epoch())));
      if (alone) {
        break;
      }
    }
    boolean drained = groups.isEmpty() && ledger.running() == 0 && ledger.nextRequeued().isEmpty()
        && !source.hasNext();
    if (drained && settings.replay().batchByTokens() && ledger.count(PromptLedger.State.SCORED) > 0) {
      // by tokens the coordinator cannot tell whether what is queued fills a batch: the buffer trains what it has
      if (!flushAsked && replay != null) {
        flushAsked = true;
        replay.tell(new ReplayActor.Flush());
      }
    } else if (drained && ledger.count(PromptLedger.State.SCORED) < settings.replay().batchGroups()) {
      // groups still scored but short of a full batch are not trained (counted as unconsumed in the status)
      getContext().getLog().info("dataset exhausted after policy version {} ({} scored group(s) short of a batch)",
          version, ledger.count(PromptLedger.State.SCORED));
      endTraining();
    }
    r.replyTo().tell(groups.isEmpty() ? new NoWork(false) : new Work(groups, replay));
    return this;
  }

  private long groupSeed(long promptId, int attempt, int epoch) {
    long z = settings.run().seed() * 0x9E3779B97F4A7C15L + promptId * 0xBF58476D1CE4E5B9L + attempt * 31L + epoch;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    return z ^ (z >>> 31);
  }

  private Behavior<Command> onGroupReady(GroupReady r) {
    boolean admitted = ledger.admit(r.promptId(), r.attempt());
    if (!admitted) {
      getContext().getLog().debug("refused group {} attempt {}", r.promptId(), r.attempt());
    }
    r.replyTo().tell(new Admission(r.promptId(), r.attempt(), admitted));
    return this;
  }

  private Behavior<Command> onGroupsFiltered(GroupsFiltered f) {
    for (int i = 0; i < f.dropped().size(); i++) {
      ledger.dropped(List.of(f.dropped().get(i)), f.reasons().get(i));
      inPlay.remove(f.dropped().get(i));
    }
    ledger.stale(f.stale());
    return this;
  }

  private Behavior<Command> onGroupsRejected(GroupsRejected r) {
    for (int i = 0; i < r.promptIds().size(); i++) {
      long id = r.promptIds().get(i);
      if (ledger.rejected(id, r.attempts().get(i), r.reasons().get(i))) {
        DatasetRow row = inPlay.remove(id);
        getContext().getLog().warn("prompt {} dropped, a rollout worker cannot sample it ({}): {}", id,
            r.reasons().get(i), row == null ? "" : abbreviated(row.prompt()));
      }
    }
    return this;
  }

  private Behavior<Command> onGenerationFailed(GenerationFailed f) {
    int dropped = 0;
    for (int i = 0; i < f.promptIds().size(); i++) {
      long id = f.promptIds().get(i);
      if (ledger.failed(id, f.attempts().get(i), f.promptIds().size() == 1, MAX_GENERATION_FAILURES)) {
        inPlay.remove(id);
        dropped++;
      }
    }
    getContext().getLog().warn("sampling {} prompt group(s) failed ({}); {} issued again (each alone), {} dropped "
        + "after failing alone {} times", f.promptIds().size(), f.error(), f.promptIds().size() - dropped, dropped,
        MAX_GENERATION_FAILURES);
    return this;
  }

  private static String abbreviated(String prompt) {
    String p = prompt.replace('\n', ' ');
    return p.length() <= 80 ? "'" + p + "'" : "'" + p.substring(0, 77) + "...' (" + p.length() + " chars)";
  }

  private Behavior<Command> onPolicyUpdated(PolicyUpdated u) {
    ledger.consumed(u.consumed());
    u.consumed().forEach(inPlay::remove);
    version = u.version();
    Map<String, Double> stats = new HashMap<>(u.stats());
    stats.put("prompts_consumed", (double) ledger.consumed());
    stats.put("prompts_in_flight", (double) ledger.running());
    stats.put("epoch", (double) source.epoch());
    reporter.tell(new RunReporter.StepDone(version, u.consumed(), stats));
    int every = settings.run().evalEverySteps();
    if (version >= settings.run().totalSteps()) {
      endTraining();
    } else if (every > 0 && version % every == 0 && evalTarget < 0) {
      evalTarget = version;
    }
    return this;
  }

  private void endTraining() {
    if (!trainingDone) {
      trainingDone = true;
      // the learner saves after its last step; when the data ran out first, it is asked to finish now
      finalCheckpointPending = true;
      if (version < settings.run().totalSteps()) {
        if (learner != null) {
          learner.tell(new LearnerActor.FinishEarly());
        } else {
          finalCheckpointPending = false;
        }
      }
      // an evaluation may have answered with the final weights already (labelled with the version that answered,
      // which can be ahead of the steps this coordinator has seen)
      if (settings.run().evalSize() > 0 && !source.evalRows().isEmpty() && lastEvaluated < version) {
        evalTarget = version;
        finalEvalVersion = version;
        evalPending = true;
      }
      maybeFinish();
    }
  }

  private Behavior<Command> onCheckpointSaved(CheckpointSaved c) {
    if (!c.dir().isEmpty()) {
      lastCheckpoint = c.dir();
    }
    if (c.last()) {
      finalCheckpointPending = false;
      maybeFinish();
    }
    return this;
  }

  private void maybeFinish() {
    if (trainingDone && !evalPending && !finalCheckpointPending) {
      finish();
    }
  }

  private Behavior<Command> onEvalFailed(EvalFailed f) {
    if (f.evalId() != evalId) {
      return this;
    }
    getContext().getLog().error("evaluation {} failed and is skipped: {}", f.evalId(), f.error());
    evalDone(-1);
    return this;
  }

  private Behavior<Command> onEvalScored(EvalScored e) {
    if (e.evalId() != evalId) {
      return this; // an evaluation already handled (a copy delivered twice) or replaced
    }
    double correct = 0;
    double rewardSum = 0;
    int ok = 0;
    for (RewardResult r : e.results()) {
      if (r.isOk()) {
        ok++;
        rewardSum += r.reward();
        correct += r.components().getOrDefault("correct", r.reward() > 0 ? 1.0 : 0.0);
      }
    }
    int n = e.results().size();
    double accuracy = n == 0 ? 0 : correct / n;
    reporter.tell(new RunReporter.EvalDone(e.version(), accuracy, ok == 0 ? 0 : rewardSum / ok, n, n - ok,
        e.samples()));
    evalDone(e.version());
    return this;
  }

  /** The current evaluation ended (of {@code evaluated}; a failed one is given the final version: not retried). */
  private void evalDone(int evaluated) {
    lastEvaluated = Math.max(lastEvaluated, evaluated);
    evalId = -1; // a copy of its result delivered twice is ignored
    evalWorker = null;
    evalTarget = -1;
    if (trainingDone) {
      if (evaluated < 0 || evaluated >= finalEvalVersion) {
        evalPending = false;
        maybeFinish();
      } else {
        evalTarget = finalEvalVersion; // a periodic evaluation ended after training: evaluate the final policy too
      }
    }
  }

  private void finish() {
    if (!finished) {
      finished = true;
      reporter.tell(new RunReporter.Finished(version, ledger.consumed(), lastCheckpoint,
          accountingMap(ledger.accounting(), ledger.size())));
    }
  }

  /**
   * The accounting as flat keys: {@code read}, {@code trained}, {@code unfinished}, {@code dropped.REASON},
   * {@code reissued.REASON}.
   */
  static Map<String, Long> accountingMap(PromptLedger.Accounting a, long live) {
    Map<String, Long> m = new java.util.LinkedHashMap<>();
    m.put("read", a.read());
    m.put("trained", a.trained());
    // counted from the ledger's live entries, not derived from the totals: the totals must add up to it
    m.put("unfinished", live);
    a.dropped().forEach((k, v) -> m.put("dropped." + k, v));
    a.reissued().forEach((k, v) -> m.put("reissued." + k, v));
    return m;
  }

  private Behavior<Command> onNodeReport(NodeReport r) {
    nodes.put(r.snapshot().node(), r.snapshot());
    return this;
  }

  private Behavior<Command> onStatusRequest(StatusRequest r) {
    Map<String, Long> prompts = new java.util.LinkedHashMap<>();
    for (PromptLedger.State st : PromptLedger.State.values()) {
      prompts.put(st.name().toLowerCase(java.util.Locale.ROOT), ledger.count(st));
    }
    PromptLedger.Accounting a = ledger.accounting();
    prompts.put("read", a.read());
    a.dropped().forEach((k, v) -> prompts.put("dropped_" + k, v));
    a.reissued().forEach((k, v) -> prompts.put("reissued_" + k, v));
    prompts.put("consumed_total", ledger.consumed());
    prompts.put("epoch", (long) source.epoch());
    String state = finished ? "finished" : trainingDone ? "evaluating" : "training";
    r.replyTo().tell(new ClusterStatus(System.currentTimeMillis(), state, settings.run().name(), "",
        version, settings.run().totalSteps(), version, (System.nanoTime() - startNanos) / 1e9,
        ClusterStatus.members(org.apache.pekko.cluster.Cluster.get(
            org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(getContext().getSystem())).state()),
        prompts, List.copyOf(nodes.values())));
    return this;
  }

  private Behavior<Command> onSnapshotRequest(SnapshotRequest r) {
    r.replyTo().tell(new Snapshot(snapshot()));
    return this;
  }

  private Behavior<Command> onListing(Listing l) {
    if (l.listing().isForKey(LearnerActor.KEY)) {
      Set<ActorRef<LearnerActor.Command>> refs =
          l.listing().getServiceInstances(LearnerActor.KEY);
      learner = refs.isEmpty() ? null : refs.iterator().next();
      return this;
    }
    if (l.listing().isForKey(ReplayActor.KEY)) {
      Set<ActorRef<ReplayActor.Command>> refs = l.listing().getServiceInstances(ReplayActor.KEY);
      replay = refs.isEmpty() ? null : refs.iterator().next();
      return this;
    }
    for (ActorRef<RolloutWorker.Command> w : l.listing().getServiceInstances(RolloutWorker.KEY)) {
      String id = workerId(getContext().getSystem(), w);
      if (workers.add(id)) {
        getContext().watchWith(w, new WorkerStopped(id));
      }
    }
    return this;
  }

  /** A worker's id: its ref with the node's address (the same string on every node). */
  public static String workerId(org.apache.pekko.actor.typed.ActorSystem<?> system, ActorRef<?> worker) {
    return org.apache.pekko.actor.typed.ActorRefResolver.get(system).toSerializationFormat(worker);
  }

  private Behavior<Command> onWorkerStopped(WorkerStopped w) {
    workers.remove(w.worker());
    List<Long> lost = ledger.workerLost(w.worker());
    if (w.worker().equals(evalWorker)) {
      evalWorker = null;
    }
    getContext().getLog().warn("rollout worker {} stopped; {} prompt group(s) go back to pending", w.worker(),
        lost.size());
    return this;
  }

  private Behavior<Command> onTick() {
    getContext().getLog().debug("version {}: pending {}, in flight {}, scored {}, consumed {}, dropped {}; may start {};"
            + " workers {}; replay {}; eval target {} on {}", version, ledger.count(PromptLedger.State.PENDING),
        ledger.running(), ledger.count(PromptLedger.State.SCORED), ledger.consumed(),
        ledger.count(PromptLedger.State.DROPPED), ledger.mayStart(version), workers.size(), replay != null,
        evalTarget, evalWorker);
    long deadline = System.nanoTime() - settings.rollout().groupTimeout().toNanos();
    if (evalWorker != null && evalIssuedNanos < deadline) {
      getContext().getLog().warn("evaluation {} on {} timed out; it is handed out again", evalId, evalWorker);
      evalWorker = null;
    }
    List<Long> expired = ledger.expire(deadline);
    if (!expired.isEmpty()) {
      getContext().getLog().warn("{} prompt group(s) timed out and go back to pending", expired.size());
    }
    return this;
  }

  /** Accounting and cursor as JSON bytes. */
  private byte[] snapshot() {
    Map<String, Object> s = new HashMap<>();
    s.put("version", version);
    PromptLedger.Accounting a = ledger.accounting();
    s.put("consumed", a.trained());
    s.put("read", a.read());
    s.put("dropped", a.dropped());
    s.put("reissued", a.reissued());
    s.put("unfinished", ledger.unfinished());
    s.put("cursor", Base64.getEncoder().encodeToString(source.snapshot()));
    try {
      return JSON.writeValueAsBytes(s);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private void restore(byte[] bytes) {
    try {
      var node = JSON.readTree(bytes);
      List<Long> unfinished = new ArrayList<>();
      node.get("unfinished").forEach(n -> unfinished.add(n.asLong()));
      source.restore(Base64.getDecoder().decode(node.get("cursor").asText()));
      long consumed = node.get("consumed").asLong();
      Map<String, Long> dropped = new java.util.TreeMap<>();
      Map<String, Long> reissued = new java.util.TreeMap<>();
      if (node.has("dropped")) {
        node.get("dropped").fields().forEachRemaining(e -> dropped.put(e.getKey(), e.getValue().asLong()));
        node.get("reissued").fields().forEachRemaining(e -> reissued.put(e.getKey(), e.getValue().asLong()));
      }
      // a checkpoint from before the accounting was kept: what it trained and what it left unfinished was read
      long read = node.has("read") ? node.get("read").asLong()
          : consumed + unfinished.size() + dropped.values().stream().mapToLong(Long::longValue).sum();
      ledger.resume(new PromptLedger.Accounting(read, consumed, dropped, reissued), unfinished);
      for (long id : unfinished) {
        inPlay.put(id, source.byId(id));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("unreadable coordinator state in the checkpoint", e);
    }
  }
}
