// The engine's local door: a Unix-domain socket through which processes of this host get a
// ticket to register. The kernel tells the door who knocks (SO_PEERCRED: uid, gid and pid in
// the engine's pid namespace); the door checks them against the policy below, takes a pidfd of
// the process that connected (SO_PEERPIDFD; pidfd_open of the pid on kernels before 6.5), checks
// that it names that pid and that the process has not exited (the engine's liveness check
// watches it), and answers a ticket of the ticket office that stands for these credentials. The
// engine actor trusts a registration only through such a ticket.
//
// Policy, applied twice: by the socket file's mode (0600 when only the engine's user may
// knock; 0660 with engine.group as its group when that group is set and no allow-list is;
// 0666 when engine.allow_users or engine.allow_groups name others, whose check is then the
// door's) and by the door itself: root, the engine's user, members of engine.group, and the
// users and members of the groups of the allow-lists.
//
// One thread serves the door; a knock that does not send its line within 1 s is dropped.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <thread>

#include <sys/types.h>

#include <caf/expected.hpp>

#include "cafshm/settings.hpp"
#include "ticket_office.hpp"

namespace cafshm {

class local_door {
public:
  /// Path of the door of an engine: engine.socket, or /dev/shm/<engine.name>.sock.
  static std::string path_of(const engine_settings& s);

  /// Binds the socket (a stale socket of a dead engine of this user is replaced; anything
  /// else at the path is an error) and starts serving.
  static caf::expected<std::unique_ptr<local_door>> open(const engine_settings& s,
                                                         std::shared_ptr<ticket_office> office);

  ~local_door(); // stops the thread, closes and removes the socket

  const std::string& path() const noexcept { return path_; }

  /// Whether a caller with these credentials may register (the door's own check).
  bool admits(uid_t uid, gid_t gid) const;

private:
  local_door() = default;
  void serve();
  void answer(int fd);

  std::string path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1; // eventfd: wakes the thread to stop
  uid_t engine_uid_ = 0;
  std::set<uid_t> users_;
  std::set<gid_t> groups_;
  std::shared_ptr<ticket_office> office_;
  std::thread thread_;
};

} // namespace cafshm
