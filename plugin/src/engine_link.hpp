// A client's connection to its engine, shared by the client, the keeper actor that watches and
// restores it, and every view the client opened (which reports its close through it).
// Thread-safe: the client's callers, the keeper and view destructors use it at once.
//
//   up    requests go to engine()
//   down  the engine went away; requests fail at once with errc::engine_unreachable while the
//         keeper reconnects in the background; views stay mapped, their closes are queued and
//         sent once the session is re-attached
//   gone  the engine came back without this process's session (it started fresh, or reclaimed
//         the slot): requests fail with the reason, for good
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/protocol.hpp"

namespace cafshm::fastpath {
class request_channel;
}

namespace cafshm::detail {

class engine_link {
public:
  enum class status : uint8_t { up, down, gone };

  engine_link(engine_actor engine, uint32_t slot);

  engine_actor engine() const;
  status state() const;

  /// Why requests cannot be sent now (engine_unreachable while down, the reason once gone);
  /// an empty error when up.
  caf::error unavailable() const;

  /// Tells the engine that the view of `ref` is closed: now, or after re-attaching.
  void detach(const session& s, const block_ref& ref);

  /// The engine went away (only the engine `from` counts; a later one stays up).
  void went_down(const caf::actor_addr& from);
  /// Re-attached to `engine`: queued closes are sent, observers hear engine_up_atom.
  void came_up(engine_actor engine);
  /// The session is lost for good (`why`: engine_restarted or unknown_process).
  void lost(caf::error why);

  /// `observer` hears (engine_down_atom | engine_up_atom | engine_gone_atom, slot) on every
  /// change from now on.
  void add_observer(caf::actor observer);

  /// The client's fast path (or none): told when the engine goes down (its waiting calls fail
  /// at once) and comes back (it re-opens the engine's request inbox).
  void set_channel(std::shared_ptr<fastpath::request_channel> channel);

private:
  template <class Atom>
  void notify_locked(Atom atom);

  mutable std::mutex mtx_;
  engine_actor engine_;
  uint32_t slot_;
  status status_ = status::up;
  caf::error lost_;
  std::vector<std::pair<session, block_ref>> pending_detaches_;
  std::vector<caf::actor> observers_;
  std::shared_ptr<fastpath::request_channel> channel_;
};

} // namespace cafshm::detail
