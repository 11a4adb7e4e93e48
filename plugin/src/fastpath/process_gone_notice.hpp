// The engine's part in actor messages over inboxes (actor_record.hpp): when it reclaims a
// process (unregistration, death), it removes that process's actor inbox and tells every other
// live process that has an actor inbox, so that they kill their proxies of its actors
// (remote_link_unreachable), as BASP does when a connection is lost.
//
// The engine never waits for space in an actor inbox. A notice that finds the receiver's inbox
// full is kept and written again by retry() (the engine's liveness tick) until it is written or
// the receiver is itself reclaimed (receiver_gone): without it, that process would keep the
// proxies of the dead process's actors, and their monitors would never hear of the end.
// Memory: at most one kept notice per (receiver slot, gone slot), so at most max_processes²;
// should the gone slot be reclaimed a second time (another process) while a notice for it is
// still kept for the same receiver, the kept notice names no pid any more (pid 0), and the
// receiver then ends every route to that slot.
// Used by the engine's thread only (not thread-safe).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cafshm/process_id.hpp"

namespace cafshm::fastpath {

class process_gone_notices {
public:
  explicit process_gone_notices(std::string engine_name) : engine_name_(std::move(engine_name)) {
  }

  /// Removes the actor inbox of `gone` (pid `pid`) and appends a process_gone record (sender
  /// slot 0) to the actor inbox of each of `others` that has one; a full one gets it later.
  /// Returns how many notices were written now.
  size_t announce(uint32_t gone, int32_t pid, const std::vector<process_id>& others);

  /// Writes the kept notices again; returns how many were written now (and are forgotten).
  size_t retry();

  /// Process `slot` was reclaimed: notices kept for it are forgotten (counted as dropped).
  void receiver_gone(uint32_t slot);

  size_t pending() const noexcept { return kept_.size(); }
  uint64_t delivered_late() const noexcept { return delivered_late_; } // written by retry()
  uint64_t dropped() const noexcept { return dropped_; } // forgotten by receiver_gone()

private:
  enum class outcome { written, no_inbox, full };
  outcome write(uint32_t receiver, uint32_t gone, int32_t pid) const;

  std::string engine_name_;
  std::map<std::pair<uint32_t, uint32_t>, int32_t> kept_; // (receiver, gone) -> pid (0: any)
  uint64_t delivered_late_ = 0;
  uint64_t dropped_ = 0;
};

} // namespace cafshm::fastpath
