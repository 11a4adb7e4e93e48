# Sourced by the scripts that start processes, so that nothing they start outlives them.
#
#   start_group CMD [ARGS...]   runs CMD in the background as the leader of a new process group
#                               (setsid) and records it; $! is its pid.
#   wait_group PID              waits for the program started so (its pid, $!) to end; returns
#                               its exit status.
#   stop_groups                 SIGTERM to every recorded group (the program and everything it
#                               started), up to 20 s for them to end, then SIGKILL; reaps them.
#   on_exit CMD                 CMD runs on every exit, after stop_groups (e.g. removing files);
#                               $status is the exit status there.
#
# Sourcing installs the traps: on a normal end, an error (set -e), SIGINT, SIGTERM or SIGHUP
# (e.g. from `timeout`) the script stops its groups and exits (130/143/129 for the signals).
# A signal during that clean-up does nothing: a stop often comes twice (`timeout` signals the
# script and then its whole process group), and the clean-up is bounded (stop_groups kills after
# 20 s). The signal traps stay set throughout: bash ends itself when a signal that arrived while
# its trap ran finds the trap reset to the default.
# A script waits for a group with wait_group, which a signal interrupts within 0.1 s (a foreground
# command would delay the trap until it ends). It polls rather than using `wait` on the running
# program: bash leaves `wait` on a trapped signal by a jump out of its signal handler, and a second
# signal soon after (`timeout` sends two) jumps again into the `wait` that has returned; bash then
# dies, or crashes, before its traps run, and leaves the programs running.
# Programs started so get /dev/null as standard input and no controlling terminal: Ctrl-C
# reaches the script, which stops them.

process_groups=()
exit_actions=()
cleaning_up=0

start_group() {
  setsid "$@" &
  process_groups+=("$!")
}

wait_group() {
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
  wait "$1" # ended: returns its status at once
}

# True while any process of group $1 exists (the shell reaps its own children as they end).
group_alive() {
  kill -0 -- "-$1" 2>/dev/null
}

stop_groups() {
  local pid alive
  for pid in "${process_groups[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for _ in $(seq 200); do
    alive=0
    for pid in "${process_groups[@]}"; do
      if group_alive "$pid"; then alive=1; fi
    done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${process_groups[@]}"; do
    if group_alive "$pid"; then
      echo "$(basename "$0"): process group $pid did not stop on SIGTERM within 20 s, killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  process_groups=()
  return 0
}

on_exit() {
  exit_actions+=("$1")
}

process_groups_exit() {
  local status=$? action
  set +e
  cleaning_up=1
  trap - EXIT
  stop_groups
  for action in "${exit_actions[@]}"; do eval "$action"; done
  exit "$status"
}
trap process_groups_exit EXIT
exit_on_signal() { # exit status
  [ "$cleaning_up" -eq 1 ] || exit "$1"
}
trap 'exit_on_signal 130' INT
trap 'exit_on_signal 143' TERM
trap 'exit_on_signal 129' HUP
