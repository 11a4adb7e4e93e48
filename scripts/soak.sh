#!/usr/bin/env bash
# Soak test: scripts/soak.sh --minutes N [--clients 8] [--seed S] [--kill-every-ms 3000]
#                             [--engine-kill-every-ms N]  (also kill and restart cafshmd)
#            (--seconds N instead of --minutes for a short run)
# Builds cafshmd and the soak programs (into build/, or $CAFSHM_BUILD_DIR, e.g. build-asan), then
# runs tests/helpers/cafshm-soak.cpp: a cafshmd, 8 clients allocating, writing, handing blocks to
# each other with XXH3 checksums and freeing, random SIGKILLs and restarts of clients; at the end
# exact accounting, no checksum mismatch and no stale segment. Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CAFSHM_BUILD_DIR:-$root/build}
case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac
"$root/scripts/setup.sh"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="${CAFSHM_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
fi
cmake --build "$dir" -j"$(nproc)" --target cafshmd cafshm-stress-client cafshm-soak >/dev/null
source "$root/scripts/lib/process-groups.bash"
start_group "$dir/bin/cafshm-soak" "$@"
soak=$!
# What cafshm-soak removes itself when it ends normally, in case it was stopped: its config
# file and the objects of its engine (cafshmd removes them on SIGTERM, not on SIGKILL, which the
# soak itself sends it): arena, added data segments, admin memory, door, and the processes'
# request and actor inboxes.
on_exit "rm -f '${TMPDIR:-/tmp}/cafshm-soak-$soak.yaml' /dev/shm/cafshm-soak-$soak.data /dev/shm/cafshm-soak-$soak.data.* /dev/shm/cafshm-soak-$soak.admin /dev/shm/cafshm-soak-$soak.sock /dev/shm/cafshm-soak-$soak.inbox-* /dev/shm/cafshm-soak-$soak.actors-*"
wait_group "$soak"
