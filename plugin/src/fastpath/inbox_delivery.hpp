// CAF messages through inboxes. A sender serialises a caf::message into one record
// (send_message); in the receiving process an inbox_receiver thread reads the inbox, deserialises
// each record and enqueues it into a local actor's mailbox, as an anonymous message.
// This costs one thread wake-up per hop more than a scheduler worker polling the inbox itself
// (docs/fastpath.md), but needs no change to the actor system's scheduler.
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
#include "fastpath/inbox_writer.hpp"

namespace cafshm::fastpath {

/// Serialises `msg` with CAF's binary serialiser (its types must be known to `sys`) and appends it
/// to `out` as one record, waiting up to `wait` for space. Errors: those of inbox_writer::send,
/// or the serialiser's.
caf::expected<void> send_message(inbox_writer& out, caf::actor_system& sys,
                                 const caf::message& msg,
                                 std::chrono::nanoseconds wait = std::chrono::seconds{1});

/// A thread that delivers the records of `in` to `target` until destroyed. A record that does not
/// deserialise into a message of types this actor system knows is counted and dropped (the
/// sender is untrusted). While it runs, nothing else may read `in`.
class inbox_receiver {
public:
  inbox_receiver(caf::actor_system& sys, inbox& in, caf::actor target,
                 idle_strategy idle = idle_strategy::park());
  inbox_receiver(const inbox_receiver&) = delete;
  inbox_receiver& operator=(const inbox_receiver&) = delete;
  ~inbox_receiver(); // interrupts the thread's wait and joins it

  uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
  uint64_t malformed() const noexcept { return malformed_.load(std::memory_order_relaxed); }

private:
  void run();

  // -- constant after construction
  caf::actor_system& sys_;
  inbox& in_;
  caf::actor target_;
  idle_strategy idle_;
  // -- shared with the thread
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> malformed_{0};
  std::thread thread_; // last: starts once everything above is set
};

} // namespace cafshm::fastpath
