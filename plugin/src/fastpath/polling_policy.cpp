#include "fastpath/polling_policy.hpp"

#include <algorithm>
#include <chrono>

#include <sched.h>

#include <caf/scheduler/abstract_coordinator.hpp>

#include "fastpath/eventcount.hpp"

namespace cafshm::fastpath {

namespace {

using clock = std::chrono::steady_clock;

thread_local bool in_poll = false;

} // namespace

polling_policy::coordinator_data::coordinator_data(caf::scheduler::abstract_coordinator* owner)
  : system(owner->system()) {
  poll_registry::instance().add_poller(system, wake);
}

polling_policy::coordinator_data::~coordinator_data() {
  poll_registry::instance().remove_poller(wake);
}

bool polling_policy::polling_now() noexcept {
  return in_poll;
}

void polling_policy::push(coordinator_data& c, caf::resumable* job, bool wake) {
  {
    std::lock_guard<std::mutex> guard{c.lock};
    c.queue.push_back(job);
  }
  if (wake)
    c.wake.wake_one(); // a fence and a load unless a worker announced that it parks
}

caf::resumable* polling_policy::pop(coordinator_data& c) {
  std::lock_guard<std::mutex> guard{c.lock};
  if (c.queue.empty())
    return nullptr;
  auto* job = c.queue.front();
  c.queue.pop_front();
  return job;
}

bool polling_policy::poll_all(coordinator_data& c, worker_data& w, caf::execution_unit* unit) {
  auto& registry = poll_registry::instance();
  registry.acquire(c.system, w.held);
  bool any = false;
  in_poll = true;
  for (auto* s : w.held)
    if (s->poll(unit, poll_batch) == poll_outcome::delivered)
      any = true;
  in_poll = false;
  registry.release(w.held);
  if (any)
    c.polled_records.fetch_add(1, std::memory_order_relaxed);
  return any;
}

caf::resumable* polling_policy::next_job(coordinator_data& c, worker_data& w,
                                         caf::execution_unit* unit) {
  if (++w.jobs_since_poll < poll_every)
    if (auto* job = pop(c))
      return job;
  for (;;) {
    w.jobs_since_poll = 0;
    bool delivered = poll_all(c, w, unit);
    if (auto* job = pop(c))
      return job;
    if (delivered)
      continue;
    auto idle = c.wake.idle();
    if (idle.spin.count() > 0) {
      auto until = clock::now() + idle.spin;
      while (clock::now() < until) {
        if (auto* job = pop(c))
          return job;
        if (poll_all(c, w, unit)) {
          until = clock::now() + idle.spin; // spin on after the last record
          continue;
        }
        idle.pause_while_spinning();
      }
    }
    for (uint32_t i = 0; i < idle.yields; ++i) {
      ::sched_yield();
      if (auto* job = pop(c))
        return job;
      if (poll_all(c, w, unit))
        i = 0;
    }
    if (auto* job = park(c, w, unit, idle))
      return job;
  }
}

caf::resumable* polling_policy::park(coordinator_data& c, worker_data& w,
                                     caf::execution_unit* unit, const idle_strategy& idle) {
  auto& registry = poll_registry::instance();
  registry.acquire(c.system, w.held);
  // Announce on every word first (each prepare_wait ends with a seq_cst fence), then look.
  w.keys.clear();
  eventcount local{c.wake.sequence, c.wake.waiters};
  w.keys.push_back(futex_key{&c.wake.sequence, local.prepare_wait()});
  for (auto* s : w.held) {
    auto words = s->wake();
    w.keys.push_back(futex_key{words.sequence, eventcount{*words.sequence, *words.waiters}
                                                  .prepare_wait()});
  }
  auto withdraw = [&] {
    local.finish_wait();
    for (size_t i = 0; i < w.held.size(); ++i) {
      auto words = w.held[i]->wake();
      eventcount{*words.sequence, *words.waiters}.finish_wait();
    }
    registry.release(w.held);
  };
  auto* job = pop(c);
  bool delivered = false;
  auto nap = std::chrono::nanoseconds{idle.park_timeout};
  if (job == nullptr) {
    in_poll = true;
    for (auto* s : w.held) {
      // busy: the thread reading it delivers, and wakes a worker when it lets go
      if (s->poll(unit, poll_batch) == poll_outcome::delivered)
        delivered = true;
      nap = std::min(nap, s->recheck_after());
    }
    in_poll = false;
    if (!delivered)
      job = pop(c);
  }
  if (job == nullptr && !delivered) {
    c.parks.fetch_add(1, std::memory_order_relaxed);
    wait_any(w.keys, std::max(nap, std::chrono::nanoseconds{1000}));
  }
  withdraw();
  if (delivered)
    c.polled_records.fetch_add(1, std::memory_order_relaxed);
  return job;
}

} // namespace cafshm::fastpath
