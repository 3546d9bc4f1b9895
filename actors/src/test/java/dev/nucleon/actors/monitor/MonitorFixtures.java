package dev.nucleon.actors.monitor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A small cluster status of two nodes, as the coordinator would fill it (also used by the CLI tests). */
public final class MonitorFixtures {

  private MonitorFixtures() {}

  /** The sum of a metric family's series (with labels) in a Prometheus scrape. */
  public static double metric(String scrape, String name) {
    return scrape.lines().filter(l -> l.startsWith(name + "{")).mapToDouble(l -> Double.parseDouble(
        l.substring(l.lastIndexOf(' ') + 1))).sum();
  }

  public static ClusterStatus twoNodeStatus() {
    NucleonMetrics a = new NucleonMetrics("pekko://nucleon@127.0.0.1:25520", List.of("coordinator", "learner"));
    a.learnerStep(0.5, 2048, 16);
    a.policyVersion(3);
    a.replayGroups(4);
    a.replayDropped("zero_variance", 2);
    a.trajectoryStaleness(0);
    a.trajectoryStaleness(2);
    a.busy("learner", "learner", 100_000_000L);
    a.mailboxDepth("coordinator", "coordinator", 1);
    Map<String, Double> signals = new LinkedHashMap<>();
    signals.put("reward_mean", 0.4);
    signals.put("loss", Double.NaN);
    a.trainingSignals(signals);
    NucleonMetrics b = new NucleonMetrics("pekko://nucleon@127.0.0.1:25521", List.of("rollout", "reward"));
    b.rolloutTokens("rollout-0", 5000);
    b.rolloutTrajectories("rollout-0", 64);
    b.rolloutBatchSeconds("rollout-0", 0.8);
    b.rewardScored("arithmetic", "ok", 63);
    b.rewardScored("arithmetic", "failed", 1);
    b.trajectoryStaleness(1);
    b.busyTracker("rollout", "rollout-0").record(50_000_000L);
    List<ClusterStatus.Member> members = new ArrayList<>();
    members.add(new ClusterStatus.Member("pekko://nucleon@127.0.0.1:25520", "Up",
        new ArrayList<>(List.of("coordinator", "learner")), true));
    members.add(new ClusterStatus.Member("pekko://nucleon@127.0.0.1:25521", "Up",
        new ArrayList<>(List.of("reward", "rollout")), false));
    Map<String, Long> prompts = new LinkedHashMap<>();
    prompts.put("pending", 100L);
    prompts.put("in_flight", 8L);
    return new ClusterStatus(System.currentTimeMillis(), "running", "quickstart", "/tmp/run", 3, 10, 3, 6.0,
        members, prompts, List.of(b.snapshot(), a.snapshot()));
  }
}
