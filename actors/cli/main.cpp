// cafshm: command-line access to a cafshm engine (cafshmd). Every command is one short-lived
// connection. Exit codes: 0 success, 1 a request or I/O failed, 2 bad usage or configuration.
// Every failure prints exactly one line, "cafshm: <what>", on stderr.
#include <algorithm>
#include <charconv>
#include <iostream>
#include <optional>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>

#include "cafshm/config.hpp"
#include "commands.hpp"

namespace {

int report(std::string what, int code) {
  std::replace(what.begin(), what.end(), '\n', ' ');
  std::cerr << "cafshm: " << what << std::endl;
  return code;
}

// "HOST:PORT" or "[IPv6]:PORT" with a port of 1..65535.
std::optional<cafshm::endpoint> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  auto host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data() + colon + 1, last, port);
  if (ec != std::errc{} || end != last || port == 0 || port > 65535)
    return std::nullopt;
  return cafshm::endpoint{host, static_cast<uint16_t>(port)};
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Stores, fetches and inspects named blocks in the shared memory of a cafshm "
               "engine (cafshmd).",
               "cafshm"};
  app.set_version_flag("--version", std::string{"cafshm "} + CAFSHM_VERSION);
  app.require_subcommand(1);
  app.fallthrough(); // global options may also follow the command
  std::string config_file, engine, timeout;
  app.add_option("--config", config_file, "YAML configuration; uses client.engine and "
                                          "client.request_timeout")
    ->type_name("FILE");
  app.add_option("--engine", engine, "the engine's endpoint (overrides --config; "
                                     "default 127.0.0.1:4242)")
    ->type_name("HOST:PORT");
  app.add_option("--timeout", timeout, "time limit per request, e.g. 500ms or 5s "
                                       "(overrides --config; default 5s)")
    ->type_name("DURATION");

  bool json = false;
  std::string name, file;
  auto* stat = app.add_subcommand("stat", "show the arena, free memory, processes and names");
  stat->add_flag("--json", json, "print one JSON object");
  auto* put = app.add_subcommand("put", "store FILE (- = stdin) as a block named NAME, held by "
                                        "the engine until removed");
  put->add_option("NAME", name, "name of the block")->required();
  put->add_option("FILE", file, "file to store, - for stdin")->required();
  auto* get = app.add_subcommand("get", "write the block named NAME to FILE (default stdout)");
  get->add_option("NAME", name, "name of the block")->required();
  get->add_option("FILE", file, "file to write, - for stdout");
  app.add_subcommand("ls", "list the named blocks: name, size in bytes, owner slot");
  auto* rm = app.add_subcommand("rm", "remove the name NAME and free its block");
  rm->add_option("NAME", name, "name of the block")->required();
  std::string to, as;
  auto* transmit = app.add_subcommand(
    "transmit", "send the block named NAME to the engine at HOST:PORT (its peer listener), "
                "which holds it under --as (default NAME); prints sizes, payload bytes sent and "
                "whether the destination's cache had the content");
  transmit->add_option("NAME", name, "name of the block at this engine")->required();
  transmit->add_option("--to", to, "the destination engine's peer endpoint, or a peer name "
                                   "configured at this engine (remote.peers)")
    ->required()
    ->type_name("HOST:PORT");
  transmit->add_option("--as", as, "name of the copy at the destination (default NAME)")
    ->type_name("NAME2");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) // --help, --version
      return app.exit(e);
    return report(std::string{e.what()} + " (see --help)", 2);
  }

  cafshm::settings s;
  if (!config_file.empty()) {
    auto loaded = cafshm::load_config(config_file);
    if (auto* err = std::get_if<cafshm::config_error>(&loaded))
      return report(err->to_string(), 2);
    s = std::get<cafshm::settings>(std::move(loaded));
  }
  if (!engine.empty()) {
    auto ep = parse_endpoint(engine);
    if (!ep)
      return report("--engine: expected HOST:PORT with a port of 1 to 65535, got '" + engine
                      + "'",
                    2);
    s.client.engine = *ep;
  }
  if (!timeout.empty()) {
    auto d = cafshm::parse_duration(timeout);
    if (!d || d->count() <= 0)
      return report("--timeout: expected a positive duration like 500ms or 5s, got '" + timeout
                      + "'",
                    2);
    s.client.request_timeout = *d;
  }

  if (!to.empty() && to.find(':') != std::string::npos) { // else a configured peer name
    auto ep = parse_endpoint(to);
    if (!ep)
      return report("--to: expected HOST:PORT with a port of 1 to 65535, got '" + to + "'", 2);
    to = ep->host + ":" + std::to_string(ep->port);
  }

  try {
    namespace cli = cafshm::cli;
    auto command = app.get_subcommands().front()->get_name();
    if (command == "stat")
      cli::stat(s, json);
    else if (command == "put")
      cli::put(s, name, file);
    else if (command == "get")
      cli::get(s, name, file);
    else if (command == "ls")
      cli::ls(s);
    else if (command == "transmit")
      cli::transmit(s, name, to, as.empty() ? name : as);
    else
      cli::rm(s, name);
  } catch (const std::exception& e) {
    return report(e.what(), 1);
  }
  return 0;
}
