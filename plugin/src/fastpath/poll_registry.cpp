#include "fastpath/poll_registry.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>

#include "fastpath/eventcount.hpp"

namespace cafshm::fastpath {

void poller::set_idle(const idle_strategy& idle) noexcept {
  spin_ns.store(std::chrono::nanoseconds{idle.spin}.count(), std::memory_order_relaxed);
  yields.store(idle.yields, std::memory_order_relaxed);
  park_timeout_ns.store(std::chrono::nanoseconds{idle.park_timeout}.count(),
                        std::memory_order_relaxed);
}

idle_strategy poller::idle() const noexcept {
  idle_strategy s;
  s.spin = std::chrono::duration_cast<std::chrono::microseconds>(
    std::chrono::nanoseconds{spin_ns.load(std::memory_order_relaxed)});
  s.yields = yields.load(std::memory_order_relaxed);
  s.park_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::nanoseconds{park_timeout_ns.load(std::memory_order_relaxed)});
  return s;
}

void poller::wake_one() noexcept {
  eventcount{sequence, waiters}.notify_one();
}

void poller::wake_all() noexcept {
  eventcount{sequence, waiters}.notify_all();
}

poll_registry& poll_registry::instance() {
  static poll_registry registry; // outlives every actor system of the process
  return registry;
}

poller* poll_registry::poller_of_locked(const caf::actor_system* sys) const {
  for (auto& e : pollers_)
    if (e.system == sys)
      return e.p;
  return nullptr;
}

bool poll_registry::add(inbox_poll_source& source) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto* sys = &source.system();
  auto* p = poller_of_locked(sys);
  if (p == nullptr)
    return false;
  sources_.push_back(source_entry{&source, sys, 0, false});
  p->wake_all(); // parked workers sleep on the new source's words from their next round
  return true;
}

void poll_registry::remove(inbox_poll_source& source) {
  std::unique_lock<std::mutex> lk{mtx_};
  auto find = [&] {
    return std::find_if(sources_.begin(), sources_.end(),
                        [&](const source_entry& e) { return e.source == &source; });
  };
  auto i = find();
  if (i == sources_.end())
    return;
  i->leaving = true;
  if (auto* p = poller_of_locked(i->system))
    p->wake_all(); // parked holders wake up and let go
  released_.wait(lk, [&] { return find()->holders == 0; });
  sources_.erase(find());
}

bool poll_registry::polled(const caf::actor_system& sys) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return poller_of_locked(&sys) != nullptr;
}

void poll_registry::reader_released(inbox_poll_source& source) {
  // The caller's role release happened before this fence; a worker that found the role taken
  // announced itself before it looked (inbox_poll_source.hpp).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!source.ready())
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto* p = poller_of_locked(&source.system()))
    p->wake_one();
}

void poll_registry::add_poller(const caf::actor_system& sys, poller& p) {
  std::lock_guard<std::mutex> guard{mtx_};
  pollers_.push_back(poller_entry{&sys, &p});
}

void poll_registry::remove_poller(poller& p) {
  std::lock_guard<std::mutex> guard{mtx_};
  std::erase_if(pollers_, [&](const poller_entry& e) { return e.p == &p; });
}

void poll_registry::set_idle(const caf::actor_system& sys, const idle_strategy& idle) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto* p = poller_of_locked(&sys)) {
    p->set_idle(idle);
    p->wake_all(); // parked workers take the new strategy on their next round
  }
}

void poll_registry::acquire(const caf::actor_system& sys, std::vector<inbox_poll_source*>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& e : sources_)
    if (e.system == &sys && !e.leaving) {
      ++e.holders;
      out.push_back(e.source);
    }
}

void poll_registry::release(std::vector<inbox_poll_source*>& held) {
  if (held.empty())
    return;
  bool last = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto* s : held)
      for (auto& e : sources_)
        if (e.source == s && --e.holders == 0 && e.leaving)
          last = true;
  }
  held.clear();
  if (last)
    released_.notify_all();
}

} // namespace cafshm::fastpath
