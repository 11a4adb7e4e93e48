#!/usr/bin/env bash
# The two-node pipeline on one machine: two cafshmd (examples/two-node/engine-{a,b}.yaml), the
# producer and transformer on engine A, the sink behind engine B. Extra arguments go to
# cafshm-pipeline (e.g. --frames 100).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "${1:-}" != "--no-build" ]; then
  scripts/setup.sh
  scripts/build.sh
else
  shift
fi
bin=build/bin
source scripts/lib/process-groups.bash
work=$(mktemp -d)
on_exit 'rm -rf "$work"'

# Starts cafshmd with config $1, logging to $work/$2.log, and waits (20 s at most) for its
# listening line; sets $endpoint to the address it listens on. Runs in this shell (not in a
# command substitution), so that the engine is recorded and stopped on exit.
start_engine() {
  local log="$work/$2.log"
  start_group "$bin/cafshmd" --config "$1" >"$log" 2>&1
  local pid=$!
  for _ in $(seq 200); do
    if grep -q "listening on" "$log"; then
      endpoint=$(grep -m1 "listening on" "$log" | sed 's/.*listening on //; s/ door .*//')
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      echo "run-two-node: cafshmd ($1) stopped at start" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "run-two-node: cafshmd ($1) did not start within 20 s" >&2
  return 1
}

start_engine examples/two-node/engine-a.yaml a
a=$endpoint
start_engine examples/two-node/engine-b.yaml b
b=$endpoint
echo "engine A on $a, engine B on $b"
start_group "$bin/cafshm-pipeline" --transport shm --engine "$a" --sink-engine "$b" "$@"
wait_group "$!"
stop_groups
echo "run-two-node: pipeline done across engine A ($a) and engine B ($b); both engines stopped"
