#include "ticket_office.hpp"

#include <unistd.h>

#include "secure_random.hpp"

namespace cafshm {

ticket_office::ticket_office(size_t capacity, std::chrono::milliseconds lifetime)
  : capacity_(capacity), lifetime_(lifetime) {
}

ticket_office::~ticket_office() {
  for (auto& [id, e] : open_)
    if (e.creds.pidfd >= 0)
      ::close(e.creds.pidfd);
}

void ticket_office::expire_locked(std::chrono::steady_clock::time_point now) {
  for (auto i = open_.begin(); i != open_.end();) {
    if (i->second.expires <= now) {
      if (i->second.creds.pidfd >= 0)
        ::close(i->second.creds.pidfd);
      i = open_.erase(i);
    } else {
      ++i;
    }
  }
}

std::optional<door_ticket> ticket_office::issue(peer_credentials creds) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> guard{mtx_};
  expire_locked(now);
  if (open_.size() >= capacity_) {
    if (creds.pidfd >= 0)
      ::close(creds.pidfd);
    return std::nullopt;
  }
  door_ticket t{secure_token(), secure_token()};
  while (open_.count(t.id) != 0)
    t.id = secure_token();
  open_.emplace(t.id, entry{t.secret, creds, now + lifetime_});
  return t;
}

std::optional<peer_credentials> ticket_office::redeem(const door_ticket& t) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> guard{mtx_};
  expire_locked(now);
  auto i = open_.find(t.id);
  if (i == open_.end() || i->second.secret != t.secret || t.secret == 0)
    return std::nullopt;
  auto creds = i->second.creds;
  open_.erase(i);
  return creds;
}

size_t ticket_office::open_tickets() {
  std::lock_guard<std::mutex> guard{mtx_};
  return open_.size();
}

} // namespace cafshm
