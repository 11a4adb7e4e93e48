// A test playing a peer engine against an engine that accepts unauthenticated peers
// (remote.unauthenticated_peers, as test daemons do unless told otherwise): finds the engine's
// peer gateway and links to it as engine `id` (challenge, then hello without a proof).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/scoped_actor.hpp>

#include "cafshm/engine.hpp"
#include "cafshm/error.hpp"

namespace cafshm::test {

struct fake_peer_link {
  peer_actor gateway; // where the peer messages go
  uint64_t token = 0; // the link token the engine issued
};

/// Links `self` (it must outlive the link: the engine watches it) as engine `id` to `engine`'s
/// gateway; an empty link and `err` on failure.
inline fake_peer_link link_fake_peer(caf::scoped_actor& self, const engine_actor& engine,
                                     uint64_t id, caf::error& err) {
  using namespace std::chrono_literals;
  fake_peer_link link;
  self->request(engine, 10s, gateway_atom::value)
    .receive([&](caf::actor& gw) { link.gateway = caf::actor_cast<peer_actor>(gw); },
             [&](caf::error& e) { err = std::move(e); });
  if (!link.gateway)
    return {};
  std::vector<char> nonce(link_nonce_bytes, 'f');
  std::vector<char> theirs;
  self->request(link.gateway, 10s, challenge_atom::value, protocol_version, id, nonce)
    .receive(
      [&](uint32_t, uint64_t, std::vector<char>& n, peer_proof&) { theirs = std::move(n); },
             [&](caf::error& e) { err = std::move(e); });
  if (theirs.empty())
    return {};
  self->request(link.gateway, 10s, hello_atom::value, id, uint64_t{1},
                caf::actor_cast<caf::actor>(self), theirs, peer_proof{})
    .receive([&](uint64_t, uint64_t t) { link.token = t; },
             [&](caf::error& e) { err = std::move(e); });
  return link.token != 0 ? link : fake_peer_link{};
}

} // namespace cafshm::test
