#!/usr/bin/env bash
# Set-up, build, then every test through ctest. Exits non-zero on any failure.
#
#   scripts/test.sh              build/ (RelWithDebInfo), every test
#   scripts/test.sh --sanitize   build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer,
#                                every test (children such as cafshmd are instrumented too)
#   scripts/test.sh --tsan       build-tsan/ with ThreadSanitizer: the engine and multi-process
#                                tests (docs/hardening.md says what is excluded and why)
# Extra arguments after the mode go to ctest (e.g. -R engine).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=normal
case "${1:-}" in
  --sanitize|--asan) mode=asan; shift ;;
  --tsan) mode=tsan; shift ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
esac

source "$root/scripts/lib/process-groups.bash"
log=$(mktemp)
summary=""
# The last line says what ran and how it went, also when it did not get as far as the tests.
on_exit 'rm -f "$log"; [ -n "$summary" ] \
  || echo "test.sh: FAILED or stopped before the tests ended, exit status $status ($mode suite)"'

# Runs ctest in build directory $1 (described as $2) with the remaining arguments, in a process
# group of its own (so that stopping this script stops every test), with ctest's own output;
# then prints the totals in one line. Returns ctest's status.
run_ctest() {
  local dir=$1 what=$2 status=0
  shift 2
  start_group bash -c 'set -o pipefail; cd "$1" && log=$2 && shift 2 && ctest "$@" | tee "$log"' \
    ctest "$dir" "$log" "$@"
  wait_group "$!" || status=$?
  local totals failed total
  totals=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1) \
    || true
  if [ -z "$totals" ]; then
    summary="test.sh: ctest ran no test or stopped early, exit status $status ($what, ${dir#"$root"/}/)"
  else
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$totals")
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$totals")
    summary="test.sh: $((total - failed)) tests passed, $failed failed, of $total ($what, ${dir#"$root"/}/)"
  fi
  echo "$summary"
  return "$status"
}

"$root/scripts/setup.sh"
jobs=$(nproc)

if [ "$mode" = normal ]; then
  "$root/scripts/build.sh"
  run_ctest "$root/build" "normal suite" --output-on-failure -j"$jobs" --timeout 600 "$@"
  exit
fi

build_type=${CAFSHM_BUILD_TYPE:-RelWithDebInfo}
supp="$root/tests/sanitizers"
if [ "$mode" = asan ]; then
  dir="$root/build-asan"
  sanitize="address,undefined"
  # Every process the tests start inherits these. LeakSanitizer runs in every process that exits
  # normally; detect_leaks stays on (CAF's own one-time allocations are suppressed by name).
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0:check_initialization_order=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp:${UBSAN_OPTIONS:-}"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
  filter=()
else
  dir="$root/build-tsan"
  sanitize="thread"
  # ignore_noninstrumented_modules: malloc/free and friends called from inside CAF are not
  # checked either (the same reason as tests/sanitizers/tsan.supp).
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$supp/tsan.supp:${TSAN_OPTIONS:-}"
  # What TSan runs (the engine, the multi-process tests and the local fast path's ring, request
  # channel and actor paths): see docs/hardening.md. Left out: the tests whose premise is a
  # request timeout of 100-300 ms, which the instrumented client's registration alone exceeds.
  filter=(-L "${CAFSHM_TSAN_LABELS:-^(test_tlsf_allocator|test_background_scrubber|test_memory_manager|test_engine|test_module|test_multiprocess|test_inbox|test_inbox_delivery|test_polling_scheduler|test_fast_requests|test_fast_actor_requests|test_fast_actor_messages|test_compound_requests)\$}"
          -E "${CAFSHM_TSAN_EXCLUDE:-a request past its timeout fails|a full request inbox makes requests wait}")
fi

# -O0 -g1, the library at -O1 (CMakeLists.txt): instrumented code at -O2 -g takes about three
# times as long to compile as at -O1, and -O1 twice as long as -O0; ASan reports need only line
# tables. The benchmarks are not built (no test runs them).
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$build_type" -DCAFSHM_SANITIZE="$sanitize" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1 -DNDEBUG" -DCAFSHM_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$jobs"
if [ "$mode" = asan ]; then what="ASan+UBSan suite"; else what="TSan suite"; fi
run_ctest "$dir" "$what" --output-on-failure -j"$jobs" --timeout 900 "${filter[@]}" "$@"
