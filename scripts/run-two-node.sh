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
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Starts cafshmd with config $1 and waits (20 s at most) for its listening line.
start_engine() {
  local log
  log=$(mktemp)
  "$bin/cafshmd" --config "$1" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    if grep -q "listening on" "$log"; then
      grep "listening on" "$log" | sed 's/.*listening on //; s/ door .*//'
      rm -f "$log"
      return 0
    fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      cat "$log" >&2
      rm -f "$log"
      return 1
    fi
    sleep 0.1
  done
  echo "run-two-node: cafshmd ($1) did not start" >&2
  return 1
}

a=$(start_engine examples/two-node/engine-a.yaml)
b=$(start_engine examples/two-node/engine-b.yaml)
echo "engine A on $a, engine B on $b"
"$bin/cafshm-pipeline" --transport shm --engine "$a" --sink-engine "$b" "$@"
