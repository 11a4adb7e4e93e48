// Removal of the shared-memory segments that test and fuzz processes left in /dev/shm because
// they died before their guards ran (a crash, SIGKILL, a run stopped by `timeout`). Each such name
// carries the pid of the process that made it; a segment is stale once that process is gone.
// Every test process and every fuzz target sweeps them at its start, so one stopped run does not
// leave memory behind for good.
//
// Only names of these two forms are touched (anything else in /dev/shm, including other engines'
// segments, is left alone):
//   cafshm-test-<what>-<pid>-<n>[.data|.data.<i>|.admin|.sock|.inbox-<slot>|.actors-<slot>]
//                                                      tests (test_names.hpp, daemon_process.hpp)
//   cafshm-fuzz-<what>-<pid>.data|.data.<i>|.admin|.sock|.inbox-<slot>|.actors-<slot>
//                                                      the engines fuzz targets run in-process
// The pid is checked in this process's PID namespace: processes sharing /dev/shm from another
// PID namespace (a container) must not use these names.
#pragma once

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <system_error>

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

namespace cafshm::test {

/// The pid in a test or fuzz segment name, or nothing for any other name.
inline std::optional<pid_t> test_segment_owner(const std::string& name) {
  static const std::regex test_name{R"(cafshm-test-[A-Za-z0-9_-]+-([0-9]{1,9})-[0-9]+(\.data|\.data\.[0-9]+|\.admin|\.sock|\.inbox-[0-9]+|\.actors-[0-9]+)?)"};
  static const std::regex fuzz_name{R"(cafshm-fuzz-[A-Za-z0-9_-]+-([0-9]{1,9})\.(data|data\.[0-9]+|admin|sock|inbox-[0-9]+|actors-[0-9]+))"};
  std::smatch m;
  if (std::regex_match(name, m, test_name) || std::regex_match(name, m, fuzz_name))
    return static_cast<pid_t>(std::stol(m[1].str()));
  return std::nullopt;
}

/// True if a process with this pid exists (also one of another user: EPERM).
inline bool process_exists(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

/// Removes every test or fuzz segment in /dev/shm whose maker's pid satisfies `remove`;
/// returns how many.
template <class Predicate>
int remove_test_segments_if(Predicate remove) {
  int removed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator i{"/dev/shm", ec}, end; !ec && i != end; i.increment(ec)) {
    auto name = i->path().filename().string();
    auto owner = test_segment_owner(name);
    if (owner && remove(*owner) && ::shm_unlink(("/" + name).c_str()) == 0)
      ++removed;
  }
  return removed;
}

/// Removes every test or fuzz segment in /dev/shm whose process is gone; returns how many.
inline int remove_stale_test_segments() {
  return remove_test_segments_if([](pid_t owner) { return !process_exists(owner); });
}

/// Removes every test or fuzz segment in /dev/shm that this process made; returns how many.
/// For a process about to exit whose engine it never stops: mappings stay valid, only the
/// names go.
inline int remove_own_test_segments() {
  return remove_test_segments_if([](pid_t owner) { return owner == ::getpid(); });
}

} // namespace cafshm::test
