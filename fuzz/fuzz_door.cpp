// Fuzz target: the bytes of the engine's local door (plugin/src/door_protocol.cpp), both sides:
// the request line the door parses from whatever connects, and the answer line the client
// library parses from whatever serves the socket.
// Properties: neither parser crashes, reads past its input or accepts more than door::max_line
// bytes; a request is accepted only as exactly "cafshm-door <decimal>\n"; a reply parses as a
// ticket only if it is exactly format_ticket() of that ticket (no other spelling is a ticket);
// format/parse round-trip for the ticket and the request.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "door_protocol.hpp"
#include "fuzz_input.hpp"

using namespace cafshm;
using cafshm::fuzz::violation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  if (auto v = door::parse_request(text)) {
    if (text.size() > door::max_line)
      violation("an over-long request line was accepted");
    auto digits = text.substr(std::min<size_t>(12, text.size()));
    if (text.substr(0, 12) != "cafshm-door " || digits.size() < 2 || text.back() != '\n'
        || digits.find_first_not_of("0123456789") != digits.size() - 1)
      violation("a request line other than 'cafshm-door N' was accepted");
  }
  auto reply = door::parse_reply(text);
  if (auto* t = std::get_if<door_ticket>(&reply)) {
    if (!t->valid())
      violation("an empty ticket was accepted");
    if (door::format_ticket(*t) != text)
      violation("a ticket was read from a line that is not its canonical form");
  }
  // round trips
  if (size >= 16) {
    fuzz::input in{data, size};
    door_ticket t{in.u64() | 1, in.u64() | 1};
    auto back = door::parse_reply(door::format_ticket(t));
    if (!std::holds_alternative<door_ticket>(back) || std::get<door_ticket>(back) != t)
      violation("format_ticket/parse_reply do not round-trip");
    auto denial = door::parse_reply(door::format_denial(std::string{text.substr(0, 64)}));
    if (!std::holds_alternative<std::string>(denial))
      violation("a denial parsed as a ticket");
  }
  if (door::parse_request(door::format_request()) != door::version)
    violation("format_request/parse_request do not round-trip");
  return 0;
}
