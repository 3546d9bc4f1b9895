package dev.nucleon.actors.monitor;

import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.datapoints.GaugeDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.Labels;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;
import java.util.regex.Pattern;

/**
 * The metrics of one node: a Prometheus registry of its own (never the JVM-wide default one) with the constant
 * label {@code node} on every series and {@code role} where a family belongs to one role, plus plain Java methods
 * the actors call. Names follow Prometheus conventions (base units, {@code _total} counters, {@code _seconds}).
 *
 * <p>Every method is thread-safe and cheap (a map lookup and a few atomic adds); the actors call them from their
 * message handlers. {@link #snapshot()} returns this node's figures as a plain record for the cluster view, and
 * {@link #scrapeText()} the Prometheus text exposition that {@link MetricsServer} serves on {@code /metrics}.
 *
 * <p>Families and labels ({@code node} on all of them; a family without labels of its own appears on first use):
 * <pre>
 * nucleon_rollout_tokens_total{role="rollout",actor}        counter
 * nucleon_rollout_trajectories_total{role="rollout",actor}  counter
 * nucleon_rollout_row_steps_total{role="rollout",actor}     counter (tokens over this: slot utilization)
 * nucleon_rollout_batch_seconds{role="rollout",actor}       histogram
 * nucleon_reward_scored_total{role="reward",reward,outcome} counter
 * nucleon_reward_seconds{role="reward",reward}              histogram
 * nucleon_replay_groups{role="learner"}                     gauge
 * nucleon_replay_dropped_total{role="learner",reason}       counter
 * nucleon_trajectory_staleness{role="learner"}              histogram (policy versions behind)
 * nucleon_learner_steps_total{role="learner"}               counter
 * nucleon_learner_step_seconds{role="learner"}              histogram
 * nucleon_learner_tokens_total{role="learner"}              counter
 * nucleon_policy_version{role="learner"}                    gauge
 * nucleon_weights_publish_seconds{role="learner"}           histogram
 * nucleon_weights_bytes_total{role="learner"}               counter
 * nucleon_actor_busy_ratio{role,actor}                      gauge (busy over wall time, sliding window)
 * nucleon_mailbox_depth{role,actor}                         gauge
 * nucleon_train_NAME{role="learner"}                        gauge per training signal (reward_mean, kl, ...)
 * nucleon_node_info{roles}                                  gauge, always 1 (one series per node)
 * </pre>
 */
public final class NucleonMetrics {

  /** Role label of the rollout families. */
  public static final String ROLE_ROLLOUT = "rollout";
  /** Role label of the reward families. */
  public static final String ROLE_REWARD = "reward";
  /** Role label of the learner, replay, staleness, weights and training-signal families. */
  public static final String ROLE_LEARNER = "learner";

  /** Latency buckets (seconds) shared by the {@code _seconds} histograms: 1 ms to 10 min. */
  static final double[] SECONDS_BUCKETS = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  /** Staleness buckets (policy versions behind). */
  static final double[] STALENESS_BUCKETS = {0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64};

  private static final Pattern NOT_NAME = Pattern.compile("[^a-z0-9_]+");
  private static final long DEFAULT_WINDOW_NANOS = TimeUnit.SECONDS.toNanos(30);

  private final String node;
  private final List<String> roles;
  private final LongSupplier clock;
  private final long windowNanos;
  private final long startNanos;
  private final PrometheusRegistry registry = new PrometheusRegistry();
  private final Labels nodeLabels;

  private final Counter rolloutTokens;
  private final Counter rolloutTrajectories;
  private final Counter rolloutRowSteps;
  private final Histogram rolloutBatchSeconds;
  private final Histogram weightsFetchSeconds;
  private final Counter weightsFetchedBytes;
  private final Counter weightsFetchFailures;
  private final Counter rewardScored;
  private final Histogram rewardSeconds;
  private final Lazy<Gauge> replayGroups;
  private final Counter replayDropped;
  private final Lazy<Histogram> staleness;
  private final Lazy<Counter> learnerSteps;
  private final Lazy<Counter> learnerFlaggedSteps;
  private final Lazy<Histogram> learnerStepSeconds;
  private final Lazy<Counter> learnerTokens;
  private final Lazy<Gauge> policyVersion;
  private final Lazy<Histogram> weightsPublishSeconds;
  private final Lazy<Counter> weightsBytes;
  private final Gauge mailboxDepth;

