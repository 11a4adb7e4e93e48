// Fuzz target: the YAML configuration loader (cafshm::parse_config) and the size and duration
// parsers it uses. Properties: no crash, no exception escapes, and the loader's answer is
// consistent: settings it accepts pass validate(), an error it reports has a reason and a
// position inside the text.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "cafshm/config.hpp"
#include "fuzz_input.hpp"

using cafshm::fuzz::violation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  if (size > 1 && data[0] == 0xff) { // the quantity parsers on their own
    auto rest = text.substr(1);
    if (auto n = cafshm::parse_size(rest); n && *n >= (uint64_t{1} << 63))
      violation("parse_size returned 2^63 or more");
    if (auto d = cafshm::parse_duration(rest); d && d->count() < 0)
      violation("parse_duration returned a negative duration");
    return 0;
  }
  auto result = cafshm::parse_config(text, "fuzz.yaml");
  if (auto* s = std::get_if<cafshm::settings>(&result)) {
    if (auto why = cafshm::validate(*s))
      violation("parse_config accepted settings that validate() rejects: " + *why);
  } else {
    const auto& err = std::get<cafshm::config_error>(result);
    if (err.reason.empty() || err.file != "fuzz.yaml")
      violation("an error without a reason: " + err.to_string());
    auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
    if (err.line < 0 || err.line > lines + 1 || err.column < 0)
      violation("an error outside the text: " + err.to_string());
    if (err.to_string().empty())
      violation("an empty error message");
  }
  return 0;
}
