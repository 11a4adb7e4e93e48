// The engine's part in actor messages over inboxes (actor_record.hpp): when it reclaims a
// process (unregistration, death), it removes that process's actor inbox and tells every other
// live process that has an actor inbox, so that they kill their proxies of its actors
// (remote_link_unreachable), as BASP does when a connection is lost.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cafshm/process_id.hpp"

namespace cafshm::fastpath {

/// Removes the actor inbox of `gone` (pid `pid`) of engine `engine_name` and appends a
/// process_gone record (sender slot 0) to the actor inbox of each of `others` that has one.
/// Never waits: a full inbox loses the notice (its process then keeps its proxies until it
/// learns otherwise). Returns how many notices were written.
size_t announce_process_gone(const std::string& engine_name, uint32_t gone, int32_t pid,
                             const std::vector<process_id>& others);

} // namespace cafshm::fastpath
