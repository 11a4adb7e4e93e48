# Sourced by the scripts that start processes, so that nothing they start outlives them.
#
#   start_group CMD [ARGS...]   runs CMD in the background as the leader of a new process group
#                               (setsid) and records it; $! is its pid.
#   stop_groups                 SIGTERM to every recorded group (the program and everything it
#                               started), up to 20 s for them to end, then SIGKILL; reaps them.
#   on_exit CMD                 CMD runs on every exit, after stop_groups (e.g. removing files).
#
# Sourcing installs the traps: on a normal end, an error (set -e), SIGINT, SIGTERM or SIGHUP
# (e.g. from `timeout`) the script stops its groups and exits (130/143/129 for the signals).
# A script that waits for a group does it with `wait`, which a trapped signal interrupts at once
# (a foreground command would delay the trap until it ends).
# Programs started so get /dev/null as standard input and no controlling terminal: Ctrl-C
# reaches the script, which stops them.

process_groups=()
exit_actions=()

start_group() {
  setsid "$@" &
  process_groups+=("$!")
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
  trap - EXIT INT TERM HUP
  stop_groups
  for action in "${exit_actions[@]}"; do eval "$action"; done
  exit "$status"
}
trap process_groups_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
