// cafshm: command-line access to a cafshm engine (cafshmd). Every command is one short-lived
// connection. Exit codes: 0 success, 1 a request or I/O failed, 2 bad usage or configuration.
// Every failure prints exactly one line, "cafshm: <what>", on stderr.
// The command line is parsed in arguments.cpp; the commands run in commands.cpp.
#include <algorithm>
#include <iostream>
#include <string>
#include <variant>

#include "arguments.hpp"
#include "commands.hpp"

namespace {

int report(std::string what, int code) {
  std::replace(what.begin(), what.end(), '\n', ' ');
  std::cerr << "cafshm: " << what << std::endl;
  return code;
}

} // namespace

int main(int argc, char** argv) {
  namespace cli = cafshm::cli;
  auto parsed = cli::parse_arguments(argc, argv);
  if (auto* done = std::get_if<cli::early_exit>(&parsed)) {
    if (done->code != 0)
      return report(done->text, done->code);
    std::cout << done->text << std::flush; // --help, --version
    return 0;
  }
  auto& inv = std::get<cli::invocation>(parsed);
  auto resolved = cli::resolve_settings(inv);
  if (auto* why = std::get_if<std::string>(&resolved))
    return report(*why, 2);
  const auto& s = std::get<cafshm::settings>(resolved);
  try {
    if (inv.command == "stat")
      cli::stat(s, inv.json);
    else if (inv.command == "put")
      cli::put(s, inv.name, inv.file, inv.max_bytes);
    else if (inv.command == "get")
      cli::get(s, inv.name, inv.file);
    else if (inv.command == "ls")
      cli::ls(s);
    else if (inv.command == "transmit")
      cli::transmit(s, inv.name, inv.to, inv.as.empty() ? inv.name : inv.as, inv.json);
    else
      cli::rm(s, inv.name);
  } catch (const std::exception& e) {
    return report(e.what(), 1);
  }
  return 0;
}
