#include "cafshm/polling_scheduler.hpp"

#include <caf/scheduler/coordinator.hpp>

#include "fastpath/polling_policy.hpp"

namespace cafshm {

namespace {

using coordinator = caf::scheduler::coordinator<fastpath::polling_policy>;

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
  }
  return result;
}

} // namespace cafshm
