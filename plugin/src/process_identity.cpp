#include "process_identity.hpp"

#include <fstream>
#include <sstream>
#include <string>

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cafshm {

std::optional<uint64_t> start_ticks_of(pid_t pid) {
  if (pid <= 0)
    return std::nullopt;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(in, line))
    return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from
  // the last ')'. After it: field 3 (state) is the first, field 22 (starttime) the 20th.
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream fields{line.substr(close + 1)};
  std::string state;
  fields >> state;
  if (state.empty() || state == "Z" || state == "X")
    return std::nullopt; // exited: a zombie counts as dead
  std::string skip;
  for (int field = 4; field < 22; ++field)
    fields >> skip;
  uint64_t ticks = 0;
  if (!(fields >> ticks))
    return std::nullopt;
  return ticks;
}

std::optional<std::pair<uid_t, gid_t>> effective_ids_of(pid_t pid) {
  if (pid <= 0)
    return std::nullopt;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields{line};
    std::string key;
    uint64_t real = 0, effective = 0;
    if (!(fields >> key >> real >> effective))
      continue;
    if (key == "Uid:")
      uid = static_cast<uid_t>(effective);
    else if (key == "Gid:")
      gid = static_cast<gid_t>(effective);
  }
  if (!uid || !gid)
    return std::nullopt;
  return std::pair{*uid, *gid};
}

int open_pidfd(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

std::optional<pid_t> pid_of_pidfd(int pidfd) {
  if (pidfd < 0)
    return std::nullopt;
  std::ifstream in{"/proc/self/fdinfo/" + std::to_string(pidfd)};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields{line};
    std::string key;
    long long pid = 0;
    if (fields >> key && key == "Pid:" && fields >> pid)
      return static_cast<pid_t>(pid);
  }
  return std::nullopt;
}

bool has_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

} // namespace cafshm
