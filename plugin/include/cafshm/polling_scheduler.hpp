// A scheduler for actor systems that receive through cafshm's shared-memory inboxes: its worker
// threads read the process's inboxes themselves when they have no job, so a message or an
// engine answer from another process of this machine reaches its actor with one thread wake-up
// (the worker's) instead of two (a reading thread's, then the worker's).
//
//   caf::actor_system_config cfg;
//   cfg.load<cafshm::polling_scheduler>(); // instead of scheduler.policy
//   cfg.load<caf::io::middleman>();
//   cfg.load<cafshm::module>();
//
// It replaces the scheduler that `scheduler.policy` would pick (CAF keeps a scheduler the user
// loaded); `scheduler.max-threads` and `scheduler.max-throughput` apply as usual. Jobs are shared
// through one central queue, as with `scheduler.policy: sharing`. Without it everything works
// the same, with a reading thread per inbox.
//
// Idle workers spin, yield, then sleep as the module's `local.idle` says (docs/fastpath.md):
// sleeping at once is the default, since spinning only pays when every process has a core of
// its own. A sleeping worker uses no CPU and wakes for a record in any inbox of the process or a
// job enqueued into the scheduler. Needs Linux 5.16 or later (futex_waitv) to sleep on several
// inboxes at once; on an older kernel a sleeping worker looks at the other inboxes every 1 ms.
//
// Its clock (request timeouts, `after` timeouts, delayed messages) wakes the clock's thread only
// for a deadline earlier than every one it holds, so a request with the usual timeout costs no
// thread wake-up besides the answer's (CAF's own clock wakes its thread for each).
#pragma once

#include <cstdint>

#include <caf/actor_system.hpp>
#include <caf/detail/type_list.hpp>

namespace cafshm {

/// The name to load; never made itself: make() builds the scheduler (a CAF coordinator with
/// cafshm's policy). It derives from actor_system::module only because load<T>() requires it.
struct polling_scheduler : caf::actor_system::module {
  polling_scheduler() = delete;

  /// For `cfg.load<cafshm::polling_scheduler>()`.
  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>);

  /// Whether `sys` runs this scheduler.
  static bool runs_in(caf::actor_system& sys);

  /// Counts of `sys`'s polling scheduler (all zero if it runs another one).
  struct counts {
    uint64_t parks = 0;          // times a worker went to sleep
    uint64_t polls_delivered = 0; // polls of the inboxes that delivered at least one record
    uint64_t parked = 0;         // workers asleep (or about to sleep) right now
    uint64_t clock_wakeups = 0;  // times setting a timeout or delayed message woke the clock's
                                 // thread (only one due before all others does)
  };
  static counts counts_of(caf::actor_system& sys);
};

} // namespace cafshm
