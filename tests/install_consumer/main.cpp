// Links against an installed cafshm and uses it: an in-process engine, one block, one write.
#include <cstring>
#include <iostream>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"

int main() {
  caf::actor_system_config cfg;
  cfg.load<cafshm::module>();
  cafshm::settings s;
  s.engine.name = "cafshm-consumer-" + std::to_string(::getpid());
  s.engine.arena_bytes = 1 << 20;
  cafshm::module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto c = cafshm::client::connect(sys, "consumer");
  if (!c)
    return 1;
  auto ref = c->allocate(16);
  if (!ref || !c->write(*ref, 0, std::string_view{"installed cafshm"}))
    return 1;
  auto back = c->read(*ref, 0, 16);
  std::cout << std::string(back->begin(), back->end()) << "\n";
  return std::string(back->begin(), back->end()) == "installed cafshm" ? 0 : 1;
}
