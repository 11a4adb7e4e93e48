// Where an engine may dial: the configured peers and the hosts of remote.allow_dial. A process
// that may register can ask its engine to link to or transmit to any "host:port"; without this
// check the engine would open connections wherever a process points it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cafshm/settings.hpp"

namespace cafshm {

/// Why `pattern` is not a valid remote.allow_dial entry, or nullopt. Valid: a host name or
/// address, a glob over host names ('*' and '?'), or an address range "ADDRESS/BITS" (IPv4 or
/// IPv6).
std::optional<std::string> dial_pattern_problem(const std::string& pattern);

/// Whether `host` (as given to link or transmit) matches `pattern`. An address range matches
/// only a host written as an address of the same family; names are compared without regard to
/// case.
bool dial_pattern_matches(const std::string& pattern, const std::string& host);

/// Whether the engine may dial host:port: the address of a configured peer, or a host matching
/// a remote.allow_dial pattern.
bool dial_allowed(const remote_settings& remote, const std::string& host, uint16_t port);

} // namespace cafshm