  private final Map<String, RolloutState> rollouts = new ConcurrentHashMap<>();
  private final Map<String, RewardState> rewards = new ConcurrentHashMap<>();
  private final Map<String, BusyTracker> busy = new ConcurrentHashMap<>();
  private final Map<String, Mailbox> mailboxes = new ConcurrentHashMap<>();
  private final Map<String, LongAdder> dropped = new ConcurrentHashMap<>();
  private final Map<Integer, LongAdder> stalenessCounts = new ConcurrentSkipListMap<>();
  private final Map<String, Gauge> signalGauges = new ConcurrentHashMap<>();
  private final Map<String, Double> lastSignals = new ConcurrentHashMap<>();

  private final AtomicInteger replayReady = new AtomicInteger(-1);
  private final AtomicInteger version = new AtomicInteger(-1);
  private final AtomicInteger stalenessMax = new AtomicInteger(-1);
  private final LongAdder stalenessSum = new LongAdder();
  private final LongAdder stalenessN = new LongAdder();
  private final LongAdder steps = new LongAdder();
  private final LongAdder learnedTokens = new LongAdder();
  private final LongAdder learnedSequences = new LongAdder();
  private final DoubleAdder stepSecondsSum = new DoubleAdder();
  private final AtomicLong lastStepSecondsBits = new AtomicLong(Double.doubleToLongBits(0.0));
  private final WindowedSum learnedTokensWindow;
  private final WindowedSum learnedSequencesWindow;
  private final LongAdder publishes = new LongAdder();
  private final LongAdder publishedBytes = new LongAdder();
  private final AtomicLong lastPublishSecondsBits = new AtomicLong(Double.doubleToLongBits(0.0));

  /** Metrics of a node with the given name and roles; rates over a 30 s sliding window. */
  public NucleonMetrics(String node, Collection<String> roles) {
    this(node, roles, System::nanoTime, DEFAULT_WINDOW_NANOS);
  }

