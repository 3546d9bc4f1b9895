package dev.nucleon.actors.monitor;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The cluster-wide view served on {@code /api/status}: built from the coordinator's {@link ClusterStatus} (members,
 * step, prompt accounting and one {@link NodeSnapshot} per node). Shape (snake_case keys; a figure that is not known
 * is null):
 *
 * <pre>
 * { "time_ms", "state",
 *   "run":        { "name", "dir", "step", "total_steps", "policy_version", "elapsed_seconds", "eta_seconds" },
 *   "members":    [ { "address", "status", "roles": [..], "reachable" } ],
 *   "prompts":    { "pending": n, "in_flight": n, ... }            (whatever the coordinator counts)
 *   "throughput": { "rollout_tokens_per_s", "rollout_trajectories_per_s", "reward_scored_per_s",
 *                   "learner_tokens_per_s" },
 *   "actors":     [ { "node", "role", "actor", "tokens", "trajectories", "tokens_per_s", "trajectories_per_s",
 *                     "batches", "batch_seconds_mean", "busy_ratio", "busy_ratio_since_start", "mailbox_depth" } ],
 *   "rewards":    [ { "node", "reward", "outcomes": {..}, "scored_per_s", "seconds_mean" } ],
 *   "learner":    { "node", "policy_version", "steps", "tokens", "tokens_per_s", "step_seconds_last",
 *                   "step_seconds_mean", "weights_publishes", "weights_publish_seconds_last", "weights_bytes" } | null,
 *   "replay":     { "groups", "dropped": {reason: n} },
 *   "staleness":  { "max", "mean", "histogram": {"0": n, ...} },
 *   "training":   { "reward_mean": x, ... },
 *   "nodes":      [ { "node", "roles", "uptime_seconds", "age_seconds", "rate_window_seconds" } ] }
 * </pre>
 */
public final class StatusView {

  private static final ObjectMapper JSON = new ObjectMapper();

  private StatusView() {}

