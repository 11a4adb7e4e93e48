// Options of the helper programs that tests start: "--key value" pairs anywhere on the command
// line.
#pragma once

#include <string>

namespace cafshm::test {

/// The value after `key` on the command line, or `fallback` if `key` is not there.
inline std::string option(int argc, char** argv, const std::string& key,
                          const std::string& fallback = {}) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == key)
      return argv[i + 1];
  return fallback;
}

/// Whether `key` (an option without a value) is on the command line.
inline bool flag(int argc, char** argv, const std::string& key) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == key)
      return true;
  return false;
}

} // namespace cafshm::test
