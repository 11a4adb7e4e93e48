// CAF messages through inboxes. A sender serialises a caf::message into one record
// (send_message); in the receiving process an inbox_receiver reads the inbox, deserialises each
// record and enqueues it into a local actor's mailbox, as an anonymous message.
//
// Who reads: when the actor system runs cafshm::polling_scheduler, its workers do, in their
// idle loop (inbox_poll_source.hpp): one thread wake-up per hop. Otherwise a thread of the
// receiver does, which costs one wake-up more per hop (the thread, then the worker its enqueue
// wakes) but needs no change to the actor system's scheduler.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_poll_source.hpp"
#include "fastpath/inbox_writer.hpp"

namespace cafshm::fastpath {

/// Serialises `msg` with CAF's binary serialiser (its types must be known to `sys`) and appends it
/// to `out` as one record, waiting up to `wait` for space. Errors: those of inbox_writer::send,
/// or the serialiser's.
caf::expected<void> send_message(inbox_writer& out, caf::actor_system& sys,
                                 const caf::message& msg,
                                 std::chrono::nanoseconds wait = std::chrono::seconds{1});

/// Delivers the records of `in` to `target` until destroyed. A record that does not deserialise
/// into a message of types this actor system knows is counted and dropped (the sender is
/// untrusted). While it exists, nothing else may read `in`.
class inbox_receiver final : private inbox_poll_source {
public:
  /// `idle` is the reading thread's; polling workers follow the scheduler's idle strategy.
  inbox_receiver(caf::actor_system& sys, inbox& in, caf::actor target,
                 idle_strategy idle = idle_strategy::park());
  inbox_receiver(const inbox_receiver&) = delete;
  inbox_receiver& operator=(const inbox_receiver&) = delete;
  ~inbox_receiver() override; // leaves the poll registry, or interrupts and joins the thread

  uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
  uint64_t malformed() const noexcept { return malformed_.load(std::memory_order_relaxed); }
  /// Whether the scheduler's workers read the inbox (then no reading thread exists).
  bool polled() const noexcept { return polled_; }
  /// Records delivered by the reading thread (0 while polled()).
  uint64_t delivered_by_thread() const noexcept {
    return by_thread_.load(std::memory_order_relaxed);
  }

private:
  void run();
  void deliver(const inbox_record& r, caf::execution_unit* unit);

  // -- inbox_poll_source
  caf::actor_system& system() const noexcept override { return sys_; }
  poll_outcome poll(caf::execution_unit* unit, size_t max) override;
  bool ready() const noexcept override { return in_.reader().ready(); }
  wake_words wake() noexcept override;
  std::chrono::nanoseconds recheck_after() const noexcept override;

  // -- constant after construction
  caf::actor_system& sys_;
  inbox& in_;
  caf::actor target_;
  idle_strategy idle_;
  bool polled_ = false;
  // -- shared with the reader
  std::atomic<bool> reading_{false}; // a worker holds the reading role
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> by_thread_{0};
  std::thread thread_; // only without a polling scheduler
};

} // namespace cafshm::fastpath
