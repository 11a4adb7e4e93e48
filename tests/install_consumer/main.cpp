// Links against an installed cafshm (found by CMake or pkg-config) and uses it: an in-process engine, one block, one write.
#include <cstring>
#include <iostream>
#include <type_traits>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"

// The project asks for C++17; the cafshm target must have raised it.
static_assert(__cplusplus >= 202002L, "cafshm::cafshm does not carry C++20");
// Only the public API is installed: the engine's internals are not reachable.
#if __has_include("cafshm/memory_manager.hpp") || __has_include("cafshm/admin_layout.hpp") \
  || __has_include("memory_manager.hpp") || __has_include("admin_layout.hpp")
#error "an internal header of cafshm is reachable from the installed package"
#endif

// A process is named by its own type: no integer becomes one by mistake.
static_assert(!std::is_convertible_v<uint32_t, cafshm::process_id>);
static_assert(!std::is_convertible_v<int, cafshm::process_id>);

int main() {
  caf::actor_system_config cfg;
  cfg.load<cafshm::module>();
  cafshm::settings s;
  s.engine.name = "cafshm-consumer-" + std::to_string(::getpid());
  s.engine.arena_bytes = 1 << 20;
  cafshm::module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto c = cafshm::client::connect(sys, "consumer");
  if (!c || c->id() == cafshm::process_id::engine || c->find_process("consumer") != c->id())
    return 1;
  auto ref = c->allocate(16);
  if (!ref || !c->write(*ref, 0, std::string_view{"installed cafshm"}))
    return 1;
  auto back = c->read(*ref, 0, 16);
  std::cout << std::string(back->begin(), back->end()) << "\n";
  return std::string(back->begin(), back->end()) == "installed cafshm" ? 0 : 1;
}
