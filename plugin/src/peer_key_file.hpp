// The key that peer engines share when they authenticate each other without certificates
// (remote.peer_key_file): raw bytes of a file that only its owner, the engine's user, may read.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cafshm {

/// Smallest and largest peer key (bytes of the file).
constexpr size_t min_peer_key_bytes = 16;
constexpr size_t max_peer_key_bytes = 4096;

/// Why `path` cannot be the peer key, or nullopt: missing, not a regular file, not owned by the
/// engine's user, readable or writable by group or others, or of a size outside
/// min_peer_key_bytes..max_peer_key_bytes.
std::optional<std::string> peer_key_file_problem(const std::string& path);

/// The key's bytes, or nullopt and `why` (the checks of peer_key_file_problem, then the read).
std::optional<std::vector<unsigned char>> read_peer_key(const std::string& path,
                                                        std::string& why);

} // namespace cafshm
