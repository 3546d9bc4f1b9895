package dev.nucleon.actors.serialization;

import dev.nucleon.actors.LearnerActor;
import dev.nucleon.actors.ReplayActor;
import dev.nucleon.actors.RewardScorer;
import dev.nucleon.actors.RolloutWorker;
import dev.nucleon.actors.RunReporter;
import dev.nucleon.actors.coordinator.Coordinator;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * A sample instance of every class in {@link KryoRegistrations}, keyed by the registered class.
 *
 * <p>WHEN YOU APPEND A CLASS TO KryoRegistrations, ADD A SAMPLE HERE (in the last section).
 * {@code KryoRegistrationsTest.everyRegisteredClassHasASample} fails until you do, and
 * {@code KryoRegistrationsTest.everySampleRoundTrips} then sends the sample through the real Pekko serialization
 * and compares what comes back field by field (arrays by content). Give the sample non-default values in every
 * field (non-empty arrays and collections, a non-null ref), so that a field that does not survive shows.
 */
final class KryoSamples {
  private KryoSamples() {}

  /**
   * @param ref an actor ref of a running system (the sample of the ActorRef family, and of ref fields)
   */
  static Map<Class<?>, Object> samples(ActorRef<?> ref) {
    Map<Class<?>, Object> s = new LinkedHashMap<>();

    // --- JDK arrays
    s.put(byte[].class, new byte[] {1, -2, 3, Byte.MIN_VALUE, Byte.MAX_VALUE});
    s.put(int[].class, new int[] {0, -1, 7, Integer.MAX_VALUE});
    s.put(long[].class, new long[] {1L, -1L, Long.MIN_VALUE});
    s.put(float[].class, new float[] {0.5f, -1.25f, Float.NaN, Float.NEGATIVE_INFINITY});
    s.put(double[].class, new double[] {Math.PI, -0.0, Double.NaN});
    s.put(boolean[].class, new boolean[] {true, false, true});
    s.put(String[].class, new String[] {"a", "", "ünïcødé", null});

    // --- JDK mutable collections
    s.put(ArrayList.class, new ArrayList<>(List.of(1, "two", 3.0, List.of(4L))));
    s.put(HashMap.class, new HashMap<>(Map.of("a", 1, "b", new int[] {2})));
    LinkedHashMap<String, Object> linked = new LinkedHashMap<>();
    linked.put("z", 1);
    linked.put("a", "second");
    s.put(LinkedHashMap.class, linked);
    s.put(HashSet.class, new HashSet<>(Set.of("x", "y")));
    s.put(LinkedHashSet.class, new LinkedHashSet<>(List.of(3, 1, 2)));
    s.put(LinkedList.class, new LinkedList<>(List.of("first", "second")));
    s.put(TreeMap.class, new TreeMap<>(Map.of("b", 2.0, "a", 1.0)));
    s.put(TreeSet.class, new TreeSet<>(Set.of(5L, 3L, 9L)));
    s.put(new ArrayList<>().subList(0, 0).getClass(), new ArrayList<>(List.of(1, 2, 3, 4)).subList(1, 3));

    // --- JDK immutable collections
    s.put(List.of().getClass(), List.of(1, 2, 3));
    s.put(List.of(1).getClass(), List.of("one", "two"));
    s.put(Set.of().getClass(), Set.of(1, 2, 3));
    s.put(Set.of(1).getClass(), Set.of("only"));
    s.put(Map.of().getClass(), Map.of("a", 1, "b", 2));
    s.put(Map.of(1, 1).getClass(), Map.of("k", List.of(1.5)));
    s.put(List.of().subList(0, 0).getClass(), List.of(10L, 20L, 30L).subList(0, 2));

    // --- JDK unmodifiable views, empty and singleton collections, Arrays.asList
    s.put(Collections.unmodifiableList(new ArrayList<>()).getClass(),
        Collections.unmodifiableList(new ArrayList<>(List.of(1, 2))));
    s.put(Collections.unmodifiableList(new LinkedList<>()).getClass(),
        Collections.unmodifiableList(new LinkedList<>(List.of("a", "b"))));
    s.put(Collections.unmodifiableSet(new HashSet<>()).getClass(),
        Collections.unmodifiableSet(new LinkedHashSet<>(List.of(5, 4))));
    LinkedHashMap<String, Double> components = new LinkedHashMap<>();
    components.put("correct", 1.0);
    components.put("format", 0.5);
    s.put(Collections.unmodifiableMap(new HashMap<>()).getClass(), Collections.unmodifiableMap(components));
    s.put(Collections.unmodifiableCollection(new ArrayList<>()).getClass(),
        Collections.unmodifiableCollection(new ArrayList<>(List.of(7, 8))));
    s.put(Collections.emptyList().getClass(), Collections.emptyList());
    s.put(Collections.emptySet().getClass(), Collections.emptySet());
    s.put(Collections.emptyMap().getClass(), Collections.emptyMap());
    s.put(Collections.singletonList(1).getClass(), Collections.singletonList("one"));
    s.put(Collections.singleton(1).getClass(), Collections.singleton(42L));
    s.put(Collections.singletonMap(1, 1).getClass(), Collections.singletonMap("k", "v"));
    s.put(Arrays.asList(1, 2).getClass(), Arrays.asList(1, 2, 3));

    // --- JDK values
    s.put(Optional.class, Optional.of("present"));
    s.put(Instant.class, Instant.ofEpochSecond(1_700_000_000L, 123_456_789));
    s.put(Duration.class, Duration.ofMillis(1234));
    s.put(UUID.class, new UUID(0x1234_5678_9abc_def0L, 0x0fed_cba9_8765_4321L));

    // --- Pekko
    s.put(ActorRef.class, ref);

    // --- core records
    Trajectory trajectory = trajectory();
    s.put(FinishReason.class, FinishReason.LENGTH);
    s.put(Trajectory.class, trajectory);
    s.put(PromptGroup.class, new PromptGroup(12L, 2, "What is 2+3?", "5", Map.of("source", "test", "level", "1"), 8,
        99L));
    s.put(RewardResult.Outcome.class, RewardResult.Outcome.FAILED);
    s.put(RewardResult.class, RewardResult.ok(1.0, components));
    s.put(RewardRequest.class, new RewardRequest("What is 2+3?", " 5", new int[] {5, 2}, "5",
        Map.of("numbers", "2,3")));
    s.put(ScoredTrajectory.class, new ScoredTrajectory(trajectory, RewardResult.failed("timed out after 5s")));
    s.put(dev.nucleon.core.rollout.RoutedExperts.class, trajectory.routedExperts());
    s.put(dev.nucleon.core.rollout.EpisodeOutcome.class, trajectory.episode());

    // --- actors' messages: add a sample for every class appended to KryoRegistrations
    @SuppressWarnings({"rawtypes", "unchecked"})
    ActorRef any = ref;
    PromptGroup group = new PromptGroup(3L << 40 | 17L, 1, "07+48=", "55", Map.of("a", "7", "b", "48"), 2, 42L);
    s.put(Coordinator.RequestWork.class, new Coordinator.RequestWork("pekko://nucleon@127.0.0.1:1/user/rollout-0", 4,
        8, any));
    s.put(Coordinator.Work.class, new Coordinator.Work(List.of(group), any));
    s.put(Coordinator.NoWork.class, new Coordinator.NoWork(true));
    s.put(Coordinator.Evaluate.class, new Coordinator.Evaluate(9L, List.of(group), 8, any));
    s.put(Coordinator.GroupReady.class, new Coordinator.GroupReady(17L, 2, any));
    s.put(Coordinator.Admission.class, new Coordinator.Admission(17L, 2, true));
    s.put(Coordinator.GroupsFiltered.class, new Coordinator.GroupsFiltered(List.of(1L, 2L),
        List.of("zero-variance", "failed-reward"), List.of(3L)));
    s.put(Coordinator.PolicyUpdated.class, new Coordinator.PolicyUpdated(5, List.of(7L, 8L),
        Map.of("loss", 0.25, "reward_mean", 0.5)));
    RunReporter.EvalSample sample = new RunReporter.EvalSample(12L, "What is 2+3?", "5", " 5", 1.0, "");
    s.put(RunReporter.EvalSample.class, sample);
    s.put(Coordinator.EvalScored.class, new Coordinator.EvalScored(9L, 5, List.of(RewardResult.ok(1.0),
        RewardResult.failed("timeout")), List.of(sample, new RunReporter.EvalSample(13L, "2+2", "4", "x", Double.NaN,
            "timeout"))));
    s.put(Coordinator.CheckpointSaved.class, new Coordinator.CheckpointSaved(5, "/runs/x/checkpoints/step-5", true));
    s.put(Coordinator.SnapshotRequest.class, new Coordinator.SnapshotRequest(any));
    s.put(Coordinator.Snapshot.class, new Coordinator.Snapshot(new byte[] {1, 2, 3}));
    s.put(RolloutWorker.WeightsAvailable.class, new RolloutWorker.WeightsAvailable(5, "10.0.0.7", 40123,
        1L << 33, any, "10.0.0.1", 40000));
    s.put(LearnerActor.RelayAt.class, new LearnerActor.RelayAt(any, "10.0.0.8", 40124));
    s.put(LearnerActor.Holds.class, new LearnerActor.Holds(any, 5));
    s.put(RewardScorer.ScoreGroup.class, new RewardScorer.ScoreGroup(41L, group, List.of(trajectory), any, any));
    s.put(RewardScorer.ScoreEval.class, new RewardScorer.ScoreEval(42L, 9L, 5, List.of(group), List.of("55"), 8, any,
        any));
    s.put(RewardScorer.Delivered.class, new RewardScorer.Delivered(41L));
    s.put(ReplayActor.Scored.class, new ReplayActor.Scored(group, List.of(new ScoredTrajectory(trajectory,
        RewardResult.ok(1.0)))));
    s.put(RunReporter.StepDone.class, new RunReporter.StepDone(5, List.of(3L, 4L), Map.of("loss", 0.1)));
    s.put(RunReporter.EvalDone.class, new RunReporter.EvalDone(5, 0.5, 0.5, 500, 0, List.of(sample)));
    s.put(RunReporter.Finished.class, new RunReporter.Finished(250, 8000L, "/runs/x/checkpoints/step-250",
        new java.util.LinkedHashMap<>(Map.of("read", 8100L, "trained", 8000L, "dropped.zero-variance", 100L))));
    s.put(Coordinator.GroupsRejected.class, new Coordinator.GroupsRejected(List.of(4L), List.of(1), List.of("too-long")));
    s.put(Coordinator.GenerationFailed.class, new Coordinator.GenerationFailed(List.of(4L, 5L), List.of(0, 2),
        "CUDA out of memory"));
    s.put(Coordinator.EvalFailed.class, new Coordinator.EvalFailed(3L, "prompt too long"));
    s.put(ReplayActor.Flush.class, new ReplayActor.Flush());
    s.put(RunReporter.Failed.class, new RunReporter.Failed("learner failed: out of memory"));
    var metrics = new dev.nucleon.actors.monitor.NucleonMetrics("pekko://nucleon@127.0.0.1:2552",
        List.of("rollout", "reward", "learner"));
    metrics.rolloutTokens("rollout-0", 1000);
    metrics.rewardScored("match", "ok", 10);
    metrics.rewardSeconds("match", 0.01);
    metrics.learnerStep(0.5, 4096, 16);
    metrics.policyVersion(3);
    metrics.busyTracker("rollout", "rollout-0").record(1_000_000);
    dev.nucleon.actors.monitor.NodeSnapshot snapshot = metrics.snapshot();
    s.put(dev.nucleon.actors.monitor.NodeSnapshot.class, snapshot);
    s.put(dev.nucleon.actors.monitor.NodeSnapshot.Actor.class, snapshot.actors().get(0));
    s.put(dev.nucleon.actors.monitor.NodeSnapshot.Reward.class, snapshot.rewards().get(0));
    s.put(dev.nucleon.actors.monitor.NodeSnapshot.Learner.class, snapshot.learner());
    s.put(Coordinator.NodeReport.class, new Coordinator.NodeReport(snapshot));
    s.put(LearnerActor.FinishEarly.class, new LearnerActor.FinishEarly());

    return s;
  }

  /**
   * A trajectory with a weight update in the middle (two versions), a stop token, a mixture-of-experts model's
   * choices (7 positions read x 2 sparse layers x top 2, ids up to 255), and an environment's token (loss mask 0)
   * with its episode's record.
   */
  static Trajectory trajectory() {
    byte[] experts = new byte[7 * 2 * 2];
    for (int i = 0; i < experts.length; i++) {
      experts[i] = (byte) (i * 37 % 256);
    }
    return new Trajectory(12L, 3, new int[] {1, 40, 41, 42}, new int[] {7, 8, 9, 2},
        new float[] {-0.1f, -2.5f, -0.01f, -1e-6f}, new int[] {4, 4, 5, 5}, FinishReason.STOP, " 5",
        new dev.nucleon.core.rollout.RoutedExperts(2, 2, experts), new byte[] {1, 0, 1, 1},
        new dev.nucleon.core.rollout.EpisodeOutcome(2, "correct at turn 2", 1.0, null,
            Map.of("tool_calls", 3L)));
  }
}
