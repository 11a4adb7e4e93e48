// A client's connection to its engine, shared by the client, the keeper actor that watches and
// restores it, and every view the client opened (which reports its close through it).
// Thread-safe: the client's callers, the keeper and view destructors use it at once.
//
//   up    requests go to engine()
//   down  the engine went away; requests fail at once with errc::engine_unreachable while the
//         keeper reconnects in the background; requests that were on their way get that answer
//         at once too; views stay mapped; their closes and the frees of a closed pool are
//         queued and sent once the session is re-attached
//   gone  the engine came back without this process's session (it started fresh, or reclaimed
//         the slot): requests fail with the reason, for good
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/message_id.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/protocol.hpp"

namespace cafshm::fastpath {
class request_channel;
}

namespace cafshm {
class client;
}

namespace cafshm::detail {

class engine_link {
public:
  enum class status : uint8_t { up, down, gone };

  engine_link(engine_actor engine, process_id process);

  engine_actor engine() const;
  status state() const;

  /// Why requests cannot be sent now (engine_unreachable while down, the reason once gone);
  /// an empty error when up.
  caf::error unavailable() const;

  /// Tells the engine that the view of `ref` is closed: now, or after re-attaching.
  void unmap(const session& s, const block_ref& ref);
  /// Tells the engine to free `ref`, without waiting for the answer: now, or after
  /// re-attaching.
  void free(const session& s, const block_ref& ref);

  /// Notes a request that `requester` sent to `engine` and whose answer will carry `response`
  /// (its response_handle's id). Should that engine go down before the answer, the requester
  /// gets errc::engine_unreachable as the answer at once, the way CAF delivers a request
  /// timeout; the real answer, should one still come, is dropped like a late one after a
  /// timeout. Returns a number for answered(), or the error to give now when `engine` is not
  /// the engine that is up.
  caf::expected<uint64_t> awaiting(const caf::actor_addr& requester, caf::message_id response,
                                   const caf::actor_addr& engine);
  /// The request noted under `ticket` got its answer.
  void answered(uint64_t ticket);

  /// The engine went away (only the engine `from` counts; a later one stays up).
  void went_down(const caf::actor_addr& from);
  /// Re-attached to `engine`, which offers its request inbox or not (`inbox_offered`): queued
  /// closes are sent, observers hear engine_up_atom.
  void came_up(engine_actor engine, bool inbox_offered);
  /// The session is lost for good (`why`: engine_restarted or unknown_process).
  void lost(caf::error why);

  /// `observer` hears (engine_down_atom | engine_up_atom | engine_gone_atom, process) on every
  /// change from now on.
  void add_observer(caf::actor observer);

  /// The client's fast path (or none): told when the engine goes down (its waiting calls fail
  /// at once) and comes back (it re-opens the engine's request inbox).
  void set_channel(std::shared_ptr<fastpath::request_channel> channel);

private:
  template <class Atom>
  void notify_locked(Atom atom);
  void send_locked(bool free, const session& s, const block_ref& ref);

  struct pending_message {
    bool free; // free_atom, else unmap_atom
    session s;
    block_ref ref;
  };

  struct request_in_flight {
    uint64_t ticket;
    caf::actor_addr requester;
    caf::message_id response;
  };

  mutable std::mutex mtx_;
  engine_actor engine_;
  process_id process_;
  status status_ = status::up;
  caf::error lost_;
  std::vector<pending_message> pending_;     // while down, in the order they were made
  std::vector<request_in_flight> in_flight_; // to the engine that is up
  uint64_t next_ticket_ = 1;
  std::vector<caf::actor> observers_;
  std::shared_ptr<fastpath::request_channel> channel_;
};

/// The link of `c` (shared with the pools it made, which outlive engine restarts with it).
std::shared_ptr<engine_link> link_of(const client& c);

} // namespace cafshm::detail