  /** The JSON text of {@code status}. */
  public static String render(ClusterStatus status) {
    try {
      return JSON.writeValueAsString(toJson(status));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The JSON tree of {@code status}. */
  public static ObjectNode toJson(ClusterStatus status) {
    ObjectNode root = JSON.createObjectNode();
    root.put("time_ms", status.timeMillis());
    root.put("state", status.state());

    ObjectNode run = root.putObject("run");
    run.put("name", status.runName());
    run.put("dir", status.runDir());
    run.put("step", status.step());
    run.put("total_steps", status.totalSteps());
    run.put("policy_version", status.policyVersion());
    run.put("elapsed_seconds", status.elapsedSeconds());
    if (status.step() > 0 && status.totalSteps() > status.step() && status.elapsedSeconds() > 0) {
      run.put("eta_seconds", status.elapsedSeconds() / status.step() * (status.totalSteps() - status.step()));
    } else {
      run.putNull("eta_seconds");
    }

    ArrayNode members = root.putArray("members");
    for (ClusterStatus.Member m : nullSafe(status.members())) {
      ObjectNode o = members.addObject();
      o.put("address", m.address());
      o.put("status", m.status());
      ArrayNode roles = o.putArray("roles");
      nullSafe(m.roles()).forEach(roles::add);
      o.put("reachable", m.reachable());
    }

    ObjectNode prompts = root.putObject("prompts");
    if (status.prompts() != null) {
      status.prompts().forEach(prompts::put);
    }

    List<NodeSnapshot> nodes = nullSafe(status.nodes()).stream()
        .sorted(Comparator.comparing(NodeSnapshot::node)).toList();
    double rolloutTokens = 0;
    double rolloutTrajectories = 0;
    double scored = 0;
    ArrayNode actors = JSON.createArrayNode();
    ArrayNode rewards = JSON.createArrayNode();
    NodeSnapshot learnerNode = null;
    int replayGroups = -1;
    Map<String, Long> dropped = new TreeMap<>();
    Map<Integer, Long> staleness = new TreeMap<>();
    int stalenessMax = -1;
    double stalenessSum = 0;
    long stalenessN = 0;
    for (NodeSnapshot n : nodes) {
      for (NodeSnapshot.Actor a : nullSafe(n.actors())) {
        ObjectNode o = actors.addObject();
        o.put("node", n.node());
        o.put("role", a.role());
        o.put("actor", a.actor());
        o.put("tokens", a.tokens());
        o.put("trajectories", a.trajectories());
        number(o, "tokens_per_s", a.tokensPerSecond());
        number(o, "trajectories_per_s", a.trajectoriesPerSecond());
        o.put("batches", a.batches());
        number(o, "batch_seconds_mean", a.batchSecondsMean());
        number(o, "busy_ratio", a.busyRatio() < 0 ? Double.NaN : a.busyRatio());
        number(o, "busy_ratio_since_start", a.busyRatioSinceStart() < 0 ? Double.NaN : a.busyRatioSinceStart());
        if (a.mailboxDepth() < 0) {
          o.putNull("mailbox_depth");
        } else {
          o.put("mailbox_depth", a.mailboxDepth());
        }
        rolloutTokens += finite(a.tokensPerSecond());
        rolloutTrajectories += finite(a.trajectoriesPerSecond());
      }
      for (NodeSnapshot.Reward r : nullSafe(n.rewards())) {
        ObjectNode o = rewards.addObject();
        o.put("node", n.node());
        o.put("reward", r.reward());
        ObjectNode outcomes = o.putObject("outcomes");
        if (r.outcomes() != null) {
          r.outcomes().forEach(outcomes::put);
        }
        number(o, "scored_per_s", r.scoredPerSecond());
        number(o, "seconds_mean", r.secondsMean());
        scored += finite(r.scoredPerSecond());
      }
      if (n.learner() != null
          && (learnerNode == null || n.learner().policyVersion() > learnerNode.learner().policyVersion())) {
        learnerNode = n;
      }
      if (n.replayGroups() >= 0) {
        replayGroups = Math.max(replayGroups, 0) + n.replayGroups();
      }
      if (n.replayDropped() != null) {
        n.replayDropped().forEach((k, v) -> dropped.merge(k, v, Long::sum));
      }
      if (n.staleness() != null) {
        for (Map.Entry<String, Long> e : n.staleness().entrySet()) {
          int behind = Integer.parseInt(e.getKey());
          staleness.merge(behind, e.getValue(), Long::sum);
          stalenessSum += (double) behind * e.getValue();
          stalenessN += e.getValue();
        }
      }
      stalenessMax = Math.max(stalenessMax, n.stalenessMax());
    }

    ObjectNode throughput = root.putObject("throughput");
    number(throughput, "rollout_tokens_per_s", rolloutTokens);
    number(throughput, "rollout_trajectories_per_s", rolloutTrajectories);
    number(throughput, "reward_scored_per_s", scored);
    number(throughput, "learner_tokens_per_s", learnerNode == null ? Double.NaN
        : learnerNode.learner().tokensPerSecond());
    root.set("actors", actors);
    root.set("rewards", rewards);

    if (learnerNode == null) {
      root.putNull("learner");
    } else {
      NodeSnapshot.Learner l = learnerNode.learner();
      ObjectNode o = root.putObject("learner");
      o.put("node", learnerNode.node());
      o.put("policy_version", l.policyVersion());
      o.put("steps", l.steps());
      o.put("tokens", l.tokens());
      number(o, "tokens_per_s", l.tokensPerSecond());
      number(o, "step_seconds_last", l.stepSecondsLast());
      number(o, "step_seconds_mean", l.stepSecondsMean());
      o.put("weights_publishes", l.weightsPublishes());
      number(o, "weights_publish_seconds_last", l.weightsPublishSecondsLast());
      o.put("weights_bytes", l.weightsBytes());
    }

    ObjectNode replay = root.putObject("replay");
    if (replayGroups < 0) {
      replay.putNull("groups");
    } else {
      replay.put("groups", replayGroups);
    }
    ObjectNode droppedNode = replay.putObject("dropped");
    dropped.forEach(droppedNode::put);

    ObjectNode stale = root.putObject("staleness");
    if (stalenessMax < 0) {
      stale.putNull("max");
    } else {
      stale.put("max", stalenessMax);
    }
    number(stale, "mean", stalenessN == 0 ? Double.NaN : stalenessSum / stalenessN);
    ObjectNode histogram = stale.putObject("histogram");
    staleness.forEach((k, v) -> histogram.put(Integer.toString(k), v));

    ObjectNode training = root.putObject("training");
    NodeSnapshot signalsNode = learnerNode != null ? learnerNode
        : nodes.stream().filter(n -> n.trainingSignals() != null && !n.trainingSignals().isEmpty()).findFirst()
            .orElse(null);
    if (signalsNode != null && signalsNode.trainingSignals() != null) {
      new TreeMap<>(signalsNode.trainingSignals()).forEach((k, v) -> number(training, k, v == null ? Double.NaN : v));
    }

    ArrayNode nodeList = root.putArray("nodes");
    for (NodeSnapshot n : nodes) {
      ObjectNode o = nodeList.addObject();
      o.put("node", n.node());
      ArrayNode roles = o.putArray("roles");
      nullSafe(n.roles()).forEach(roles::add);
      number(o, "uptime_seconds", n.uptimeSeconds());
      number(o, "age_seconds", Math.max(0, status.timeMillis() - n.timeMillis()) / 1000.0);
      number(o, "rate_window_seconds", n.rateWindowSeconds());
    }
    return root;
  }

  /** Puts a number, or null when it is not finite (JSON has no NaN). */
  private static void number(ObjectNode o, String key, double v) {
    if (Double.isFinite(v)) {
      o.put(key, v);
    } else {
      o.putNull(key);
    }
  }

  private static double finite(double v) {
    return Double.isFinite(v) ? v : 0.0;
  }

  private static <T> List<T> nullSafe(List<T> list) {
    return list == null ? List.of() : list;
  }
}
