// The process's inboxes that scheduler workers read (inbox_poll_source.hpp), and the polling
// schedulers that read them (polling_policy.hpp), per actor system.
//
// A reader of an inbox asks add(): true means a polling scheduler of its actor system reads the
// inbox from now on, and the reader starts no thread; false means there is none, and the reader
// keeps its own thread, as without the registry. It calls remove() before its inbox goes away.
//
// Lifetimes: a source stays valid while it is in the registry; remove() waits until no worker
// polls it or sleeps on its futex words (it wakes the parked workers of its system for that).
// The scheduler of an actor system outlives the actors and clients made in it (CAF stops the
// scheduler last), so a source is removed before its poller; a source left behind when its
// poller goes away is no longer read.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include <caf/fwd.hpp>

#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox_poll_source.hpp"

namespace cafshm::fastpath {

/// A polling scheduler's side: what wakes its parked workers and how they idle.
struct poller {
  /// An eventcount in this process's memory (used like an inbox's: eventcount.hpp). Local work
  /// (a job enqueued into the scheduler) and reader_released() bump it.
  std::atomic<uint32_t> sequence{0};
  std::atomic<uint32_t> waiters{0};
  /// The idle strategy (idle_strategy.hpp), read by every worker each time it becomes idle.
  std::atomic<int64_t> spin_ns{0};
  std::atomic<uint32_t> yields{0};
  std::atomic<int64_t> park_timeout_ns{100'000'000};

  void set_idle(const idle_strategy& idle) noexcept;
  idle_strategy idle() const noexcept;
  /// Wakes one / every parked worker (a fence and a load if none parks).
  void wake_one() noexcept;
  void wake_all() noexcept;
};

class poll_registry {
public:
  /// The registry of this process.
  static poll_registry& instance();

  // -- for readers of inboxes

  /// Adds `source` if a polling scheduler runs for its actor system; returns whether it did.
  bool add(inbox_poll_source& source);
  /// Removes `source` (if added); on return no worker touches it any more. Not from poll().
  void remove(inbox_poll_source& source);
  /// Whether `sys` runs a polling scheduler.
  bool polled(const caf::actor_system& sys) const;
  /// Called by a thread other than a worker after it gave back the reading role of `source`:
  /// wakes one parked worker of its system if records wait (inbox_poll_source.hpp).
  void reader_released(inbox_poll_source& source);
  /// poll() of a source whose reading role is the flag `reading`: takes the role without
  /// waiting (busy if another thread holds it), lets `read` hand on records (it returns how
  /// many), gives the role back and calls reader_released(), since a worker that found the role
  /// taken meanwhile may have parked.
  template <class Read>
  poll_outcome poll_as_reader(std::atomic<bool>& reading, inbox_poll_source& source, Read read) {
    if (reading.exchange(true, std::memory_order_seq_cst))
      return poll_outcome::busy;
    size_t n = read();
    reading.store(false, std::memory_order_seq_cst);
    reader_released(source);
    return n > 0 ? poll_outcome::delivered : poll_outcome::idle;
  }

  // -- for the polling scheduler

  void add_poller(const caf::actor_system& sys, poller& p);
  void remove_poller(poller& p);
  /// Sets the idle strategy of the polling scheduler of `sys`, if it runs one.
  void set_idle(const caf::actor_system& sys, const idle_strategy& idle);

  /// Appends the sources of `sys` to `out`, each held (remove() waits) until release(out).
  void acquire(const caf::actor_system& sys, std::vector<inbox_poll_source*>& out);
  void release(std::vector<inbox_poll_source*>& held);

private:
  struct source_entry {
    inbox_poll_source* source;
    const caf::actor_system* system;
    uint32_t holders; // workers that acquired it
    bool leaving;     // remove() waits for the holders: acquire() passes it by
  };
  struct poller_entry {
    const caf::actor_system* system;
    poller* p;
  };

  poller* poller_of_locked(const caf::actor_system* sys) const;

  mutable std::mutex mtx_;
  std::condition_variable released_; // a holder count went to zero
  std::vector<source_entry> sources_;
  std::vector<poller_entry> pollers_;
};

} // namespace cafshm::fastpath
