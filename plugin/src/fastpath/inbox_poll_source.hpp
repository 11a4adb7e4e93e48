// An inbox that the workers of a polling scheduler (polling_policy.hpp) read in their idle loop,
// instead of a thread of its own: one thread wake-up per hop (the worker) instead of two (the
// reading thread, then the worker its enqueue wakes).
//
// A reader of an inbox (inbox_delivery's receiver, request_channel's answers, ...) implements
// this interface and adds itself to the process's poll_registry (poll_registry.hpp) while its
// actor system runs a polling scheduler; otherwise it keeps its own thread. The workers then:
//   - call poll() when their job queue is empty (and now and then when it is not), one worker
//     at a time per source: poll() takes the source's reading role without waiting, or answers
//     busy;
//   - before parking, announce themselves on every source's eventcount (wake_words()), poll
//     every source once more, and sleep on all those futex words and the scheduler's own at once
//     (futex_waitv), so that a record arriving in any inbox or a job enqueued locally wakes them.
//
// The contract that makes a parked worker miss nothing:
//   - poll() answers `busy` only while another thread holds the reading role, and that thread
//     delivers whatever it reads. When it gives the role back, it calls
//     poll_registry::reader_released(*this), which wakes a parked worker if ready() says records
//     wait. (Giving the role back and the ready() check are ordered by a seq_cst fence.)
//   - ready() answers true when the next record at the reader's position is complete (or
//     padding or damaged: something poll() would pass without waiting).
//   - recheck_after() bounds a parked worker's sleep while the reader waits for a claim that a
//     writer has not completed (the inbox_consumer's abandon and liveness checks run in poll()).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include <caf/fwd.hpp>

namespace cafshm::fastpath {

/// The eventcount of an inbox (inbox_layout.hpp: data_seq and reader_waiting) as a parked worker
/// uses it: both words live in the shared mapping, which stays mapped while the source is in
/// the registry.
struct wake_words {
  std::atomic<uint32_t>* sequence = nullptr; // the futex word producers bump
  std::atomic<uint32_t>* waiters = nullptr;  // readers about to park announce themselves here
};

enum class poll_outcome : uint8_t {
  idle,      // the role was taken and nothing was there to deliver
  delivered, // at least one record was handed on
  busy,      // another thread reads this inbox now; it delivers what comes (see above)
};

class inbox_poll_source {
public:
  virtual ~inbox_poll_source() = default;

  /// The actor system whose actors the records go to: only its scheduler's workers poll this.
  virtual caf::actor_system& system() const noexcept = 0;

  /// Takes the reading role without waiting and hands up to `max` records on, enqueuing into
  /// actors as `unit` (the polling worker, so that a woken actor runs on it); gives the role
  /// back before returning. Never blocks on the inbox. Thread-safe.
  virtual poll_outcome poll(caf::execution_unit* unit, size_t max) = 0;

  /// Whether a record waits at the reader's position (any thread; a hint, not a reservation).
  virtual bool ready() const noexcept = 0;

  /// The futex words of this inbox's eventcount.
  virtual wake_words wake() noexcept = 0;

  /// How long a parked worker may sleep before this source must be polled again although no
  /// producer woke it (a claimed record whose writer may have died). max(): no such bound.
  virtual std::chrono::nanoseconds recheck_after() const noexcept {
    return std::chrono::nanoseconds::max();
  }
};

} // namespace cafshm::fastpath
