// cafshm-pipeline: producer -> transformer -> sink as three OS processes, with frames in cafshm
// shared-memory blocks (--transport shm) or in plain CAF messages (--transport caf).
// See driver.hpp for the driver (the default role) and stages.hpp for the stages.
#include <iostream>
#include <variant>

#include "driver.hpp"
#include "options.hpp"
#include "stages.hpp"

int main(int argc, char** argv) {
  using namespace pipeline;
  auto parsed = parse_options(argc, argv);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    std::cerr << "cafshm-pipeline: " << *why << "\n";
    return 2;
  }
  auto& opts = std::get<options>(parsed);
  if (opts.help) {
    std::cout << usage;
    return 0;
  }
  if (opts.print_engine) {
    if (auto why = apply_config(opts); !why.empty()) {
      std::cerr << "cafshm-pipeline: " << why << "\n";
      return 2;
    }
    std::cout << opts.engine.host << ":" << opts.engine.port << "\n";
    return 0;
  }
  switch (opts.role) {
    case role::producer:
      return run_producer(opts);
    case role::transformer:
      return run_transformer(opts);
    case role::sink:
      return run_sink(opts);
    case role::driver:
      break;
  }
  return run_driver(opts);
}
