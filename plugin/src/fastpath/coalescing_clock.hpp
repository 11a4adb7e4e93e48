// The actor clock of cafshm::polling_scheduler: timeouts and delayed messages as in CAF 0.17's
// thread_safe_actor_clock, but setting one wakes the clock's thread only when it is due before
// the deadline that thread already sleeps until.
//
// CAF's clock hands every event (a request's timeout, an `after` timeout, a delayed message, a
// cancellation) to its thread through a queue that wakes the thread whenever it was empty, so an
// actor that sends one request at a time wakes a second thread per request: on a machine whose
// cores are all busy (workers spinning on their inboxes), that wake-up takes a core from them
// and costs about 10 µs of every fast-path round trip (docs/fastpath.md, "The clock").
//
// Here an event is appended to `pending_` under `lock_`. The thread sleeps until the earliest
// due time in its schedule (`wake_at_`); an appending thread notifies it only when
//   - the event is due before `wake_at_` (an earlier deadline, e.g. a delayed message), or
//   - it is a cancel_all or the shutdown, or
//   - `pending_` holds `batch_limit` events (cancellations and far deadlines pile up otherwise).
// A request timeout of the usual kind (5 s, after the previous one) wakes nothing; the thread
// takes it with the rest of the batch when it wakes for the earliest deadline, which is never
// later than this one's. Events are applied in the order they were appended, and all pending
// events before the expired timeouts are shipped, so a cancellation made before a deadline is
// never late.
//
// Ownership: the schedule (simple_actor_clock's maps) belongs to the thread of run(); other
// threads touch only `pending_`, `wake_at_` and `sleeping_`, under `lock_`. Events are applied
// and destroyed outside the lock, so an actor destroyed by dropping its last timeout may use
// the clock from its destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include <caf/detail/thread_safe_actor_clock.hpp>

namespace cafshm::fastpath {

// Derives from thread_safe_actor_clock because CAF's coordinator declares clock() with that
// return type; none of the base's own queue is used.
class coalescing_clock final : public caf::detail::thread_safe_actor_clock {
public:
  /// Pending events that wake the thread even when none is due earlier.
  static constexpr size_t batch_limit = 4096;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override;
  void set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) override;
  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override;
  void cancel_ordinary_timeout(caf::abstract_actor* self, caf::atom_value type) override;
  void cancel_request_timeout(caf::abstract_actor* self, caf::message_id id) override;
  void cancel_timeouts(caf::abstract_actor* self) override;
  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override;
  void schedule_message(time_point t, caf::group target, caf::strong_actor_ptr sender,
                        caf::message content) override;
  void cancel_all() override;

  /// The clock's thread: applies events and ships expired ones until stop().
  void run();
  /// Makes run() return (the schedule is dropped, as CAF's clock does at shutdown).
  void stop();

  /// Times an appended event woke the thread (relaxed; for tests and benchmarks).
  uint64_t wakeups() const noexcept {
    return wakeups_.load(std::memory_order_relaxed);
  }

private:
  // Appends `x`; wakes the sleeping thread if `due` is before its deadline, or `always`.
  // Cancellations pass time_point::max(), which is never before it.
  void append(unique_event_ptr x, time_point due, bool always = false);
  // Applies one event to the schedule; false for the shutdown.
  bool apply(unique_event_ptr& x);

  std::mutex lock_;
  std::condition_variable wake_;
  std::vector<unique_event_ptr> pending_; // guarded by lock_
  time_point wake_at_ = time_point::min(); // guarded by lock_; min() while the thread is awake
  bool sleeping_ = false;                  // guarded by lock_
  std::atomic<uint64_t> wakeups_{0};
};

} // namespace cafshm::fastpath
