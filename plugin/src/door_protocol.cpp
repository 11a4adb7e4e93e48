#include "door_protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cafshm/error.hpp"

namespace cafshm::door {

namespace {

constexpr std::string_view request_prefix = "cafshm-door ";
constexpr std::string_view ticket_prefix = "ticket ";
constexpr std::string_view denied_prefix = "denied ";

std::optional<uint64_t> parse_hex16(std::string_view s) {
  if (s.size() != 16)
    return std::nullopt;
  uint64_t x = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return std::nullopt;
    x = (x << 4) | static_cast<uint64_t>(d);
  }
  return x;
}

std::string_view strip_newline(std::string_view line) {
  if (!line.empty() && line.back() == '\n')
    line.remove_suffix(1);
  return line;
}

} // namespace

std::string format_request() {
  return std::string{request_prefix} + std::to_string(version) + "\n";
}

std::optional<uint32_t> parse_request(std::string_view line) {
  if (line.size() > max_line || line.empty() || line.back() != '\n')
    return std::nullopt;
  line = strip_newline(line);
  if (line.substr(0, request_prefix.size()) != request_prefix)
    return std::nullopt;
  auto digits = line.substr(request_prefix.size());
  if (digits.empty() || digits.size() > 9)
    return std::nullopt;
  uint32_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

std::string format_ticket(const door_ticket& t) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "ticket %016llx%016llx\n",
                static_cast<unsigned long long>(t.id), static_cast<unsigned long long>(t.secret));
  return buf;
}

std::string format_denial(std::string_view reason) {
  std::string out{denied_prefix};
  for (char c : reason.substr(0, max_line - denied_prefix.size() - 1))
    out += (c == '\n' || c == '\0') ? ' ' : c;
  return out + "\n";
}

std::variant<door_ticket, std::string> parse_reply(std::string_view line) {
  if (line.size() > max_line || line.empty() || line.back() != '\n')
    return std::string{"malformed answer from the door"};
  line = strip_newline(line);
  if (line.substr(0, denied_prefix.size()) == denied_prefix)
    return std::string{line.substr(denied_prefix.size())};
  if (line.substr(0, ticket_prefix.size()) != ticket_prefix)
    return std::string{"malformed answer from the door"};
  auto hex = line.substr(ticket_prefix.size());
  if (hex.size() != 32)
    return std::string{"malformed ticket from the door"};
  auto id = parse_hex16(hex.substr(0, 16));
  auto secret = parse_hex16(hex.substr(16));
  if (!id || !secret || *id == 0 || *secret == 0)
    return std::string{"malformed ticket from the door"};
  return door_ticket{*id, *secret};
}

caf::expected<door_ticket> ask(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return make_error(errc::config_error, "door path '" + path + "' is empty or too long");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_error(errc::engine_unreachable, std::string{"socket: "} + std::strerror(errno));
  auto fail = [&](errc code, std::string what) {
    ::close(fd);
    return caf::expected<door_ticket>{make_error(code, std::move(what))};
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return fail(errno == EACCES ? errc::access_denied : errc::engine_unreachable,
                "cannot knock at the engine's door " + path + ": " + std::strerror(errno));
  auto req = format_request();
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return fail(errc::engine_unreachable, "the door at " + path + " closed");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string reply;
  char buf[max_line + 1];
  while (reply.size() <= max_line && (reply.empty() || reply.back() != '\n')) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return fail(errc::engine_unreachable, "the door at " + path + " did not answer in time");
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
      return fail(errc::engine_unreachable, std::string{"poll: "} + std::strerror(errno));
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto parsed = parse_reply(reply);
  if (auto* why = std::get_if<std::string>(&parsed))
    return make_error(errc::access_denied, "the engine's door refused: " + *why);
  return std::get<door_ticket>(parsed);
}

} // namespace cafshm::door
