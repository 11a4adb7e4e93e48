// Tickets of the local door: what the door (door.cpp) vouched for about a process that knocked,
// handed to the engine actor in process memory, never through a message. A ticket is a random
// 128-bit secret, good for one registration, for `lifetime`; at most `capacity` are open.
// Thread-safe: the door's thread issues, the engine actor redeems.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <sys/types.h>

#include "cafshm/protocol.hpp"

namespace cafshm {

/// What the kernel told the door about a caller (SO_PEERCRED), pids in the engine's namespace.
/// `pidfd` (-1 if none) is owned by whoever holds the credentials. `pidfd_of_connection`: it
/// came with the connection (SO_PEERPIDFD) and so names the very process that connected;
/// otherwise it is pidfd_open of `pid`, which names whoever had that pid when the door asked.
struct peer_credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  int pidfd = -1;
  bool pidfd_of_connection = false;
};

class ticket_office {
public:
  explicit ticket_office(size_t capacity = 1024,
                         std::chrono::milliseconds lifetime = std::chrono::seconds(30));
  ~ticket_office(); // closes the pidfds of unredeemed tickets

  ticket_office(const ticket_office&) = delete;
  ticket_office& operator=(const ticket_office&) = delete;

  /// A ticket for `creds` (takes its pidfd), or nullopt when `capacity` tickets are open.
  std::optional<door_ticket> issue(peer_credentials creds);

  /// The credentials of `t` (the caller now owns the pidfd); nullopt if it was never issued,
  /// was redeemed already or expired.
  std::optional<peer_credentials> redeem(const door_ticket& t);

  size_t open_tickets();

private:
  struct entry {
    uint64_t secret = 0;
    peer_credentials creds;
    std::chrono::steady_clock::time_point expires;
  };
  void expire_locked(std::chrono::steady_clock::time_point now);

  std::mutex mtx_;
  size_t capacity_;
  std::chrono::milliseconds lifetime_;
  std::unordered_map<uint64_t, entry> open_; // by ticket id
};

} // namespace cafshm
