// The bytes exchanged at an engine's local door (a Unix-domain socket), shared by the door
// (plugin/src/engine/door.cpp) and the client library. One request line, one answer line:
//   process -> door:  "cafshm-door 1\n"
//   door -> process:  "ticket <32 hex digits>\n"   (door_ticket id and secret, 16 each)
//                 or  "denied <reason>\n"
// Who asks is what the kernel says (SO_PEERCRED), so the request carries nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <caf/expected.hpp>

#include "cafshm/protocol.hpp"

namespace cafshm::door {

constexpr uint32_t version = 1;
constexpr size_t max_line = 128; // longer input is refused, never buffered

std::string format_request();
/// The version a request line asks for, or nullopt for anything else.
std::optional<uint32_t> parse_request(std::string_view line);

std::string format_ticket(const door_ticket& t);
std::string format_denial(std::string_view reason);
/// A ticket, or the door's reason for refusing (or why the answer is malformed).
std::variant<door_ticket, std::string> parse_reply(std::string_view line);

/// Knocks at the door at `path`: a ticket, or errc::access_denied (refused) or
/// errc::engine_unreachable (no door there, no answer within `timeout`).
caf::expected<door_ticket> ask(const std::string& path, std::chrono::milliseconds timeout);

} // namespace cafshm::door
