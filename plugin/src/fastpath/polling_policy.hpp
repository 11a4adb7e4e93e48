// A CAF 0.17 scheduler policy (caf::scheduler::coordinator<polling_policy>) whose workers read
// the process's inboxes (inbox_poll_source.hpp, poll_registry.hpp) in their idle loop: a record
// from another process costs one thread wake-up (the worker, which then runs the actor it
// delivered to) instead of two (a reading thread, then the worker its enqueue wakes).
//
// Jobs: one central queue, as CAF's work_sharing. A worker
//   1. takes a job from the queue; every `poll_every` jobs, and whenever the queue is empty, it
//      first polls every source of its actor system (up to `poll_batch` records each);
//   2. with nothing to do: polls without sleeping for idle.spin, then polls and yields
//      idle.yields times (the idle strategy: poll_registry's poller, set from local.idle);
//   3. parks: announces itself on the scheduler's own eventcount and on every source's, looks
//      at the queue and polls every source once more, then sleeps on all those futex words at
//      once (wait_any) for at most idle.park_timeout (and the sources' recheck_after()). A job
//      enqueued by any thread bumps the scheduler's word; a record bumps its inbox's. The
//      eventcount protocol (eventcount.hpp) on each word makes either the waker see the
//      announcement or the re-check see the work: no wake-up is lost.
// A job enqueued by the worker while it polls (an actor that a delivered record woke) wakes no
// other worker: the polling worker looks at the queue right after its poll and runs it itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include <caf/policy/unprofiled.hpp>
#include <caf/resumable.hpp>

#include "fastpath/poll_registry.hpp"
#include "fastpath/wait_any.hpp"

namespace cafshm::fastpath {

class polling_policy : public caf::policy::unprofiled {
public:
  /// Records one poll takes from one source at most.
  static constexpr size_t poll_batch = 64;
  /// Jobs a worker takes from the queue between two polls while the queue is never empty.
  static constexpr uint32_t poll_every = 32;

  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator* owner);
    ~coordinator_data();
    coordinator_data(const coordinator_data&) = delete;
    coordinator_data& operator=(const coordinator_data&) = delete;

    const caf::actor_system& system;
    std::mutex lock;
    std::deque<caf::resumable*> queue; // guarded by lock
    poller wake;                       // registered with the poll_registry for `system`
    // Counts for tests and benchmarks (relaxed).
    std::atomic<uint64_t> parks{0};        // times a worker went to sleep
    std::atomic<uint64_t> polled_records{0}; // polls that delivered something
  };

  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {
    }
    std::vector<inbox_poll_source*> held; // sources acquired for one poll round or park
    std::vector<futex_key> keys;          // what a park sleeps on
    uint32_t jobs_since_poll = 0;
  };

  template <class Coordinator>
  void enqueue(Coordinator* self, caf::resumable* job) {
    push(d(self), job, true);
  }

  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    push(d(self), job, true);
  }

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, true);
  }

  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, !polling_now());
  }

  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    // The worker takes a job right after this: no one else needs waking for it.
    push(d(self->parent()), job, false);
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    return next_job(d(self->parent()), self->data(), self);
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker*, UnaryFunction) {
    // the workers keep no jobs of their own
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator* self, UnaryFunction f) {
    auto& c = d(self);
    std::unique_lock<std::mutex> guard{c.lock};
    while (!c.queue.empty()) {
      auto* job = c.queue.front();
      c.queue.pop_front();
      f(job);
    }
  }

private:
  /// Whether this thread is a worker inside a poll right now.
  static bool polling_now() noexcept;

  static void push(coordinator_data& c, caf::resumable* job, bool wake);
  static caf::resumable* pop(coordinator_data& c);
  static caf::resumable* next_job(coordinator_data& c, worker_data& w, caf::execution_unit* unit);
  /// Polls every source of the system once; true if any delivered.
  static bool poll_all(coordinator_data& c, worker_data& w, caf::execution_unit* unit);
  /// Sleeps until local work, a record or the park timeout; returns a job if the re-check
  /// before sleeping found one.
  static caf::resumable* park(coordinator_data& c, worker_data& w, caf::execution_unit* unit,
                              const idle_strategy& idle);
};

} // namespace cafshm::fastpath
