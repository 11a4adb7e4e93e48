// The cafshm CLI's command line: parsed and turned into settings without running any command,
// so that main.cpp stays a dispatcher and the parser can be fuzzed (fuzz/fuzz_cli.cpp).
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "cafshm/settings.hpp"

namespace cafshm::cli {

/// A command line that names a command.
struct invocation {
  std::string command;     // stat, put, get, ls, rm or transmit
  std::string config_file; // --config ("" = not given)
  std::string engine;      // --engine
  std::string timeout;     // --timeout
  bool json = false;       // stat --json, transmit --json
  std::string name;        // NAME of put, get, rm, transmit
  std::string file;        // FILE of put, get
  std::string to;          // transmit --to
  std::string as;          // transmit --as
  std::string max_size;    // put --max-size ("" = not given)
  uint64_t max_bytes = uint64_t{1} << 30; // put: largest input read, from --max-size
};

/// A command line that ends the program before any command: --help or --version (code 0, `text`
/// for stdout), or bad usage (code 2, `text` is the reason for stderr).
struct early_exit {
  int code = 0;
  std::string text;
};

std::variant<invocation, early_exit> parse_arguments(int argc, const char* const* argv);

/// The settings an invocation asks for: --config read from its file, then --engine and --timeout
/// applied; normalises a HOST:PORT --to. On failure the reason (bad usage or configuration,
/// exit code 2).
std::variant<settings, std::string> resolve_settings(invocation& inv);

} // namespace cafshm::cli
