// Text that a request supplied, echoed back in an error message at a bounded length: a caller
// that sends a 1 MiB name gets an error of a few hundred bytes, not its name back.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cafshm {

/// Longest piece of caller-supplied text an error message repeats.
constexpr size_t max_echoed_bytes = 64;

/// `text` in single quotes, cut to max_echoed_bytes with its full length appended if longer:
/// 'abc' or 'abcd...' (1048576 bytes).
inline std::string quote_bounded(std::string_view text) {
  if (text.size() <= max_echoed_bytes)
    return "'" + std::string{text} + "'";
  return "'" + std::string{text.substr(0, max_echoed_bytes)} + "...' (" + std::to_string(text.size())
         + " bytes)";
}

} // namespace cafshm
