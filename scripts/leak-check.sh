#!/usr/bin/env bash
# Checks that the scripts that start processes leave nothing behind. Each one runs twice in a row
# to its end, then is stopped in the middle twice: by SIGINT to its process group (what Ctrl-C
# does) and by `timeout` (SIGTERM to it and its process group). After every run: no process of
# this checkout's build directories is left, and no segment its programs make is left in
# /dev/shm. Exits non-zero on the first leftover, naming it.
#
# usage: scripts/leak-check.sh [SCRIPT...]     SCRIPT: run run-two-node soak bench fuzz (default)
#
# Uses the existing builds (it builds nothing new): build/ for run, run-two-node, soak and bench
# (as scripts/test.sh leaves it), build-fuzz/ for fuzz (as scripts/fuzz.sh leaves it). Short
# parameters: 20 frames per pipeline, 5-second soaks, the quick allocator benchmarks, 2-second
# fuzz runs. run.sh and run-two-node.sh listen on fixed ports: nothing else may run them meanwhile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
set -m # every background job in a process group of its own, as an interactive shell does
scripts=("$@")
[ ${#scripts[@]} -gt 0 ] || scripts=(run run-two-node soak bench fuzz)
for s in "${scripts[@]}"; do
  case "$s" in
    run|run-two-node|soak|bench|fuzz) ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "leak-check: unknown script '$s' (run run-two-node soak bench fuzz)" >&2; exit 2 ;;
  esac
done

say() { echo "leak-check: $*"; }
fail() {
  say "FAILED: $*"
  exit 1
}

# The command of a complete short run, and of a run long enough to be stopped in the middle.
command_of() { # script, short|long
  local long=$([ "$2" = long ] && echo 1 || echo 0)
  case "$1" in
    run) echo "scripts/run.sh --no-build --frames $([ "$long" = 1 ] && echo 100000 || echo 20)" ;;
    run-two-node) echo "scripts/run-two-node.sh --no-build --frames $([ "$long" = 1 ] && echo 100000 || echo 20)" ;;
    soak) echo "scripts/soak.sh --seconds $([ "$long" = 1 ] && echo 600 || echo 5) --clients 4" ;;
    bench) echo "scripts/bench.sh --quick --rows $([ "$long" = 1 ] && echo alloc,handoff,pipeline || echo alloc) --out $work/bench" ;;
    fuzz) echo "scripts/fuzz.sh --seconds $([ "$long" = 1 ] && echo 600 || echo 2) remote" ;;
  esac
}

# The programs whose running together shows that the script is in the middle of its work (and,
# for the fuzzer, has made the segments its stop must not leave behind). (run.sh also runs
# cafshm-pipeline briefly before it starts cafshmd, to read the engine's address.)
busy_programs() {
  case "$1" in
    run|run-two-node) echo cafshmd cafshm-pipeline ;;
    soak) echo cafshmd cafshm-stress-client ;;
    bench) echo cafshm-bench cafshmd ;;
    fuzz) echo fuzz_remote ;;
  esac
}

# True if the script is busy: all its busy programs run.
busy() { # script
  local program pid
  for program in $(busy_programs "$1"); do
    [ -n "$(checkout_processes "$program")" ] || return 1
  done
  if [ "$1" = fuzz ]; then
    pid=$(checkout_processes fuzz_remote | head -1 | cut -d' ' -f1)
    [ -e "/dev/shm/cafshm-fuzz-remote-$pid.admin" ] || return 1
  fi
  return 0
}

# Pids of the processes running a program of this checkout's build directories ($1: only that
# program). Zombies have no exe link and do not count.
checkout_processes() {
  find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/exe' -lname "$root/build*/bin/${1:-}*" \
    -printf '%h %l\n' 2>/dev/null | sed 's|^/proc/||' || true # (some links are unreadable)
}

# Segments the scripts' programs make: the demo's and the two-node engines' fixed names, and
# names that carry the pid of the program that made them. One that appeared during a run and
# whose program (if named) is gone was left behind.
# An engine's objects: its arena (.data, .data.N as it grows), its admin segment, its door
# (.sock) and the processes' inboxes (.inbox-N, .actors-N).
engine_object='(\.data(\.[0-9]+)?|\.admin|\.sock|\.inbox-[0-9]+|\.actors-[0-9]+)'
script_segment() {
  [[ "$1" =~ ^cafshm-(pipeline|two-node-[ab])$engine_object$ ]] && return 0
  [[ "$1" =~ ^cafshm-(soak|bench|fuzz)-([a-z-]*-)?([0-9]+)(-[0-9]+)?$engine_object?$ ]] || return 1
  ! kill -0 "${BASH_REMATCH[3]}" 2>/dev/null
}
segments_before=""
new_segments() {
  local name
  for name in $(ls /dev/shm); do
    grep -qxF "$name" <<<"$segments_before" && continue
    script_segment "$name" && echo "$name"
  done
  return 0
}

check_nothing_left() { # what was run
  local left
  left=$(checkout_processes)
  [ -z "$left" ] || fail "after $1, processes are left: $left"
  # The bench's iceoryx baseline starts a RouDi of its own (none ran before: checked below).
  left=$(pgrep -x iox-roudi || true)
  [ -z "$left" ] || fail "after $1, iox-roudi is left: $left"
  left=$(new_segments)
  [ -z "$left" ] || fail "after $1, segments are left in /dev/shm: $left"
}

work=$(mktemp -d)
job=""
# Also when this check fails midway: the script under test is stopped as Ctrl-C would.
trap '[ -z "$job" ] || { kill -INT -- "-$job"; wait "$job"; } 2>/dev/null; rm -rf "$work"' EXIT
[ -z "$(checkout_processes)" ] || fail "programs of $root are running already: $(checkout_processes)"
! pgrep -x iox-roudi >/dev/null || fail "an iox-roudi is running already (the bench starts its own)"

for s in "${scripts[@]}"; do
  short=$(command_of "$s" short)
  long=$(command_of "$s" long)
  start=$SECONDS
  segments_before=$(ls /dev/shm)

  for n in 1 2; do
    $short >"$work/out" 2>&1 || { tail -30 "$work/out"; fail "$short (run $n) failed"; }
    check_nothing_left "$short (run $n)"
  done

  for stop in SIGINT timeout; do
    if [ "$stop" = SIGINT ]; then
      # A shell starts background commands with SIGINT ignored when it has no job control
      # (e.g. this check run by nohup or CI): what Ctrl-C does needs it back.
      env --default-signal=INT $long >"$work/out" 2>&1 &
    else
      timeout -s TERM 3600 $long >"$work/out" 2>&1 &
    fi
    job=$!
    # Wait (at most 120 s) until the script is in the middle of its work.
    in_middle=0
    for _ in $(seq 1200); do
      if busy "$s"; then in_middle=1; break; fi
      kill -0 "$job" 2>/dev/null || break
      sleep 0.1
    done
    [ "$in_middle" -eq 1 ] \
      || { tail -30 "$work/out"; fail "$long did not get to running $(busy_programs "$s")"; }
    if [ "$stop" = SIGINT ]; then
      kill -INT -- "-$job" # the whole process group, as Ctrl-C in a terminal
    else
      kill -TERM "$job" # timeout passes it on to the script and its process group
    fi
    status=0
    wait "$job" || status=$?
    job=""
    [ "$status" -ne 0 ] || fail "$long, stopped by $stop, exited with 0"
    check_nothing_left "$long, stopped by $stop (exit status $status)"
  done
  say "$s: nothing left after 2 runs and 2 stops ($((SECONDS - start)) s)"
done
say "all clean: ${scripts[*]}"
