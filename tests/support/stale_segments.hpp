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

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

namespace cafshm::test {

namespace detail {

inline bool all_digits(std::string_view s, size_t max_len = std::string_view::npos) {
  return !s.empty() && s.size() <= max_len
         && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// One of .data .data.<i> .admin .sock .inbox-<slot> .actors-<slot>, without the dot.
inline bool segment_suffix(std::string_view s) {
  auto numbered = [&](std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix && all_digits(s.substr(prefix.size()));
  };
  return s == "data" || s == "admin" || s == "sock" || numbered("data.") || numbered("inbox-")
         || numbered("actors-");
}

// "<what>-<pid>" with what of [A-Za-z0-9_-]+ and pid of 1 to 9 digits: the pid, else nothing.
inline std::optional<pid_t> what_and_pid(std::string_view s) {
  auto dash = s.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || !all_digits(s.substr(dash + 1), 9))
    return std::nullopt;
  auto what = s.substr(0, dash);
  if (!std::all_of(what.begin(), what.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
               || c == '_' || c == '-';
      }))
    return std::nullopt;
  return static_cast<pid_t>(std::stol(std::string{s.substr(dash + 1)}));
}

} // namespace detail

/// The pid in a test or fuzz segment name, or nothing for any other name.
inline std::optional<pid_t> test_segment_owner(const std::string& name) {
  std::string_view n{name};
  auto dot = n.find('.'); // no '.' before the suffix: <what> has none
  auto base = n.substr(0, dot);
  if (dot != std::string_view::npos && !detail::segment_suffix(n.substr(dot + 1)))
    return std::nullopt;
  if (base.substr(0, 12) == "cafshm-test-") { // <what>-<pid>-<n>, suffix optional
    auto dash = base.rfind('-');
    if (dash == std::string_view::npos || dash < 12 || !detail::all_digits(base.substr(dash + 1)))
      return std::nullopt;
    return detail::what_and_pid(base.substr(12, dash - 12));
  }
  if (base.substr(0, 12) == "cafshm-fuzz-" && dot != std::string_view::npos) // suffix required
    return detail::what_and_pid(base.substr(12));
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
