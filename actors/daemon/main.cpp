// cafshmd: the engine in a process of its own. Creates the segments, publishes the engine through
// CAF's io middleman and serves until SIGINT or SIGTERM, then shuts down and removes the segments.
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <variant>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "cafshm/config.hpp"
#include "cafshm/error.hpp"
#include "cafshm/module.hpp"

namespace {

constexpr const char* usage =
  "usage: cafshmd [--config FILE] [--port N]\n"
  "\n"
  "Runs a cafshm engine: creates its shared-memory segments and publishes it on the configured\n"
  "host:port (engine.listen). Stops cleanly on SIGINT or SIGTERM.\n"
  "\n"
  "  --config FILE   YAML configuration (default: built-in defaults, see config/default.yaml)\n"
  "  --port N        override engine.listen.port (0 = any free port)\n"
  "  --help          show this text\n"
  "  --version       show the version\n";

int fail(const std::string& what) {
  std::cerr << "cafshmd: " << what << "\n";
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  std::string config_file;
  std::optional<long> port;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (auto eq = arg.find('='); eq != std::string::npos)
        return arg.substr(eq + 1);
      if (i + 1 < argc)
        return std::string{argv[++i]};
      return std::nullopt;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      return 0;
    } else if (arg == "--version") {
      std::cout << "cafshmd " << CAFSHM_VERSION << "\n";
      return 0;
    } else if (arg.rfind("--config", 0) == 0) {
      auto v = value();
      if (!v)
        return fail("--config needs a file");
      config_file = *v;
    } else if (arg.rfind("--port", 0) == 0) {
      auto v = value();
      char* end = nullptr;
      long n = v ? std::strtol(v->c_str(), &end, 10) : -1;
      if (!v || *end != '\0' || n < 0 || n > 65535)
        return fail("--port needs a number from 0 to 65535");
      port = n;
    } else {
      return fail("unknown argument '" + arg + "' (see --help)");
    }
  }
  cafshm::settings s;
  if (!config_file.empty()) {
    auto loaded = cafshm::load_config(config_file);
    if (auto* err = std::get_if<cafshm::config_error>(&loaded))
      return fail(err->to_string());
    s = std::get<cafshm::settings>(loaded);
  }
  s.role = cafshm::role::engine;
  if (port)
    s.engine.listen.port = static_cast<uint16_t>(*port);
  // Block the stop signals in every thread; main waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cafshm::module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto engine = cafshm::local_engine(sys);
  if (!engine)
    return fail(cafshm::describe(engine.error()));
  const auto& listen = s.engine.listen;
  auto actual = sys.middleman().publish(*engine, listen.port, listen.host.c_str(), true);
  if (!actual)
    return fail("cannot listen on " + listen.host + ":" + std::to_string(listen.port) + ": "
                + sys.render(actual.error()));
  std::cout << "cafshmd listening on " << listen.host << ":" << *actual << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cout << "cafshmd: " << strsignal(sig) << ", shutting down" << std::endl;
  sys.middleman().unpublish(*engine, *actual);
  return 0;
}
