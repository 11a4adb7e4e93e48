#include "dial_policy.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>

#include <arpa/inet.h>
#include <fnmatch.h>

namespace cafshm {

namespace {

// An address in network byte order: 4 bytes (IPv4) or 16 (IPv6).
struct address {
  std::array<unsigned char, 16> bytes{};
  int bits = 0; // 32 or 128
};

std::optional<address> parse_address(const std::string& text) {
  address a;
  if (::inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.bits = 32;
    return a;
  }
  if (::inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
    a.bits = 128;
    return a;
  }
  return std::nullopt;
}

struct range {
  address base;
  int prefix = 0;
};

// "ADDRESS/BITS" -> range; nullopt if `text` has no '/'; an error text if it is malformed.
std::optional<range> parse_range(const std::string& text, std::string* why) {
  auto slash = text.find('/');
  if (slash == std::string::npos)
    return std::nullopt;
  auto base = parse_address(text.substr(0, slash));
  if (!base) {
    *why = "'" + text.substr(0, slash) + "' before '/' is not an IPv4 or IPv6 address";
    return std::nullopt;
  }
  int prefix = -1;
  auto bits = text.substr(slash + 1);
  auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
  if (ec != std::errc{} || end != bits.data() + bits.size() || bits.empty() || prefix < 0
      || prefix > base->bits) {
    *why = "prefix length '" + bits + "' must be 0.." + std::to_string(base->bits);
    return std::nullopt;
  }
  return range{*base, prefix};
}

bool in_range(const range& r, const address& a) {
  if (a.bits != r.base.bits)
    return false;
  int full = r.prefix / 8;
  if (!std::equal(a.bytes.begin(), a.bytes.begin() + full, r.base.bytes.begin()))
    return false;
  int rest = r.prefix % 8;
  if (rest == 0)
    return true;
  auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (r.base.bytes[full] & mask);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

} // namespace

std::optional<std::string> dial_pattern_problem(const std::string& pattern) {
  if (pattern.empty())
    return "must not be empty";
  if (pattern.find('/') != std::string::npos) {
    std::string why;
    if (!parse_range(pattern, &why))
      return why;
    return std::nullopt;
  }
  for (unsigned char c : pattern)
    if (!(std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '*'
          || c == '?'))
      return "'" + pattern + "' is neither a host name, a glob over host names ('*', '?'), "
             "an address nor an address range (ADDRESS/BITS)";
  return std::nullopt;
}

bool dial_pattern_matches(const std::string& pattern, const std::string& host) {
  if (pattern.find('/') != std::string::npos) {
    std::string why;
    auto r = parse_range(pattern, &why);
    auto a = parse_address(host);
    return r && a && in_range(*r, *a);
  }
  if (auto p = parse_address(pattern)) { // "::1" and "0:0::1" are the same address
    auto a = parse_address(host);
    return a && a->bits == p->bits && a->bytes == p->bytes;
  }
  return ::fnmatch(lower(pattern).c_str(), lower(host).c_str(), 0) == 0;
}

bool dial_allowed(const remote_settings& remote, const std::string& host, uint16_t port) {
  for (const auto& peer : remote.peers) {
    if (peer.address.port != port)
      continue;
    auto a = parse_address(peer.address.host);
    auto b = parse_address(host);
    if (a && b ? a->bits == b->bits && a->bytes == b->bytes
               : lower(peer.address.host) == lower(host))
      return true;
  }
  return std::any_of(remote.allow_dial.begin(), remote.allow_dial.end(),
                     [&](const std::string& p) { return dial_pattern_matches(p, host); });
}

} // namespace cafshm
