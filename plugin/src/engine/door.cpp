#include "door.hpp"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "cafshm/error.hpp"
#include "door_protocol.hpp"
#include "process_identity.hpp"
#include "unix_identity.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 // Linux >= 6.5; Debian 12's headers predate it
#endif

namespace cafshm {

namespace {

std::string os_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Groups of the user `uid` (primary and supplementary), from the user database.
std::vector<gid_t> groups_of(uid_t uid, gid_t gid) {
  std::vector<gid_t> out{gid};
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    return out;
  int n = 64;
  std::vector<gid_t> gs(static_cast<size_t>(n));
  if (::getgrouplist(pw.pw_name, pw.pw_gid, gs.data(), &n) < 0) {
    gs.resize(static_cast<size_t>(n));
    if (::getgrouplist(pw.pw_name, pw.pw_gid, gs.data(), &n) < 0)
      return out;
  }
  gs.resize(static_cast<size_t>(n));
  out.insert(out.end(), gs.begin(), gs.end());
  return out;
}

// A pidfd of the process at the other end of the door's connection `fd`, whose SO_PEERCRED pid
// is `pid`, or why the door cannot watch it. SO_PEERPIDFD (Linux >= 6.5) gives a pidfd of the
// process that connected, taken with the connection's credentials, so it names that process
// even if it has exited and its pid was given to another process since. Older kernels lack it
// (ENOPROTOOPT); then the door opens a pidfd of `pid`, which names whoever has that pid now:
// a caller that exits and whose pid is reused before this call is not detected there.
struct watched_peer {
  int pidfd = -1;
  bool of_connection = false;
  std::string refusal; // set when pidfd < 0
};

watched_peer watch_peer(int fd, pid_t pid) {
  watched_peer w;
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
    w.pidfd = pidfd;
    w.of_connection = true;
  } else if (errno == ENOPROTOOPT) {
    w.pidfd = open_pidfd(pid);
    if (w.pidfd < 0) {
      w.refusal = errno == ESRCH ? "the asking process has exited"
                                 : os_error("cannot watch the asking process");
      return w;
    }
  } else { // ESRCH, or EINVAL from kernels before 6.16 once the process was reaped
    w.refusal = os_error("the asking process has exited");
    return w;
  }
  auto named = pid_of_pidfd(w.pidfd);
  if (!named || *named != pid || has_exited(w.pidfd)) {
    if (!named)
      w.refusal = "cannot tell which process the kernel's pidfd of the asking process names";
    else if (*named > 0 && *named != pid)
      w.refusal = "the kernel's pidfd of the asking process names pid " + std::to_string(*named)
                  + ", its credentials pid " + std::to_string(pid);
    else
      w.refusal = "the asking process has exited";
    ::close(w.pidfd);
    w.pidfd = -1;
  }
  return w;
}

} // namespace

std::string local_door::path_of(const engine_settings& s) {
  return s.socket.empty() ? "/dev/shm/" + s.name + ".sock" : s.socket;
}

