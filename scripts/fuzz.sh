#!/usr/bin/env bash
# Fuzzing with libFuzzer: scripts/fuzz.sh [--seconds N] [TARGET...]
# Targets (fuzz/fuzz_<target>.cpp): config memory_manager remote cli door inbox peer_proof
# request_inbox; default: all. Builds them
# with clang, ASan and UBSan into build-fuzz/, replays every crash kept in fuzz/regressions/<t>/,
# then fuzzes each target for N seconds (default 20) starting from the committed seed corpus
# fuzz/corpus/<t>/ (new inputs go to build-fuzz/corpus/<t>/, never into the repository).
# Exits non-zero if any target crashed or violated a property; the input that did it is in
# build-fuzz/artifacts/<t>/ — fix the bug, then add the input to fuzz/regressions/<t>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=20
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(config memory_manager remote cli door inbox peer_proof request_inbox)

"$root/scripts/setup.sh" --fuzz
dir="$root/build-fuzz"
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DCAFSHM_FUZZ=ON -DCAFSHM_SANITIZE=address,undefined \
  -DCAFSHM_BUILD_TESTS=OFF -DCAFSHM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
source "$root/scripts/lib/process-groups.bash"
# Runs a fuzz binary (in its own process group, stopped with this script) with output to log $1;
# then removes the segments of the engines it ran (cafshm-fuzz-<what>-<its pid>.{data,admin,sock,
# inbox-<slot>}):
# a fuzzer ends with exit() or on a signal, never through the engines' clean shutdown.
fuzz_run() {
  local log=$1 status=0
  shift
  start_group "$@" >"$log" 2>&1
  local pid=$!
  on_exit "rm -f /dev/shm/cafshm-fuzz-*-$pid.data /dev/shm/cafshm-fuzz-*-$pid.admin /dev/shm/cafshm-fuzz-*-$pid.sock /dev/shm/cafshm-fuzz-*-$pid.inbox-*"
  wait_group "$pid" || status=$?
  rm -f /dev/shm/cafshm-fuzz-*-"$pid".data /dev/shm/cafshm-fuzz-*-"$pid".admin /dev/shm/cafshm-fuzz-*-"$pid".inbox-*
  return "$status"
}

failed=()
for t in "${targets[@]}"; do
  bin="$dir/bin/fuzz_$t"
  work="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  args=(-max_len=4096 -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="$artifacts/")
  [ -f "$root/fuzz/$t.dict" ] && args+=(-dict="$root/fuzz/$t.dict")
  echo "fuzz: $t: regressions"
  regressions=("$root"/fuzz/regressions/"$t"/*)
  if [ -e "${regressions[0]}" ] && ! fuzz_run "$work.log" "$bin" "${args[@]}" "${regressions[@]}"; then
    tail -40 "$work.log"
    failed+=("$t (a regression input)")
    continue
  fi
  echo "fuzz: $t: $seconds s"
  if fuzz_run "$work.log" "$bin" "${args[@]}" -max_total_time="$seconds" "$work" \
      "$root/fuzz/corpus/$t"; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$work.log" \
      | tr '\n' ' ' | sed "s/^/fuzz: $t: /"; echo
  else
    tail -60 "$work.log"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $dir/artifacts/)"
  exit 1
fi
echo "fuzz: all targets clean for $seconds s each"
