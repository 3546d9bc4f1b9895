#!/usr/bin/env bash
# Stops the nodes started by start-cluster.sh: deploy/local/stop-cluster.sh [CLUSTER_DIR]
# (default: the folder named in runs/cluster-latest). Each node gets SIGTERM (the JVM's shutdown hook runs Pekko's
# coordinated shutdown: the node leaves the cluster), then SIGKILL if it is still alive after 30 s. Only pids from
# CLUSTER_DIR/pids whose process is still a Nucleon JVM are signalled (a pid reused by another program is left alone).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:-}"
if [ -z "$dir" ]; then
  if [ ! -f "$root/runs/cluster-latest" ]; then
    echo "stop-cluster: no CLUSTER_DIR given and no $root/runs/cluster-latest" >&2
    exit 2
  fi
  dir="$(cat "$root/runs/cluster-latest")"
fi
if [ ! -d "$dir/pids" ]; then
  echo "stop-cluster: $dir/pids not found" >&2
  exit 2
fi

is_nucleon() { # pid
  [ -r "/proc/$1/cmdline" ] || return 1
  local cmd
  cmd="$(tr '\0' ' ' < "/proc/$1/cmdline")"
  [[ "$cmd" == *dev.nucleon.actors.cli.NucleonCli* ]]
}

alive=()
for f in "$dir"/pids/node*.pid; do
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  node="$(basename "$f" .pid)"
  if kill -0 "$pid" 2>/dev/null && is_nucleon "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    alive+=("$pid")
    echo "stop-cluster: $node (pid $pid): SIGTERM"
  fi
  rm -f "$f"
done

for _ in $(seq 1 60); do
  left=()
  for pid in "${alive[@]+"${alive[@]}"}"; do
    kill -0 "$pid" 2>/dev/null && left+=("$pid")
  done
  alive=("${left[@]+"${left[@]}"}")
  [ ${#alive[@]} -eq 0 ] && break
  sleep 0.5
done
for pid in "${alive[@]+"${alive[@]}"}"; do
  if is_nucleon "$pid"; then
    echo "stop-cluster: pid $pid still up after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
echo "stop-cluster: all nodes of $dir stopped"
