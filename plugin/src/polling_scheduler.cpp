#include "cafshm/polling_scheduler.hpp"

#include <thread>

#include <caf/detail/set_thread_name.hpp>
#include <caf/scheduler/coordinator.hpp>

#include "fastpath/coalescing_clock.hpp"
#include "fastpath/polling_policy.hpp"

namespace cafshm {

namespace {

// CAF's coordinator with cafshm's policy and clock. The coordinator still starts the thread of
// its own clock, which then sleeps unused: clock() is the only way CAF reaches a clock.
class coordinator final : public caf::scheduler::coordinator<fastpath::polling_policy> {
public:
  using super = caf::scheduler::coordinator<fastpath::polling_policy>;
  using super::super;

  fastpath::coalescing_clock& clock() noexcept override {
    return clock_;
  }

protected:
  void start() override {
    clock_thread_ = std::thread{[this] {
      caf::detail::set_thread_name("cafshm.clock");
      system().thread_started();
      clock_.run();
      system().thread_terminates();
    }};
    super::start();
  }

  void stop() override {
    super::stop(); // events appended after stop() stay pending until the clock is destroyed
    clock_.stop();
    clock_thread_.join();
  }

private:
  fastpath::coalescing_clock clock_;
  std::thread clock_thread_;
};

coordinator* polling_coordinator_of(caf::actor_system& sys) {
  return dynamic_cast<coordinator*>(&sys.scheduler());
}

} // namespace

caf::actor_system::module* polling_scheduler::make(caf::actor_system& sys,
                                                   caf::detail::type_list<>) {
  return new coordinator(sys);
}

bool polling_scheduler::runs_in(caf::actor_system& sys) {
  return polling_coordinator_of(sys) != nullptr;
}

polling_scheduler::counts polling_scheduler::counts_of(caf::actor_system& sys) {
  counts result;
  if (auto* c = polling_coordinator_of(sys)) {
    result.parks = c->data().parks.load(std::memory_order_relaxed);
    result.polls_delivered = c->data().polled_records.load(std::memory_order_relaxed);
    result.parked = c->data().wake.waiters.load(std::memory_order_relaxed);
    result.clock_wakeups = c->clock().wakeups();
  }
  return result;
}

} // namespace cafshm
