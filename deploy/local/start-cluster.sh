#!/usr/bin/env bash
# Starts one run as a 3-node Pekko cluster on this machine (three JVMs on 127.0.0.1), waits for the run to end and
# prints where its run directory is:
#
#   node 1  coordinator + learner  port BASE_PORT      (the seed node; its run directory holds metrics/checkpoints)
#   node 2  rollout                port BASE_PORT + 1
#   node 3  reward                 port BASE_PORT + 2
#
# Usage: deploy/local/start-cluster.sh CONF [--detach] [-Dkey=value ...]
#   e.g. deploy/local/start-cluster.sh conf/quickstart.conf -Dnucleon.run.total-steps=20
#
# Every node reads the same run file and the same -D overrides (each node needs the model, the dataset or the
# reward settings of its roles). Run it from the repository root when CONF uses relative paths (conf/quickstart.conf
# does). Environment:
#   NUCLEON_HOST          address the nodes bind and advertise (default 127.0.0.1)
#   NUCLEON_BASE_PORT     port of node 1; nodes 2 and 3 take the next two (default 25520)
#   NUCLEON_CLUSTER_DIR   folder for logs, pids and the run directory (default runs/cluster-<yyyyMMdd-HHmmss>)
#   NUCLEON_SETTLE_S      seconds between the reward node joining and the rollout node starting (default 3)
#   JAVA_OPTS             passed to every JVM (see ./nucleon)
#
# Layout of NUCLEON_CLUSTER_DIR: node1-coordinator-learner.log, node2-rollout.log, node3-reward.log (each node's
# console), pids/node{1,2,3}.pid, run/ (the run directory: metrics.jsonl, checkpoints/, plots), node2/ and node3/
# (scratch folders of the other nodes). runs/cluster-latest names the newest cluster folder (for stop-cluster.sh).
#
# The script returns when node 1 exits (the coordinator's node leaves the cluster when the run is finished), then
# stops nodes 2 and 3. --detach returns once all three nodes are up; stop them with deploy/local/stop-cluster.sh.
# Ctrl-C while waiting stops all three nodes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
fi
conf="$1"
shift
if [ ! -f "$conf" ]; then
  echo "start-cluster: run file not found: $conf" >&2
  exit 2
fi

detach=0
overrides=()
for a in "$@"; do
  case "$a" in
    --detach) detach=1 ;;
    -D*) overrides+=("$a") ;;
    *) echo "start-cluster: unknown argument '$a' (expected --detach or -Dkey=value)" >&2; exit 2 ;;
  esac
done

host="${NUCLEON_HOST:-127.0.0.1}"
base="${NUCLEON_BASE_PORT:-25520}"
for p in "$base" $((base + 1)) $((base + 2)); do
  if (exec 3<>"/dev/tcp/$host/$p") 2>/dev/null; then
    echo "start-cluster: port $p on $host is taken (another cluster still up? deploy/local/stop-cluster.sh)" >&2
    exit 1
  fi
done

dir="${NUCLEON_CLUSTER_DIR:-runs/cluster-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$dir/pids" "$dir/run" "$dir/node2" "$dir/node3"
dir="$(cd "$dir" && pwd)"
rm -f "$dir"/node*.log # node.sh appends (a restarted node continues its log); a reused folder starts clean
mkdir -p "$root/runs"
echo "$dir" > "$root/runs/cluster-latest"

# Build the jar once, up front: three launchers racing to rebuild it would clash. Then every node runs that jar.
jar="${NUCLEON_JAR:-$root/actors/target/nucleon.jar}"
if [ -z "${NUCLEON_JAR:-}" ]; then
  "$root/nucleon" --version >/dev/null
fi
export NUCLEON_JAR="$jar"

# what node.sh needs to start any node of this cluster again
{
  printf 'cwd=%q\nconf=%q\nhost=%q\nbase=%q\njar=%q\noverrides=(' "$PWD" "$conf" "$host" "$base" "$jar"
  for o in "${overrides[@]+"${overrides[@]}"}"; do printf '%q ' "$o"; done
  printf ')\n'
} > "$dir/cluster.env"

t0=$(date +%s)
start_node() { # index
  "$here/node.sh" start "$1" "$dir"
}

stop_all() {
  "$here/stop-cluster.sh" "$dir" || true
}

# wait_up INDEX LOG: until the node printed "node up" and has joined the cluster (a node that dies first fails the
# start, with its log's tail)
wait_up() {
  local i="$1" log="$dir/$2" pid
  pid="$(cat "$dir/pids/node$i.pid")"
  for _ in $(seq 1 240); do
    if grep -q "node up with roles" "$log" 2>/dev/null && { [ "$i" = 1 ] || grep -q "Welcome from" "$log"; }; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start-cluster: node $i exited during start; end of $log:" >&2
      tail -n 30 "$log" >&2
      stop_all
      exit 1
    fi
    sleep 0.5
  done
  echo "start-cluster: node $i not up after 120 s; see $log" >&2
  stop_all
  exit 1
}

trap 'echo; echo "start-cluster: interrupted, stopping the nodes"; stop_all; exit 130' INT TERM
# Node 1 first: it is the seed node and forms the cluster. Then the reward node, and the rollout node last (a rollout
# worker asks for work only once it knows a reward scorer, so the order only saves it a wait).
start_node 1
wait_up 1 node1-coordinator-learner.log
start_node 3
wait_up 3 node3-reward.log
sleep "${NUCLEON_SETTLE_S:-3}"
start_node 2
wait_up 2 node2-rollout.log
echo "cluster up after $(( $(date +%s) - t0 )) s"
grep -h "node up with roles" "$dir"/node*.log | sed 's/^/  /' 
grep -h -i "dashboard on" "$dir/node1-coordinator-learner.log" 2>/dev/null | head -n 1 | sed 's/.* - /  /' || true

if [ "$detach" = 1 ]; then
  echo "detached; stop with: deploy/local/stop-cluster.sh $dir"
  echo "run directory: $dir/run"
  exit 0
fi

echo "waiting for the run to end (one line per step in $dir/run/metrics.jsonl; the dashboard on node 1)"
pid1="$(cat "$dir/pids/node1.pid")"
while kill -0 "$pid1" 2>/dev/null; do
  sleep 2
done
# node 1 was started by node.sh, so it is not this shell's child: the run succeeded when it wrote its summary
status=0
[ -f "$dir/run/summary.json" ] || status=1
trap - INT TERM
elapsed=$(( $(date +%s) - t0 ))
stop_all
echo
if [ "$status" = 0 ]; then
  echo "run finished in ${elapsed} s"
else
  echo "node 1 exited after ${elapsed} s without a run summary; end of its log:" >&2
  tail -n 30 "$dir/node1-coordinator-learner.log" >&2
fi
errors="$(grep -h -E ' ERROR ' "$dir"/node*.log | head -n 10 || true)"
if [ -n "$errors" ]; then
  echo "ERROR lines in the node logs (first 10):"
  echo "$errors"
fi
if [ -f "$dir/run/metrics.jsonl" ]; then
  echo "steps logged: $(grep -c '"type":"step"' "$dir/run/metrics.jsonl" || true)"
fi
if [ -f "$dir/run/summary.json" ]; then
  echo "summary: $(tr -d '\n' < "$dir/run/summary.json" | tr -s ' ')"
fi
echo "run directory: $dir/run"
echo "logs: $dir"
exit "$status"
