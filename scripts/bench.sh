#!/usr/bin/env bash
# Set-up, build, then the benchmark suite of bench/. Writes bench/results/latest.md,
# latest.json, the data files and PNG plots (gnuplot). A full run also keeps a copy of everything
# in bench/results/full/, which docs/benchmarks.md shows.
#   scripts/bench.sh            full run (< 20 min on 2 cores)
#   scripts/bench.sh --quick    short run (< 3 min on 2 cores)
#   --out DIR                   results into DIR instead of bench/results/
# Further arguments go to build/bin/cafshm-bench (e.g. --rows handoff,alloc).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/results"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"
"$root/scripts/setup.sh"
build_type=${CAFSHM_BUILD_TYPE:-RelWithDebInfo}
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE="$build_type" -DCAFSHM_BUILD_BENCH=ON >/dev/null
jobs=$(nproc)
cmake --build "$root/build" --target cafshm-bench cafshmd -j"$jobs"
if ! cmake --build "$root/build" --target cafshm-pipeline -j"$jobs"; then
  echo "bench: cafshm-pipeline did not build; the pipeline row will say so" >&2
fi
mkdir -p "$out"
quick=0
for a in "$@"; do [ "$a" = "--quick" ] && quick=1; done
source "$root/scripts/lib/process-groups.bash"
start_group "$root/build/bin/cafshm-bench" --out "$out" "$@"
bench=$!
# Segments of cafshm-bench are named cafshm-bench-<what>-<its pid>-<n>: those its engines did not
# remove on SIGTERM, and its own (alloc rows), if it was stopped before it removed them.
on_exit "rm -f /dev/shm/cafshm-bench-*-$bench-*"
wait_group "$bench"
if command -v gnuplot >/dev/null; then
  gnuplot -e "dir='$out'" "$root/bench/plot.gp"
else
  echo "bench: gnuplot not found, no plots" >&2
fi
if [ "$quick" -eq 0 ] && [ $# -eq 0 ]; then
  mkdir -p "$out/full"
  cp "$out"/latest.md "$out"/latest.json "$out"/*.dat "$out"/*.png "$out/full/"
fi
echo "bench: results in $out/latest.md"
