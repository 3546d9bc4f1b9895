#!/usr/bin/env bash
# One node of a cluster started by start-cluster.sh: start it (again), or kill it as a crash would.
#
#   deploy/local/node.sh start N [--resume] [CLUSTER_DIR]   start node N with the cluster's run file and overrides
#   deploy/local/node.sh kill N [CLUSTER_DIR]               SIGKILL node N (no shutdown hook runs: a crash)
#   deploy/local/node.sh stop N [CLUSTER_DIR]               SIGTERM node N (it leaves the cluster)
#   deploy/local/node.sh pid N [CLUSTER_DIR]                print node N's pid (exit 1 when it is not running)
#
# N: 1 = coordinator,learner (port BASE), 2 = rollout (BASE + 1), 3 = reward (BASE + 2). CLUSTER_DIR defaults to the
# folder named in runs/cluster-latest. A started node appends to its log (NODE-ROLES.log in CLUSTER_DIR) and writes
# its pid to CLUSTER_DIR/pids/nodeN.pid. --resume (node 1 only) continues the run in CLUSTER_DIR/run from its newest
# valid checkpoint; nodes 2 and 3 need no flag: a node that was downed starts its roles again and rejoins by itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 2 ] || usage
action="$1"
index="$2"
shift 2
resume=0
dir=""
for a in "$@"; do
  case "$a" in
    --resume) resume=1 ;;
    -*) echo "node.sh: unknown option '$a'" >&2; usage ;;
    *) dir="$a" ;;
  esac
done
if [ -z "$dir" ]; then
  [ -f "$root/runs/cluster-latest" ] || { echo "node.sh: no CLUSTER_DIR given and no runs/cluster-latest" >&2; exit 2; }
  dir="$(cat "$root/runs/cluster-latest")"
fi
dir="$(cd "$dir" 2>/dev/null && pwd)" || { echo "node.sh: cluster folder not found" >&2; exit 2; }
[ -f "$dir/cluster.env" ] || { echo "node.sh: $dir/cluster.env not found (not a start-cluster.sh folder?)" >&2; exit 2; }
# shellcheck source=/dev/null
. "$dir/cluster.env" # cwd (where start-cluster.sh ran: CONF's relative paths), conf, host, base, jar, overrides

case "$index" in
  1) roles=coordinator,learner; port="$base"; rundir="$dir/run" ;;
  2) roles=rollout; port=$((base + 1)); rundir="$dir/node2" ;;
  3) roles=reward; port=$((base + 2)); rundir="$dir/node3" ;;
  *) echo "node.sh: node must be 1, 2 or 3, got '$index'" >&2; exit 2 ;;
esac
log="$dir/node$index-${roles/,/-}.log"
pidfile="$dir/pids/node$index.pid"

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && [ -r "/proc/$pid/cmdline" ] || return 1
  local cmd
  cmd="$(tr '\0' ' ' < "/proc/$pid/cmdline")"
  [[ "$cmd" == *dev.nucleon.actors.cli.NucleonCli* ]] && echo "$pid"
}

case "$action" in
  start)
    if pid="$(running_pid)"; then
      echo "node.sh: node $index is already running (pid $pid)" >&2
      exit 1
    fi
    extra=()
    if [ "$resume" = 1 ]; then
      [ "$index" = 1 ] || { echo "node.sh: --resume is for node 1 (coordinator, learner)" >&2; exit 2; }
      extra=(--resume)
    fi
    mkdir -p "$dir/pids" "$rundir"
    echo "---- node.sh start $index ${extra[*]:-} at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$log"
    cd "$cwd"
    NUCLEON_JAR="$jar" "$root/nucleon" node "$conf" --roles "$roles" --port "$port" --run-dir "$rundir" \
      "${extra[@]+"${extra[@]}"}" "${overrides[@]+"${overrides[@]}"}" "-Dnucleon.cluster.host=$host" \
      "-Dnucleon.cluster.seed-nodes=[\"pekko://nucleon@$host:$base\"]" >>"$log" 2>&1 </dev/null &
    echo $! > "$pidfile"
    echo "node $index ($roles) on $host:$port: pid $!, log $log"
    ;;
  kill|stop)
    pid="$(running_pid)" || { echo "node.sh: node $index is not running" >&2; exit 1; }
    sig=KILL
    [ "$action" = stop ] && sig=TERM
    kill "-$sig" "$pid"
    echo "node $index (pid $pid): SIG$sig"
    ;;
  pid)
    running_pid || exit 1
    ;;
  *) usage ;;
esac
