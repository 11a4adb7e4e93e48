// Fuzz target: the cafshm CLI's command line (actors/cli/arguments.cpp): the input, split at NUL
// bytes, is argv. Properties: no crash and no exception escapes; the parser either names one of
// the commands or ends the program with exit code 0 (--help, --version, with text) or 2 (bad
// usage, with a reason); settings it resolves are valid (an --engine it accepts has a port in
// 1..65535, a --timeout is positive) and a normalised --to is HOST:PORT again.
// (--config is not followed here: the fuzzer must not read arbitrary files.)
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "arguments.hpp"
#include "cafshm/config.hpp"
#include "fuzz_input.hpp"

using namespace cafshm;
using cafshm::fuzz::violation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"cafshm"};
  std::string current;
  for (size_t i = 0; i < size && args.size() < 24; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty() && args.size() < 24)
    args.push_back(current);
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  argv.push_back(nullptr);
  auto parsed = cli::parse_arguments(static_cast<int>(args.size()), argv.data());
  if (auto* done = std::get_if<cli::early_exit>(&parsed)) {
    if ((done->code != 0 && done->code != 2) || done->text.empty())
      violation("an early exit with code " + std::to_string(done->code) + " and text '"
                + done->text + "'");
    return 0;
  }
  auto& inv = std::get<cli::invocation>(parsed);
  static const std::string commands[] = {"stat", "put", "get", "ls", "rm", "transmit"};
  bool known = false;
  for (const auto& c : commands)
    known = known || inv.command == c;
  if (!known)
    violation("an unknown command '" + inv.command + "'");
  inv.config_file.clear();
  auto resolved = cli::resolve_settings(inv);
  if (auto* s = std::get_if<settings>(&resolved)) {
    if (!inv.engine.empty() && s->client.engine.port == 0)
      violation("--engine accepted with port 0");
    if (s->client.request_timeout.count() <= 0)
      violation("a timeout that is not positive");
    if (inv.to.find(':') != std::string::npos && !parse_endpoint(inv.to))
      violation("--to normalised to something that is not HOST:PORT: " + inv.to);
  } else if (std::get<std::string>(resolved).empty()) {
    violation("a resolve error without a reason");
  }
  return 0;
}
