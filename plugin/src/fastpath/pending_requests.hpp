// The requests that this process's actors sent through inbox_actor_proxies (actor_proxy.hpp)
// and that have no answer yet, one table per actor_transport shared by its proxies. Over BASP a
// request in flight to an actor whose process dies is ended only by its timeout; here, when a
// proxy is killed (a down record of its actor, the engine's process_gone notice, the end of
// the transport), every request sent through it and not answered yet gets
// sec::request_receiver_down at once, as CAF answers a request to an actor that is gone.
//
// An entry is made before the request's record is written (so that an answer read at once
// finds it) and removed when the answer comes back through this process's actor inbox
// (actor_inbox_reader), when the request itself comes back through it (delegated to an actor
// of this process, which answers here), when the record could not be written, or when the
// proxy is killed.
// Only requests of this process's own actors are kept: a request a proxy forwards for an actor
// of a third process is answered to that process directly, never through this inbox.
//
// An answer that arrives after its request was failed here is dropped, not delivered as a
// second response: the keys of failed requests are remembered (at most max_failed, oldest
// forgotten first; one whose answer came is forgotten at once).
//
// Memory: one entry per request in flight through a proxy, plus at most max_failed keys. A
// request whose actor never answers stays until its proxy is killed, also after its requester
// timed out; once the requester itself is gone, its entries go at the next sweep (add() sweeps
// whenever the table has doubled since the last one). Thread-safe: senders add on any thread,
// the inbox reader removes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message_id.hpp>
#include <caf/weak_intrusive_ptr.hpp>

namespace cafshm::fastpath {

class pending_requests {
public:
  /// How many keys of failed requests are remembered to drop their late answers.
  static constexpr size_t max_failed = 4096;

  /// What became of an answer (a response record) read from the actor inbox.
  enum class answer { expected, late, unknown };

  /// `requester` (an actor of this process) sent request `mid` through proxy `via` (an
  /// identity only, never dereferenced).
  void add(const caf::strong_actor_ptr& requester, caf::message_id mid, const void* via);

  /// Forgets the request (its record could not be written, or it came back delegated to an
  /// actor of this process): true if it was kept, i.e. it was not failed already.
  bool remove(caf::actor_id requester, caf::message_id mid);

  /// An answer to `requester`'s request `mid` arrived: expected (kept until now), late (failed
  /// here already: drop it) or unknown (not sent through a proxy of this table).
  answer answered(caf::actor_id requester, caf::message_id mid);

  /// Proxy `via` was killed: every request sent through it gets `reason` as its answer.
  /// Returns how many were failed; adds that number to `failed_count` (if given) before the
  /// first answer goes out, so that a requester that reads the count after its answer sees
  /// its own request counted.
  size_t fail_all(const void* via, const caf::error& reason,
                  std::atomic<uint64_t>* failed_count = nullptr);

  /// Requests kept now (tests, statistics).
  size_t size();

private:
  using key = std::pair<caf::actor_id, uint64_t>; // requester, request id (no flag bits)
  struct entry {
    caf::weak_actor_ptr requester;
    caf::message_id mid; // as sent (priority bits included)
    const void* via;
  };

  static key key_of(caf::actor_id requester, caf::message_id mid) {
    return {requester, mid.request_id().integer_value()};
  }
  void remember_failed(const key& k); // with mtx_ held
  void sweep_gone_requesters();        // with mtx_ held

  std::mutex mtx_;
  std::map<key, entry> open_;  // guarded by mtx_
  size_t sweep_at_ = 1024;     // guarded by mtx_: open_'s size that triggers the next sweep
  std::set<key> failed_;       // guarded by mtx_
  std::deque<key> failed_order_; // guarded by mtx_: failed_'s keys, oldest first (may hold
                                 // keys already forgotten)
};

} // namespace cafshm::fastpath
