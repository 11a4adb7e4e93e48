#!/usr/bin/env bash
# The demo, from a fresh checkout: installs what is missing, builds, starts a cafshmd on
# config/pipeline.yaml, runs the pipeline (producer -> transformer -> sink, three processes,
# 1920x1080 RGB frames) once with frames in cafshm shared-memory blocks and once with frames in
# plain CAF messages, and prints both result lines and the speed-up. Stops cafshmd again, also
# on failure or Ctrl-C. Exits non-zero if anything failed.
#
# usage: scripts/run.sh [--frames N] [--no-build]
#   --frames N   frames per run (default 300)
#   --no-build   skip scripts/setup.sh and scripts/build.sh (use the existing build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config="$root/config/pipeline.yaml"
bin="$root/build/bin"
frames=300
build=1

while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=${2:?--frames needs a number}; shift 2 ;;
    --frames=*) frames=${1#--frames=}; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$frames" in ''|*[!0-9]*) echo "run.sh: --frames needs a number" >&2; exit 2 ;; esac

fail() {
  echo "run.sh: $*" >&2
  exit 1
}

if [ "$build" -eq 1 ]; then
  "$root/scripts/setup.sh"
  "$root/scripts/build.sh"
fi
for program in cafshmd cafshm-pipeline; do
  [ -x "$bin/$program" ] || fail "$bin/$program is missing (run without --no-build)"
done

# The engine endpoint that config/pipeline.yaml names; refuse to start a second engine on it.
endpoint=$("$bin/cafshm-pipeline" --config "$config" --print-engine) || fail "bad $config"
host=${endpoint%:*}
port=${endpoint##*:}
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  fail "something already listens on $endpoint, probably a cafshmd from an earlier run" \
       "(see: pgrep -a cafshmd); stop it first"
fi

source "$root/scripts/lib/process-groups.bash"
work=$(mktemp -d)
on_exit 'exec 3<&- 2>/dev/null; rm -rf "$work"' # only after cafshmd stopped: it writes a last line

# Start cafshmd and wait (at most 20 s) for its "listening" line, read through a FIFO (opened
# read-write here, which does not wait for a writer; kept open until cafshmd has stopped).
mkfifo "$work/cafshmd.out"
exec 3<>"$work/cafshmd.out"
start_group "$bin/cafshmd" --config "$config" >"$work/cafshmd.out" 2>"$work/cafshmd.err"
if ! read -r -t 20 -u 3 line || [[ "$line" != "cafshmd listening on "* ]]; then
  cat "$work/cafshmd.err" >&2
  fail "cafshmd did not start (see above)"
fi
echo "run.sh: ${line}; $frames frames of 1920x1080 per run" >&2

run() { # transport: runs the pipeline; its result line goes to $work/<transport>.out
  start_group "$bin/cafshm-pipeline" --transport "$1" --frames "$frames" --config "$config" \
    >"$work/$1.out"
  wait_group "$!" || fail "the pipeline with --transport $1 failed"
}
run shm
shm=$(<"$work/shm.out")
echo "$shm"
run caf
caf=$(<"$work/caf.out")
echo "$caf"

fps() { sed -n 's/.* fps=\([0-9.]*\).*/\1/p' <<<"$1"; }
speedup=$(awk -v s="$(fps "$shm")" -v c="$(fps "$caf")" \
  'BEGIN { if (c <= 0) exit 1; printf "%.1f", s / c }') || fail "cannot compute the speed-up"
echo "shm/caf speedup: ${speedup}x"
stop_groups
echo "run.sh: pipeline done, $frames frames each way: $(fps "$shm") fps through cafshm" \
  "shared memory, $(fps "$caf") fps through plain CAF messages (${speedup}x); cafshmd stopped"
