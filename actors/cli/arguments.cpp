#include "arguments.hpp"

#include <sstream>

#include <CLI/CLI.hpp>

#include "cafshm/config.hpp"

#ifndef CAFSHM_VERSION
#  define CAFSHM_VERSION "unknown"
#endif

namespace cafshm::cli {

std::variant<invocation, early_exit> parse_arguments(int argc, const char* const* argv) {
  CLI::App app{"Stores, fetches and inspects named blocks in the shared memory of a cafshm "
               "engine (cafshmd).",
               "cafshm"};
  app.set_version_flag("--version", std::string{"cafshm "} + CAFSHM_VERSION);
  app.require_subcommand(1);
  app.fallthrough(); // global options may also follow the command
  invocation inv;
  app.add_option("--config", inv.config_file, "YAML configuration; uses client.engine and "
                                              "client.request_timeout")
    ->type_name("FILE");
  app.add_option("--engine", inv.engine, "the engine's endpoint (overrides --config; "
                                         "default 127.0.0.1:4242)")
    ->type_name("HOST:PORT");
  app.add_option("--timeout", inv.timeout, "time limit per request, e.g. 500ms or 5s "
                                           "(overrides --config; default 5s)")
    ->type_name("DURATION");

  auto* stat = app.add_subcommand("stat", "show the arena, free memory, processes and names");
  stat->add_flag("--json", inv.json, "print one JSON object");
  auto* put = app.add_subcommand("put", "store FILE (- = stdin) as a block named NAME, held by "
                                        "the engine until removed");
  put->add_option("NAME", inv.name, "name of the block")->required();
  put->add_option("FILE", inv.file, "file to store, - for stdin")->required();
  put->add_option("--max-size", inv.max_size, "refuse inputs larger than this (default 1GiB; "
                                              "a pipe or device is read only up to it)")
    ->type_name("SIZE");
  auto* get = app.add_subcommand("get", "write the block named NAME to FILE (default stdout)");
  get->add_option("NAME", inv.name, "name of the block")->required();
  get->add_option("FILE", inv.file, "file to write, - for stdout");
  app.add_subcommand("ls", "list the named blocks: name, size in bytes, owning process (0: the engine)");
  auto* rm = app.add_subcommand("rm", "remove the name NAME and free its block");
  rm->add_option("NAME", inv.name, "name of the block")->required();
  auto* transmit = app.add_subcommand(
    "transmit", "send the block named NAME to the engine at HOST:PORT (its peer listener), "
                "which holds it under --as (default NAME); prints sizes, payload bytes sent and "
                "whether the destination's cache had the content");
  transmit->add_option("NAME", inv.name, "name of the block at this engine")->required();
  transmit->add_option("--to", inv.to, "the destination engine's peer endpoint, or a peer name "
                                       "configured at this engine (remote.peers)")
    ->required()
    ->type_name("HOST:PORT");
  transmit->add_option("--as", inv.as, "name of the copy at the destination (default NAME)")
    ->type_name("NAME2");
  transmit->add_flag("--json", inv.json, "print one JSON object at the end (sizes, cache hit, "
                                         "seconds, bytes per second)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) { // --help, --version
      std::ostringstream out;
      app.exit(e, out, out);
      return early_exit{0, out.str()};
    }
    return early_exit{2, std::string{e.what()} + " (see --help)"};
  }
  inv.command = app.get_subcommands().front()->get_name();
  return inv;
}

std::variant<settings, std::string> resolve_settings(invocation& inv) {
  settings s;
  if (!inv.config_file.empty()) {
    auto loaded = load_config(inv.config_file);
    if (auto* err = std::get_if<config_error>(&loaded))
      return err->to_string();
    s = std::get<settings>(std::move(loaded));
  }
  if (!inv.engine.empty()) {
    auto ep = parse_endpoint(inv.engine);
    if (!ep)
      return "--engine: expected HOST:PORT with a port of 1 to 65535, got '" + inv.engine + "'";
    s.client.engine = *ep;
  }
  if (!inv.timeout.empty()) {
    auto d = parse_duration(inv.timeout);
    if (!d || d->count() <= 0)
      return "--timeout: expected a positive duration like 500ms or 5s, got '" + inv.timeout
             + "'";
    s.client.request_timeout = *d;
  }
  if (!inv.max_size.empty()) {
    auto n = parse_size(inv.max_size);
    if (!n || *n == 0)
      return "--max-size: expected a positive size like 64MiB, got '" + inv.max_size + "'";
    inv.max_bytes = *n;
  }
  if (!inv.to.empty() && inv.to.find(':') != std::string::npos) { // else a configured peer name
    auto ep = parse_endpoint(inv.to);
    if (!ep)
      return "--to: expected HOST:PORT with a port of 1 to 65535, got '" + inv.to + "'";
    inv.to = ep->host + ":" + std::to_string(ep->port);
  }
  return s;
}

} // namespace cafshm::cli