caf::expected<std::unique_ptr<local_door>>
local_door::open(const engine_settings& s, std::shared_ptr<ticket_office> office) {
  std::unique_ptr<local_door> d{new local_door};
  d->path_ = path_of(s);
  d->office_ = std::move(office);
  d->engine_uid_ = ::geteuid();
  gid_t group = static_cast<gid_t>(-1);
  if (!s.group.empty()) {
    if (auto g = group_id_of(s.group))
      d->groups_.insert(group = *g);
    else
      return make_error(errc::config_error, "engine.group '" + s.group + "' does not exist");
  }
  for (const auto& u : s.allow_users) {
    auto uid = user_id_of(u);
    if (!uid)
      return make_error(errc::config_error, "engine.allow_users: no user '" + u + "'");
    d->users_.insert(*uid);
  }
  for (const auto& g : s.allow_groups) {
    auto gid = group_id_of(g);
    if (!gid)
      return make_error(errc::config_error, "engine.allow_groups: no group '" + g + "'");
    d->groups_.insert(*gid);
  }
  sockaddr_un addr{};
  if (d->path_.size() >= sizeof(addr.sun_path))
    return make_error(errc::config_error, "engine.socket '" + d->path_ + "' is too long");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, d->path_.c_str(), d->path_.size() + 1);
  struct stat st{};
  if (::lstat(d->path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || st.st_uid != d->engine_uid_)
      return make_error(errc::segment_error,
                        d->path_ + " exists and is not a socket of this user: remove it or "
                                   "choose another engine.socket");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0
                && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (probe >= 0)
      ::close(probe);
    if (live)
      return make_error(errc::segment_error, "another engine serves the door " + d->path_);
    ::unlink(d->path_.c_str()); // left behind by an engine that died
  }
  d->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (d->listen_fd_ < 0)
    return make_error(errc::segment_error, os_error("socket"));
  if (::bind(d->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return make_error(errc::segment_error, os_error("cannot bind the door " + d->path_));
  mode_t mode = 0600;
  if (!d->users_.empty() || !s.allow_groups.empty())
    mode = 0666; // others reach the socket; the door's own check decides
  else if (group != static_cast<gid_t>(-1))
    mode = 0660;
  if (group != static_cast<gid_t>(-1) && ::chown(d->path_.c_str(), static_cast<uid_t>(-1), group) != 0)
    return make_error(errc::segment_error, os_error("chown " + d->path_));
  if (::chmod(d->path_.c_str(), mode) != 0)
    return make_error(errc::segment_error, os_error("chmod " + d->path_));
  if (::listen(d->listen_fd_, 64) != 0)
    return make_error(errc::segment_error, os_error("listen " + d->path_));
  d->stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (d->stop_fd_ < 0)
    return make_error(errc::segment_error, os_error("eventfd"));
  d->thread_ = std::thread([p = d.get()] { p->serve(); });
  return d;
}

local_door::~local_door() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void) !::write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  if (stop_fd_ >= 0)
    ::close(stop_fd_);
}

bool local_door::admits(uid_t uid, gid_t gid) const {
  if (uid == 0 || uid == engine_uid_ || users_.count(uid) != 0)
    return true;
  if (groups_.empty())
    return false;
  for (auto g : groups_of(uid, gid))
    if (groups_.count(g) != 0)
      return true;
  return false;
}

void local_door::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (fds[1].revents != 0)
      return;
    if ((fds[0].revents & POLLIN) == 0)
      continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
      continue;
    answer(fd);
    ::close(fd);
  }
}

void local_door::answer(int fd) {
  auto reply = [fd](const std::string& line) {
    return ::send(fd, line.data(), line.size(), MSG_NOSIGNAL)
           == static_cast<ssize_t>(line.size());
  };
  // The request line, within 1 s.
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  char buf[door::max_line + 1];
  while (line.size() <= door::max_line && (line.empty() || line.back() != '\n')) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      return;
    line.append(buf, static_cast<size_t>(n));
  }
  auto version = door::parse_request(line);
  if (!version || *version != door::version) {
    reply(door::format_denial("unknown request (this door speaks cafshm-door "
                              + std::to_string(door::version) + ")"));
    return;
  }
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) {
    reply(door::format_denial("the kernel did not report who is asking"));
    return;
  }
  if (!admits(cred.uid, cred.gid)) {
    reply(door::format_denial("user " + std::to_string(cred.uid) + " may not use this engine"));
    return;
  }
  peer_credentials creds{cred.uid, cred.gid, cred.pid, -1, false};
  if (cred.pid != ::getpid()) {
    auto watched = watch_peer(fd, cred.pid);
    if (watched.pidfd < 0) {
      reply(door::format_denial(watched.refusal));
      return;
    }
    creds.pidfd = watched.pidfd;
    creds.pidfd_of_connection = watched.of_connection;
  }
  auto ticket = office_->issue(creds);
  if (!ticket) {
    reply(door::format_denial("too many open tickets; try again"));
    return;
  }
  if (!reply(door::format_ticket(*ticket))) // gone before it got its ticket: void it
    if (auto c = office_->redeem(*ticket); c && c->pidfd >= 0)
      ::close(c->pidfd);
}

} // namespace cafshm
