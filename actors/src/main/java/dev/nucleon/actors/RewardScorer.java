package dev.nucleon.actors;

import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.actors.monitor.BusyTracker;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.actors.serialization.NucleonMessage;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * Scores trajectories with the run's reward plug-in, off the actor's thread, at most {@code maxInFlight} batches at
 * a time (more wait here). The plug-in is wrapped so that a reward that throws, hangs or returns a non-finite value
 * yields a failed result for that sample: never a silent 0, never a stopped run. Workers spread their groups over the
 * scorers of every node with the reward role (round robin over the receptionist's reachable ones) and hold each
 * until its scorer says it went on ({@link Delivered}), so that what a lost scorer held is sent to another at once.
 */
public final class RewardScorer extends AbstractBehavior<RewardScorer.Command> {

  public static final ServiceKey<Command> KEY = ServiceKey.create(Command.class, "nucleon-reward-scorer");

  public sealed interface Command {}

  /** A hand-off to a scorer: what it is, and whom to tell once its result went on. */
  public sealed interface Handoff extends Command {
    /** The sender's number for this hand-off. */
    long handoff();

    ActorRef<Delivered> ackTo();
  }

  /**
   * Score one prompt group's trajectories and send them to the replay buffer, then tell {@code ackTo} (a copy sent
   * twice, after its first scorer was lost, is admitted once: the coordinator admits one result per attempt).
   */
  public record ScoreGroup(long handoff, PromptGroup group, List<Trajectory> trajectories,
      ActorRef<ReplayActor.Command> replyTo, ActorRef<Delivered> ackTo) implements Handoff, NucleonMessage {}

  /** Score greedy evaluation completions and send the results to the coordinator, then tell {@code ackTo}. */
  public record ScoreEval(long handoff, long evalId, int version, List<PromptGroup> prompts, List<String> completions,
      int samples, ActorRef<Coordinator.Command> replyTo, ActorRef<Delivered> ackTo)
      implements Handoff, NucleonMessage {}

  /** The result of hand-off {@code handoff} went on to its receiver: the sender may forget it. */
  public record Delivered(long handoff) implements NucleonMessage {}

  private record Done(Runnable reply) implements Command {}

  private final RewardFunction reward;
  private final String rewardName;
  private final Executor executor;
  private final int maxInFlight;
  private final NucleonMetrics metrics;
  private final BusyTracker busy;
  private final Deque<Handoff> waiting = new ArrayDeque<>();
  private int inFlight;

  public static Behavior<Command> create(String name, RewardFunction reward, String rewardName, Executor executor,
      int maxInFlight, NucleonMetrics metrics) {
    return Behaviors.setup(ctx -> new RewardScorer(ctx, name, reward, rewardName, executor, maxInFlight, metrics));
  }

  private RewardScorer(ActorContext<Command> ctx, String name, RewardFunction reward, String rewardName,
      Executor executor, int maxInFlight, NucleonMetrics metrics) {
    super(ctx);
    this.reward = reward;
    this.rewardName = rewardName;
    this.executor = executor;
    this.maxInFlight = maxInFlight;
    this.metrics = metrics;
    this.busy = metrics.busyTracker(NucleonMetrics.ROLE_REWARD, name);
    ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(ScoreGroup.class, this::enqueue)
        .onMessage(ScoreEval.class, this::enqueue)
        .onMessage(Done.class, this::onDone)
        .build();
  }

  private Behavior<Command> enqueue(Handoff c) {
    waiting.addLast(c);
    startWhatFits();
    return this;
  }

  private void startWhatFits() {
    while (inFlight < maxInFlight && !waiting.isEmpty()) {
      Handoff c = waiting.pollFirst();
      inFlight++;
      if (inFlight == 1) {
        busy.begin();
      }
      if (c instanceof ScoreGroup g) {
        // an episode the environment scored (or failed) keeps that; the run's reward scores the others
        List<RewardRequest> requests = new ArrayList<>();
        for (Trajectory t : g.trajectories()) {
          if (given(t) == null) {
            requests.add(new RewardRequest(g.group().prompt(), t.completionText(), t.completionTokens(),
                g.group().groundTruth(), g.group().metadata()));
          }
        }
        score(requests, results -> {
          List<ScoredTrajectory> scored = new ArrayList<>();
          int k = 0;
          long givenOk = 0;
          long givenFailed = 0;
          for (Trajectory t : g.trajectories()) {
            RewardResult r = given(t);
            if (r != null) {
              givenOk += r.isOk() ? 1 : 0;
              givenFailed += r.isOk() ? 0 : 1;
            }
            scored.add(new ScoredTrajectory(t, r != null ? r : results.get(k++)));
          }
          if (givenOk + givenFailed > 0) {
            // rewards the episodes' environment decided, counted like the reward function's
            metrics.rewardScored("environment", "ok", givenOk);
            metrics.rewardScored("environment", "failed", givenFailed);
          }
          return () -> {
            g.replyTo().tell(new ReplayActor.Scored(g.group(), scored));
            g.ackTo().tell(new Delivered(g.handoff()));
          };
        });
      } else if (c instanceof ScoreEval e) {
        List<RewardRequest> requests = new ArrayList<>();
        for (int i = 0; i < e.prompts().size(); i++) {
          PromptGroup p = e.prompts().get(i);
          requests.add(new RewardRequest(p.prompt(), e.completions().get(i), new int[0], p.groundTruth(),
              p.metadata()));
        }
        score(requests, results -> () -> {
          // the first few evaluations as text, for the run's samples.jsonl
          List<RunReporter.EvalSample> samples = new ArrayList<>();
          for (int i = 0; i < Math.min(e.samples(), results.size()); i++) {
            PromptGroup p = e.prompts().get(i);
            RewardResult r = results.get(i);
            samples.add(new RunReporter.EvalSample(p.promptId(), p.prompt(), p.groundTruth(), e.completions().get(i),
                r.isOk() ? r.reward() : Double.NaN, r.isOk() ? "" : r.reason()));
          }
          e.replyTo().tell(new Coordinator.EvalScored(e.evalId(), e.version(), results, samples));
          e.ackTo().tell(new Delivered(e.handoff()));
        });
      }
    }
  }

  /** The result an episode's environment decided (its reward, or its failure), or null. */
  private static RewardResult given(Trajectory t) {
    dev.nucleon.core.rollout.EpisodeOutcome e = t.episode();
    if (e == null) {
      return null;
    }
    if (e.failure() != null) {
      return RewardResult.failed("environment: " + e.failure());
    }
    return e.reward() == null ? null : RewardResult.ok(e.reward());
  }

  private void score(List<RewardRequest> requests,
      java.util.function.Function<List<RewardResult>, Runnable> then) {
    long start = System.nanoTime();
    CompletableFuture<List<RewardResult>> f = CompletableFuture.supplyAsync(() -> reward.score(requests), executor);
    getContext().pipeToSelf(f, (results, error) -> new Done(() -> {
      List<RewardResult> r = results;
      if (error != null) {
        // the guard never throws; should a plug-in's batch call fail anyway, every sample fails with the reason
        r = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
          r.add(RewardResult.failed("reward batch failed: " + error));
        }
      }
      long ok = r.stream().filter(RewardResult::isOk).count();
      metrics.rewardScored(rewardName, "ok", ok);
      metrics.rewardScored(rewardName, "failed", r.size() - ok);
      metrics.rewardSeconds(rewardName, (System.nanoTime() - start) / 1e9);
      then.apply(r).run();
    }));
  }

  private Behavior<Command> onDone(Done d) {
    d.reply().run();
    inFlight = Math.max(0, inFlight - 1); // a restarted scorer may still see results of its former incarnation
    if (inFlight == 0) {
      busy.end();
    }
    startWhatFits();
    return this;
  }
}
