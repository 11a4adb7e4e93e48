// Who a pid is: its start time, read from /proc/PID/stat. A pid and its start time identify one
// process across pid reuse; admin memory records both at registration, so that an engine that
// adopts the segments of a dead engine (and a process that re-attaches to it) can tell a process
// that still runs from a later one that got its pid.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include <sys/types.h>

namespace cafshm {

/// Start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat, as the
/// engine's pid namespace sees it); nullopt if no such process runs or it is a zombie (it
/// has exited and only waits to be reaped).
std::optional<uint64_t> start_ticks_of(pid_t pid);

/// Effective uid and gid of process `pid` (the Uid: and Gid: lines of /proc/PID/status, as
/// SO_PEERCRED reports them); nullopt if no such process runs.
std::optional<std::pair<uid_t, gid_t>> effective_ids_of(pid_t pid);

/// pidfd_open(2) of `pid` (-1 with errno on failure). Through syscall(): Debian 12's
/// <sys/pidfd.h> lacks C linkage for C++. It names whatever process has `pid` at the moment of
/// the call.
int open_pidfd(pid_t pid);

/// The pid of the process `pidfd` refers to, as this process's /proc sees it (the "Pid:" line of
/// /proc/self/fdinfo/PIDFD): -1 once that process has been reaped; nullopt if `pidfd` is not a
/// pidfd.
std::optional<pid_t> pid_of_pidfd(int pidfd);

/// Whether the process behind `pidfd` has exited (the kernel makes a pidfd readable then; a
/// zombie has exited).
bool has_exited(int pidfd);

} // namespace cafshm
