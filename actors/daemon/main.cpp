// cafshmd: the engine in a process of its own. Creates the segments, publishes the engine through
// CAF's io middleman and serves until SIGINT or SIGTERM, then shuts down and removes the segments.
// With remote.listen.port set, it publishes the engine's peer gateway there for peer engines:
// through CAF's openssl module (mutual TLS) when remote.tls is configured, plain otherwise.
// (Engines that dial engine.listen ask the engine for its gateway.)
#include <csignal>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <variant>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/scoped_actor.hpp>

#include "cafshm/config.hpp"
#include "cafshm/error.hpp"
#include "cafshm/module.hpp"
#include "tls_check.hpp"

namespace {

constexpr const char* usage =
  "usage: cafshmd [--config FILE] [--port N]\n"
  "       cafshmd --check-config FILE\n"
  "\n"
  "Runs a cafshm engine: creates its shared-memory segments and publishes it on the configured\n"
  "host:port (engine.listen) for local clients and, if remote.listen.port is set, its peer\n"
  "gateway on remote.listen for peer engines (with mutual TLS when remote.tls is set). Prints\n"
  "'cafshmd listening on HOST:PORT door PATH' (PATH: the Unix-domain socket where local\n"
  "processes get their registration tickets, engine.socket) and then\n"
  "'cafshmd peers on HOST:PORT (tls|plain)'.\n"
  "Over the segments of a dead engine of the same name it adopts them (processes that still\n"
  "run keep their sessions, blocks and views) or says in one line why not and starts fresh;\n"
  "that line comes first: 'cafshmd: adopted ...' or 'cafshmd: not adopting ...'.\n"
  "Stops cleanly on SIGINT or SIGTERM.\n"
  "\n"
  "  --config FILE   YAML configuration (default: built-in defaults, see config/default.yaml)\n"
  "  --port N        override engine.listen.port (0 = any free port)\n"
  "  --check-config FILE  only check FILE: prints 'FILE: valid' and exits 0, or the first\n"
  "                  error at FILE:LINE:COLUMN and exits 1; starts nothing\n"
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
    } else if (arg.rfind("--check-config", 0) == 0) {
      auto v = value();
      if (!v)
        return fail("--check-config needs a file");
      auto loaded = cafshm::load_config(*v);
      if (auto* err = std::get_if<cafshm::config_error>(&loaded))
        return fail(err->to_string());
      if (auto why = cafshm::validate(std::get<cafshm::settings>(loaded)))
        return fail(*v + ": " + *why);
      std::cout << *v << ": valid" << std::endl;
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
  // Configuration errors name the file (as the loader's do) and never come from CAF.
  auto config_fail = [&](const std::string& what) {
    return fail((config_file.empty() ? std::string{} : config_file + ": ") + what);
  };
  if (auto why = cafshm::validate(s)) // again: --port may have changed engine.listen
    return config_fail(*why);
  const bool tls = s.remote.tls.enabled();
  if (tls)
    if (auto why = cafshm::daemon::check_tls(s.remote.tls))
      return config_fail(*why);
  // Block the stop signals in every thread; main waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  caf::actor_system_config cfg;
  // Work stealing polls for work even when idle (~4 % of a core here); an engine is one actor
  // plus the middleman, so workers that sleep on a condition variable cost nothing idle.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.load<caf::io::middleman>();
  if (tls)
    cfg.load<caf::openssl::manager>(); // after the middleman; the engine dials peers through it
  cfg.load<cafshm::module>();
  cafshm::module::configure(cfg, s); // also sets CAF's openssl options from remote.tls
  std::optional<caf::actor_system> sys;
  try {
    sys.emplace(cfg); // CAF's openssl module throws on configurations it rejects
  } catch (const std::exception& e) {
    return config_fail(std::string{tls ? "remote.tls: CAF's openssl module rejected the "
                                         "configuration: "
                                       : "cannot start the actor system: "}
                       + e.what());
  }
  auto engine = cafshm::local_engine(*sys);
  if (!engine)
    return fail(cafshm::describe(engine.error()));
  const auto& listen = s.engine.listen;
  auto actual = sys->middleman().publish(*engine, listen.port, listen.host.c_str(), true);
  if (!actual)
    return fail("cannot listen on " + listen.host + ":" + std::to_string(listen.port) + ": "
                + sys->render(actual.error()));
  cafshm::module::of(*sys)->listening_on({listen.host, *actual}); // clients reconnect there
  caf::actor gateway;
  {
    caf::scoped_actor self{*sys, true};
    self->request(*engine, std::chrono::seconds(10), cafshm::gateway_atom::value)
      .receive([&](caf::actor& gw) { gateway = std::move(gw); }, [](caf::error&) {});
  }
  if (!gateway)
    return fail("the engine named no peer gateway");
  std::optional<uint16_t> peer_port;
  if (const auto& peers = s.remote.listen; peers.port != 0) {
    auto p = tls ? caf::openssl::publish(gateway, peers.port, peers.host.c_str(), true)
                 : sys->middleman().publish(gateway, peers.port, peers.host.c_str(), true);
    if (!p)
      return fail("cannot listen for peers on " + peers.host + ":" + std::to_string(peers.port)
                  + ": " + sys->render(p.error()));
    peer_port = *p;
  }
  if (auto report = cafshm::module::of(*sys)->start_report(); !report.empty())
    std::cout << "cafshmd: " << report << std::endl;
  std::cout << "cafshmd listening on " << listen.host << ":" << *actual << " door "
            << cafshm::module::of(*sys)->door_path() << std::endl;
  if (peer_port)
    std::cout << "cafshmd peers on " << s.remote.listen.host << ":" << *peer_port << " ("
              << (tls ? "tls" : "plain") << ")" << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cout << "cafshmd: " << strsignal(sig) << ", shutting down" << std::endl;
  if (peer_port)
    sys->middleman().unpublish(gateway, *peer_port);
  sys->middleman().unpublish(*engine, *actual);
  return 0;
}
