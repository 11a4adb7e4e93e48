#pragma once

// cafshmd's start line, the one contract between the daemon and the programs that start it:
//   cafshmd listening on HOST:PORT door PATH
// HOST:PORT is where clients (and peers without a remote listener) reach the engine over TCP,
// PATH the Unix-domain socket of its local door.

#include <optional>
#include <string>
#include <string_view>

#include "cafshm/config.hpp"

namespace cafshm::test {

struct daemon_announcement {
  endpoint listen;
  std::string door;
};

/// Parses what follows "cafshmd listening on " in the start line; nullopt if it is malformed.
inline std::optional<daemon_announcement> parse_announcement(std::string_view rest) {
  constexpr std::string_view door_word = " door ";
  auto at = rest.find(door_word);
  if (at == std::string_view::npos)
    return std::nullopt;
  auto listen = parse_endpoint(rest.substr(0, at));
  auto door = rest.substr(at + door_word.size());
  while (!door.empty() && (door.back() == '\n' || door.back() == '\r'))
    door.remove_suffix(1);
  if (!listen || door.empty())
    return std::nullopt;
  return daemon_announcement{*listen, std::string{door}};
}

} // namespace cafshm::test