  /** As {@link #NucleonMetrics(String, Collection)}, with the clock and the rate window given (tests). */
  public NucleonMetrics(String node, Collection<String> roles, LongSupplier nanoClock, long windowNanos) {
    this.node = Objects.requireNonNull(node, "node");
    this.roles = List.copyOf(roles);
    this.clock = nanoClock;
    this.windowNanos = windowNanos;
    this.startNanos = nanoClock.getAsLong();
    this.nodeLabels = Labels.of("node", node);
    Labels rollout = Labels.of("node", node, "role", ROLE_ROLLOUT);
    Labels reward = Labels.of("node", node, "role", ROLE_REWARD);
    Labels learner = Labels.of("node", node, "role", ROLE_LEARNER);
    this.learnedTokensWindow = new WindowedSum(clock, startNanos, windowNanos, 30);
    this.learnedSequencesWindow = new WindowedSum(clock, startNanos, windowNanos, 30);

    rolloutTokens = Counter.builder().name("nucleon_rollout_tokens_total")
        .help("Tokens generated by rollout workers").constLabels(rollout).labelNames("actor").register(registry);
    rolloutTrajectories = Counter.builder().name("nucleon_rollout_trajectories_total")
        .help("Trajectories (completions) generated by rollout workers").constLabels(rollout).labelNames("actor")
        .register(registry);
    rolloutRowSteps = Counter.builder().name("nucleon_rollout_row_steps_total")
        .help("Batch rows rollout workers decoded a token for, finished and decoded idle rows included (tokens over "
            + "this is the share of decoding that was useful)")
        .constLabels(rollout).labelNames("actor").register(registry);
    rolloutBatchSeconds = Histogram.builder().name("nucleon_rollout_batch_seconds")
        .help("Seconds per generated batch (prompt group batch, all decode steps)").constLabels(rollout)
        .labelNames("actor").classicOnly().classicUpperBounds(SECONDS_BUCKETS).register(registry);
    weightsFetchSeconds = Histogram.builder().name("nucleon_weights_fetch_seconds")
        .help("Seconds a rollout worker took to stream one policy version (connect to checked)")
        .constLabels(rollout).labelNames("actor").classicOnly().classicUpperBounds(SECONDS_BUCKETS).register(registry);
    weightsFetchedBytes = Counter.builder().name("nucleon_weights_fetched_bytes_total")
        .help("Bytes of policy weights a rollout worker streamed").constLabels(rollout).labelNames("actor")
        .register(registry);
    weightsFetchFailures = Counter.builder().name("nucleon_weights_fetch_failures_total")
        .help("Weight transfers that failed (timeout, checksum, connection) and were fetched again")
        .constLabels(rollout).labelNames("actor").register(registry);
    rewardScored = Counter.builder().name("nucleon_reward_scored_total")
        .help("Completions scored, by reward function and outcome").constLabels(reward)
        .labelNames("reward", "outcome").register(registry);
    rewardSeconds = Histogram.builder().name("nucleon_reward_seconds")
        .help("Seconds per reward scoring call").constLabels(reward).labelNames("reward").classicOnly()
        .classicUpperBounds(SECONDS_BUCKETS).register(registry);
    replayGroups = new Lazy<>(() -> Gauge.builder().name("nucleon_replay_groups")
        .help("Complete groups ready in the replay buffer").constLabels(learner).register(registry));
    replayDropped = Counter.builder().name("nucleon_replay_dropped_total")
        .help("Groups or trajectories dropped by the replay buffer, by reason").constLabels(learner)
        .labelNames("reason").register(registry);
    staleness = new Lazy<>(() -> Histogram.builder().name("nucleon_trajectory_staleness")
        .help("Policy versions between a trained trajectory's oldest token and the learner's version")
        .constLabels(learner).classicOnly().classicUpperBounds(STALENESS_BUCKETS).register(registry));
    learnerSteps = new Lazy<>(() -> Counter.builder().name("nucleon_learner_steps_total")
        .help("Learner optimizer steps")
        .constLabels(learner).register(registry));
    learnerFlaggedSteps = new Lazy<>(() -> Counter.builder().name("nucleon_learner_flagged_steps_total")
        .help("Learner steps whose gradient was a spike (kind=grad_spike) or whose update was skipped "
            + "(kind=skipped_update)")
        .constLabels(learner).labelNames("kind").register(registry));
    learnerStepSeconds = new Lazy<>(() -> Histogram.builder().name("nucleon_learner_step_seconds")
        .help("Seconds per learner step (forward, backward, optimizer)").constLabels(learner).classicOnly()
        .classicUpperBounds(SECONDS_BUCKETS).register(registry));
    learnerTokens = new Lazy<>(() -> Counter.builder().name("nucleon_learner_tokens_total")
        .help("Tokens trained on by the learner")
        .constLabels(learner).register(registry));
    policyVersion = new Lazy<>(() -> Gauge.builder().name("nucleon_policy_version")
        .help("Newest published policy version")
        .constLabels(learner).register(registry));
    weightsPublishSeconds = new Lazy<>(() -> Histogram.builder().name("nucleon_weights_publish_seconds")
        .help("Seconds to publish one policy version to the rollout workers").constLabels(learner).classicOnly()
        .classicUpperBounds(SECONDS_BUCKETS).register(registry));
    weightsBytes = new Lazy<>(() -> Counter.builder().name("nucleon_weights_bytes_total")
        .help("Bytes of policy weights published")
        .constLabels(learner).register(registry));
    GaugeWithCallback.builder().name("nucleon_actor_busy_ratio")
        .help("Busy time over wall time of an actor, over a sliding window").constLabels(nodeLabels)
        .labelNames("role", "actor")
        .callback(cb -> busy.values().forEach(t -> cb.call(t.ratio(), t.role(), t.actor())))
        .register(registry);
    mailboxDepth = Gauge.builder().name("nucleon_mailbox_depth")
        .help("Messages or work items queued at an actor").constLabels(nodeLabels).labelNames("role", "actor")
        .register(registry);
    Gauge.builder().name("nucleon_node_info").help("A node of the cluster and its roles (always 1)")
        .constLabels(nodeLabels).labelNames("roles").register(registry).labelValues(String.join(",", this.roles))
        .set(1);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // rollout

  /** Adds {@code n} tokens generated by rollout worker {@code worker}. */
  public void rolloutTokens(String worker, long n) {
    RolloutState s = rollout(worker);
    s.tokensPoint.inc(n);
    s.tokens.add(n);
    s.tokensWindow.add(n);
  }

  /** Adds {@code n} trajectories generated by rollout worker {@code worker}. */
  public void rolloutTrajectories(String worker, long n) {
    RolloutState s = rollout(worker);
    s.trajectoriesPoint.inc(n);
    s.trajectories.add(n);
    s.trajectoriesWindow.add(n);
  }

  /**
   * Adds {@code n} row-steps decoded by rollout worker {@code worker}: rows of its batches it drew a token for, those
   * of finished sequences (a static batch decodes them until its longest is done) and idle slots it decoded included
   * (the compiled decode step leaves a continuous batch's idle rows out).
   */
  public void rolloutRowSteps(String worker, long n) {
    rollout(worker).rowStepsPoint.inc(n);
  }

  /** Records the seconds one generated batch took on rollout worker {@code worker}. */
  public void rolloutBatchSeconds(String worker, double seconds) {
    RolloutState s = rollout(worker);
    s.batchPoint.observe(seconds);
    s.batches.increment();
    s.batchSeconds.add(seconds);
  }

  private RolloutState rollout(String worker) {
    return rollouts.computeIfAbsent(worker, w -> new RolloutState(w));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // reward

  /** Adds {@code n} completions scored by reward {@code reward} with outcome {@code outcome} (ok, failed, ...). */
  public void rewardScored(String reward, String outcome, long n) {
    RewardState s = reward(reward);
    s.outcomes.computeIfAbsent(outcome, o -> new OutcomeState(rewardScored.labelValues(reward, o))).add(n);
    s.window.add(n);
  }

  /** Records the seconds one scoring call of reward {@code reward} took. */
  public void rewardSeconds(String reward, double seconds) {
    RewardState s = reward(reward);
    s.secondsPoint.observe(seconds);
    s.calls.increment();
    s.seconds.add(seconds);
  }

  private RewardState reward(String reward) {
    return rewards.computeIfAbsent(reward, r -> new RewardState(r));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // replay, staleness

  /** Sets the number of complete groups ready in the replay buffer. */
  public void replayGroups(int ready) {
    replayReady.set(ready);
    replayGroups.get().set(ready);
  }

  /** Adds {@code n} groups or trajectories dropped for {@code reason} (stale, zero_variance, failed, ...). */
  public void replayDropped(String reason, long n) {
    replayDropped.labelValues(reason).inc(n);
    dropped.computeIfAbsent(reason, r -> new LongAdder()).add(n);
  }

  /** Records the staleness of one trained trajectory: policy versions between its oldest token and the learner. */
  public void trajectoryStaleness(int versionsBehind) {
    staleness.get().observe(versionsBehind);
    stalenessCounts.computeIfAbsent(versionsBehind, v -> new LongAdder()).increment();
    stalenessSum.add(versionsBehind);
    stalenessN.increment();
    stalenessMax.accumulateAndGet(versionsBehind, Math::max);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // learner, weights, training signals

  /** A learner step: its seconds, the completion tokens and the trajectories it trained on. */
  public void learnerStep(double seconds, long tokens, long sequences) {
    learnedSequences.add(sequences);
    learnedSequencesWindow.add(sequences);
    learnerSteps.get().inc();
    learnerStepSeconds.get().observe(seconds);
    learnerTokens.get().inc(tokens);
    steps.increment();
    learnedTokens.add(tokens);
    learnedTokensWindow.add(tokens);
    stepSecondsSum.add(seconds);
    lastStepSecondsBits.set(Double.doubleToLongBits(seconds));
  }

  /**
   * Counts a learner step whose gradient norm was a spike and/or whose update was skipped (a counter, so a scrape
   * that comes later still sees it).
   */
  public void learnerFlagged(boolean gradSpike, boolean skipped) {
    if (gradSpike) {
      learnerFlaggedSteps.get().labelValues("grad_spike").inc();
    }
    if (skipped) {
      learnerFlaggedSteps.get().labelValues("skipped_update").inc();
    }
  }

  /** Sets the newest published policy version. */
  public void policyVersion(int v) {
    version.set(v);
    policyVersion.get().set(v);
  }

  /** A rollout worker streamed one version of {@code bytes} in {@code seconds}. */
  public void weightsFetched(String actor, double seconds, long bytes) {
    weightsFetchSeconds.labelValues(actor).observe(seconds);
    weightsFetchedBytes.labelValues(actor).inc(bytes);
  }

  /** A rollout worker's weight transfer failed (it fetches again). */
  public void weightsFetchFailed(String actor) {
    weightsFetchFailures.labelValues(actor).inc();
  }

  /** Counts {@code bytes} more sent by the learner's weight server outside a publication (a relay bypassed). */
  public void weightsSent(long bytes) {
    weightsBytes.get().inc(bytes);
    publishedBytes.add(bytes);
  }

  /** Records one weights publication that took {@code seconds} and moved {@code bytes} bytes. */
  public void weightsPublished(double seconds, long bytes) {
    weightsPublishSeconds.get().observe(seconds);
    weightsBytes.get().inc(bytes);
    publishes.increment();
    publishedBytes.add(bytes);
    lastPublishSecondsBits.set(Double.doubleToLongBits(seconds));
  }

  /**
   * Sets training-signal gauges {@code nucleon_train_<name>} (reward_mean, accuracy, loss, kl, clip_fraction,
   * entropy, grad_norm, or any other name; a name is lower-cased and anything outside {@code [a-z0-9_]} becomes
   * {@code _}). Null values are skipped.
   */
  public void trainingSignals(Map<String, Double> signals) {
    signals.forEach((name, value) -> {
      if (value == null) {
        return;
      }
      String key = metricName(name);
      if (key.isEmpty()) {
        return;
      }
      signalGauges.computeIfAbsent(key, k -> Gauge.builder().name("nucleon_train_" + k)
          .help("Training signal " + k + " of the last learner step")
          .constLabels(Labels.of("node", node, "role", ROLE_LEARNER)).register(registry)).set(value);
      lastSignals.put(key, value);
    });
  }

  static String metricName(String name) {
    String s = NOT_NAME.matcher(name.toLowerCase(Locale.ROOT)).replaceAll("_");
    s = s.replaceAll("^_+|_+$", "");
    return !s.isEmpty() && Character.isDigit(s.charAt(0)) ? "_" + s : s;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // busy time, mailbox depth

  /**
   * The busy tracker of actor {@code actor} (made on first call; later calls return the same one, whatever the role).
   * The actor keeps it and calls {@code begin()}/{@code end()} or {@code record(nanos)}; the gauge
   * {@code nucleon_actor_busy_ratio{role,actor}} reads it at scrape time.
   */
  public BusyTracker busyTracker(String role, String actor) {
    return busy.computeIfAbsent(actor, a -> new BusyTracker(role, a, clock, windowNanos));
  }

  /** Adds {@code nanosBusy} busy nanoseconds to actor {@code actor} (see {@link #busyTracker}). */
  public void busy(String role, String actor, long nanosBusy) {
    busyTracker(role, actor).record(nanosBusy);
  }

  /** Sets the mailbox (or work queue) depth of actor {@code actor}. */
  public void mailboxDepth(String role, String actor, int depth) {
    Mailbox m = mailboxes.computeIfAbsent(actor, a -> new Mailbox(role, mailboxDepth.labelValues(role, a)));
    m.depth.set(depth);
    m.point.set(depth);
  }

  /** As {@link #mailboxDepth(String, String, int)}, with the role the actor was first seen with (else this node's). */
  public void mailboxDepth(String actor, int depth) {
    mailboxDepth(roleOf(actor), actor, depth);
  }

  private String roleOf(String actor) {
    Mailbox m = mailboxes.get(actor);
    if (m != null) {
      return m.role;
    }
    BusyTracker t = busy.get(actor);
    if (t != null) {
      return t.role();
    }
    if (rollouts.containsKey(actor)) {
      return ROLE_ROLLOUT;
    }
    return String.join("+", roles);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // reading

  /** This node's name. */
  public String node() {
    return node;
  }

  /** This node's roles. */
  public List<String> roles() {
    return roles;
  }

  /** The seconds over which the snapshot's rates and the busy ratio are computed. */
  public double rateWindowSeconds() {
    return windowNanos / 1e9;
  }

  /** The Prometheus registry holding this node's metrics (for exporters; actors use the methods above). */
  public PrometheusRegistry registry() {
    return registry;
  }

  /** The Prometheus text exposition (format 0.0.4) of this node's metrics, as served on {@code /metrics}. */
  public String scrapeText() {
    ByteArrayOutputStream out = new ByteArrayOutputStream(8192);
    try {
      PrometheusTextFormatWriter.create().write(out, registry.scrape());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  /** This node's figures now, as a plain record (Kryo-friendly) for the cluster view. */
  public NodeSnapshot snapshot() {
    Map<String, NodeSnapshot.Actor> actors = new TreeMap<>();
    for (RolloutState s : rollouts.values()) {
      actors.put(s.worker, actorFigures(ROLE_ROLLOUT, s.worker, s));
    }
    for (BusyTracker t : busy.values()) {
      actors.computeIfAbsent(t.actor(), a -> actorFigures(t.role(), a, null));
    }
    for (Map.Entry<String, Mailbox> e : mailboxes.entrySet()) {
      actors.computeIfAbsent(e.getKey(), a -> actorFigures(e.getValue().role, a, null));
    }

    List<NodeSnapshot.Reward> rewardList = new ArrayList<>();
    new TreeMap<>(rewards).forEach((name, s) -> {
      Map<String, Long> outcomes = new LinkedHashMap<>();
      new TreeMap<>(s.outcomes).forEach((o, st) -> outcomes.put(o, st.total.sum()));
      long calls = s.calls.sum();
      rewardList.add(new NodeSnapshot.Reward(name, outcomes, s.window.perSecond(),
          calls == 0 ? 0.0 : s.seconds.sum() / calls));
    });

    NodeSnapshot.Learner learner = null;
    long n = steps.sum();
    if (n > 0 || version.get() >= 0 || publishes.sum() > 0) {
      learner = new NodeSnapshot.Learner(version.get(), n, learnedTokens.sum(), learnedTokensWindow.perSecond(),
          Double.longBitsToDouble(lastStepSecondsBits.get()), n == 0 ? 0.0 : stepSecondsSum.sum() / n,
          publishes.sum(), Double.longBitsToDouble(lastPublishSecondsBits.get()), publishedBytes.sum());
    }

    Map<String, Long> droppedMap = new LinkedHashMap<>();
    new TreeMap<>(dropped).forEach((r, a) -> droppedMap.put(r, a.sum()));
    Map<String, Long> stalenessMap = new LinkedHashMap<>();
    stalenessCounts.forEach((v, a) -> stalenessMap.put(Integer.toString(v), a.sum()));
    long sn = stalenessN.sum();
    Map<String, Double> signals = new LinkedHashMap<>(new TreeMap<>(lastSignals));

    return new NodeSnapshot(node, new ArrayList<>(roles), System.currentTimeMillis(),
        (clock.getAsLong() - startNanos) / 1e9, rateWindowSeconds(), new ArrayList<>(actors.values()), rewardList,
        learner, replayReady.get(), droppedMap, stalenessMap, stalenessMax.get(),
        sn == 0 ? 0.0 : (double) stalenessSum.sum() / sn, signals);
  }

  private NodeSnapshot.Actor actorFigures(String role, String actor, RolloutState s) {
    BusyTracker t = busy.get(actor);
    Mailbox m = mailboxes.get(actor);
    if (s == null && ROLE_LEARNER.equals(t != null ? t.role() : role)) {
      // the learner's row: the tokens it trained on and its steps (a batch is a step)
      long n = steps.sum();
      return new NodeSnapshot.Actor(ROLE_LEARNER, actor, learnedTokens.sum(), learnedSequences.sum(),
          learnedTokensWindow.perSecond(), learnedSequencesWindow.perSecond(), n,
          n == 0 ? 0.0 : stepSecondsSum.sum() / n, t == null ? -1.0 : t.ratio(),
          t == null ? -1.0 : t.ratioSinceStart(), m == null ? -1 : m.depth.get());
    }
    long batches = s == null ? 0 : s.batches.sum();
    return new NodeSnapshot.Actor(t != null ? t.role() : role, actor,
        s == null ? 0 : s.tokens.sum(), s == null ? 0 : s.trajectories.sum(),
        s == null ? 0.0 : s.tokensWindow.perSecond(), s == null ? 0.0 : s.trajectoriesWindow.perSecond(),
        batches, batches == 0 ? 0.0 : s.batchSeconds.sum() / batches,
        t == null ? -1.0 : t.ratio(), t == null ? -1.0 : t.ratioSinceStart(), m == null ? -1 : m.depth.get());
  }

  // ---------------------------------------------------------------------------------------------------------------
  // per-label state (the labelled data point is looked up once)

  private final class RolloutState {
    final String worker;
    final CounterDataPoint tokensPoint;
    final CounterDataPoint trajectoriesPoint;
    final CounterDataPoint rowStepsPoint;
    final DistributionDataPoint batchPoint;
    final LongAdder tokens = new LongAdder();
    final LongAdder trajectories = new LongAdder();
    final LongAdder batches = new LongAdder();
    final DoubleAdder batchSeconds = new DoubleAdder();
    final WindowedSum tokensWindow = new WindowedSum(clock, startNanos, windowNanos, 30);
    final WindowedSum trajectoriesWindow = new WindowedSum(clock, startNanos, windowNanos, 30);

    RolloutState(String worker) {
      this.worker = worker;
      this.tokensPoint = rolloutTokens.labelValues(worker);
      this.trajectoriesPoint = rolloutTrajectories.labelValues(worker);
      this.rowStepsPoint = rolloutRowSteps.labelValues(worker);
      this.batchPoint = rolloutBatchSeconds.labelValues(worker);
    }
  }

  private final class RewardState {
    final Map<String, OutcomeState> outcomes = new ConcurrentHashMap<>();
    final DistributionDataPoint secondsPoint;
    final LongAdder calls = new LongAdder();
    final DoubleAdder seconds = new DoubleAdder();
    final WindowedSum window = new WindowedSum(clock, startNanos, windowNanos, 30);

    RewardState(String reward) {
      this.secondsPoint = rewardSeconds.labelValues(reward);
    }
  }

  private static final class OutcomeState {
    final CounterDataPoint point;
    final LongAdder total = new LongAdder();

    OutcomeState(CounterDataPoint point) {
      this.point = point;
    }

    void add(long n) {
      point.inc(n);
      total.add(n);
    }
  }

  private static final class Mailbox {
    final String role;
    final GaugeDataPoint point;
    final AtomicInteger depth = new AtomicInteger(-1);

    Mailbox(String role, GaugeDataPoint point) {
      this.role = role;
      this.point = point;
    }
  }

  /**
   * A metric registered on first use, so a node exports only the families of what it runs (a rollout-only node has
   * no {@code nucleon_policy_version} or learner series stuck at 0).
   */
  private static final class Lazy<M> {
    private final java.util.function.Supplier<M> register;
    private volatile M metric;

    Lazy(java.util.function.Supplier<M> register) {
      this.register = register;
    }

    M get() {
      M m = metric;
      if (m == null) {
        synchronized (this) {
          m = metric;
          if (m == null) {
            m = register.get();
            metric = m;
          }
        }
      }
      return m;
    }
  }
}
