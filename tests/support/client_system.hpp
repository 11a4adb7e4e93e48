// An actor system of a test process that talks to cafshmd engines (middleman + cafshm module in
// client role), and polling of an engine's statistics with a deadline.
#pragma once

#include <chrono>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "cafshm/polling_scheduler.hpp"

namespace cafshm::test {

/// The scheduler of a test's actor system: the one scheduler.policy picks, or
/// cafshm::polling_scheduler (whose workers read the process's inboxes).
enum class scheduler_kind { configured, polling };

inline caf::actor_system_config& client_config(caf::actor_system_config& cfg,
                                               local_transport transport = local_transport::shm,
                                               scheduler_kind sched = scheduler_kind::configured) {
  if (sched == scheduler_kind::polling)
    cfg.load<cafshm::polling_scheduler>();
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cfg.set("middleman.attach-utility-actors", true); // see client::connect
  settings s;
  s.role = role::client;
  s.local.transport = transport;
  module::configure(cfg, s);
  return cfg;
}

struct client_system {
  explicit client_system(local_transport transport = local_transport::shm,
                         scheduler_kind sched = scheduler_kind::configured)
    : sys{client_config(cfg, transport, sched)} {
  }
  caf::actor_system_config cfg;
  caf::actor_system sys;
};

/// Polls the engine's statistics until `pred` holds or `deadline` passes.
template <class Pred>
bool eventually(client& c, std::chrono::milliseconds deadline, Pred pred) {
  auto end = std::chrono::steady_clock::now() + deadline;
  do {
    if (auto st = c.stats(); st && pred(*st))
      return true;
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

} // namespace cafshm::test
