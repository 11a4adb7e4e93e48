#include "scheduler_thread.hpp"

#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

#include "cafshm/error.hpp"
#include "fastpath/polling_policy.hpp"

namespace cafshm {

namespace {

// CAF 0.17 keeps its workers in coordinator<Policy>; the two policies of
// scheduler.policy (stealing, sharing) and cafshm::polling_scheduler's are the ones a system
// can run.
template <class Policy>
bool is_sole_worker(caf::scheduler::abstract_coordinator& sched, std::thread::id me) {
  auto* c = dynamic_cast<caf::scheduler::coordinator<Policy>*>(&sched);
  return c != nullptr && c->worker_by_id(0)->get_thread().get_id() == me;
}

} // namespace

bool on_sole_scheduler_thread(caf::actor_system& sys) noexcept {
  auto& sched = sys.scheduler();
  if (sched.num_workers() != 1)
    return false;
  auto me = std::this_thread::get_id();
  return is_sole_worker<caf::policy::work_sharing>(sched, me)
         || is_sole_worker<caf::policy::work_stealing>(sched, me)
         || is_sole_worker<fastpath::polling_policy>(sched, me);
}

caf::error check_may_block(caf::actor_system& sys, const char* call) {
  if (!on_sole_scheduler_thread(sys))
    return {};
  return make_error(errc::would_deadlock,
                    std::string{"blocking "} + call
                      + " on the only scheduler thread would stop every actor, including "
                        "the one answering it: use the async form taking `self`");
}

} // namespace cafshm
