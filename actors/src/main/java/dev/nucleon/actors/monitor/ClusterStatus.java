package dev.nucleon.actors.monitor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.StreamSupport;
import org.apache.pekko.cluster.ClusterEvent.CurrentClusterState;

/**
 * What the coordinator knows about the whole run at one moment, filled by the coordinator and turned into the
 * {@code /api/status} JSON by {@link StatusView}.
 *
 * @param timeMillis wall-clock time (epoch milliseconds)
 * @param state the run's state: starting, evaluating, running, finished, failed (free text)
 * @param runName the run's name (may be null)
 * @param runDir the run directory (may be null)
 * @param step learner steps done
 * @param totalSteps learner steps the run will do (0 when unknown)
 * @param policyVersion the newest policy version
 * @param elapsedSeconds seconds since the run started
 * @param members the cluster's members ({@link #members(CurrentClusterState)} builds them from Pekko's state)
 * @param prompts the coordinator's prompt accounting / queue depths by name (e.g. pending, in_flight, scored,
 *     consumed, admitted); any names
 * @param nodes one snapshot per node ({@link NucleonMetrics#snapshot()}), the coordinator's own included
 */
public record ClusterStatus(
    long timeMillis,
    String state,
    String runName,
    String runDir,
    long step,
    long totalSteps,
    int policyVersion,
    double elapsedSeconds,
    List<Member> members,
    Map<String, Long> prompts,
    List<NodeSnapshot> nodes) {

  /** A copy that names the run's folder. */
  public ClusterStatus withRunDir(String dir) {
    return new ClusterStatus(timeMillis, state, runName, dir, step, totalSteps, policyVersion, elapsedSeconds, members,
        prompts, nodes);
  }

  /**
   * One cluster member.
   *
   * @param address the member's address (pekko://nucleon@host:port)
   * @param status Up, Joining, Leaving, Exiting, Down, ...
   * @param roles the member's roles (Pekko's data-center role left out)
   * @param reachable false when the failure detector marks the member unreachable
   */
  public record Member(String address, String status, List<String> roles, boolean reachable) {}

  /**
   * A status whose step and policy version come from the learner figures of {@code nodes} (the node with the newest
   * policy version; step = that version, as the learner publishes version v after step v), for a coordinator that
   * does not track them itself.
   */
  public static ClusterStatus of(String state, String runName, String runDir, long totalSteps, double elapsedSeconds,
      List<Member> members, Map<String, Long> prompts, List<NodeSnapshot> nodes) {
    int version = -1;
    for (NodeSnapshot n : nodes) {
      if (n.learner() != null) {
        version = Math.max(version, n.learner().policyVersion());
      }
    }
    return new ClusterStatus(System.currentTimeMillis(), state, runName, runDir, Math.max(version, 0), totalSteps,
        version, elapsedSeconds, members, prompts, nodes);
  }

  /** The members of a Pekko cluster state ({@code Cluster.get(system).state()}), with reachability. */
  public static List<Member> members(CurrentClusterState state) {
    Set<org.apache.pekko.cluster.Member> unreachable = state.getUnreachable();
    List<Member> out = new ArrayList<>();
    for (org.apache.pekko.cluster.Member m : StreamSupport.stream(state.getMembers().spliterator(), false)
        .toList()) {
      List<String> roles = m.getRoles().stream().filter(r -> !r.startsWith("dc-")).sorted().toList();
      out.add(new Member(m.address().toString(), m.status().toString(), new ArrayList<>(roles),
          !unreachable.contains(m)));
    }
    return out;
  }
}
