// The way to one other local process's actor inbox (actor_record.hpp): the writer of its
// "<engine>.actors-<slot>" object, shared by every proxy of that process's actors, and the
// serialisation of the records that go there. One sender at a time (a mutex): records of one
// sending actor to that process arrive in the order it sent them.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/node_id.hpp>

#include "fastpath/actor_record.hpp"
#include "fastpath/inbox_writer.hpp"

namespace cafshm::fastpath {

/// The process id in `node` (what the owner of its actor inbox must be), 0 for none or a node id
/// of another kind. (The host part is no help: CAF gives each actor system of a process a host
/// id of its own, counting up from the machine's.)
uint32_t pid_of(const caf::node_id& node);

class peer_route {
public:
  /// How long a sender waits for space in a full actor inbox before the message fails.
  static constexpr std::chrono::milliseconds send_wait{1000};

  peer_route(inbox_writer writer, caf::node_id node, uint32_t slot)
    : writer_(std::move(writer)), node_(std::move(node)), slot_(slot) {
  }

  const caf::node_id& node() const noexcept { return node_; }
  uint32_t slot() const noexcept { return slot_; }
  int32_t owner_pid() const noexcept { return writer_.owner_pid(); }

  /// A message record for actor `receiver` of that process. Errors: the serialiser's, or
  /// inbox_writer::send's (full for send_wait, too large).
  caf::error send_message(caf::actor_system& sys, const caf::strong_actor_ptr& sender,
                          caf::message_id mid, const std::vector<caf::strong_actor_ptr>& stages,
                          caf::actor_id receiver, const caf::message& content);
  /// A watch record: this process (`here`) holds a proxy of that process's actor `watched`.
  caf::error send_watch(caf::actor_system& sys, caf::actor_id watched);
  /// A down record: this process's actor `ended` ended for `reason`.
  caf::error send_down(caf::actor_system& sys, caf::actor_id ended, const caf::error& reason);

private:
  caf::error append(const std::vector<char>& buf);

  std::mutex mtx_;
  inbox_writer writer_; // guarded by mtx_
  caf::node_id node_;   // constant
  uint32_t slot_;       // constant
};

} // namespace cafshm::fastpath
