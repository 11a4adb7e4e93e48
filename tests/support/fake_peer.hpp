// A test playing a peer engine against an engine that accepts unauthenticated peers
// (remote.unauthenticated_peers, as test daemons do unless told otherwise), or with a proof of
// its choice: finds the engine's peer gateway and links to it as engine `id` (challenge with an
// ephemeral X25519 key, then hello), deriving the link's keys as an engine does, so that it
// seals its messages as a real peer would (link_seal.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/scoped_actor.hpp>

#include "cafshm/engine.hpp"
#include "cafshm/error.hpp"
#include "link_seal.hpp"
#include "peer_auth.hpp"

namespace cafshm::test {

struct fake_peer_link {
  peer_actor gateway;  // where the peer messages go
  uint64_t token = 0;  // the link token the engine issued
  uint64_t engine = 0; // the engine's id
  link_sealer out;       // seals messages to the engine: token, key, next sequence
  link_opener in;        // the key and sequences of the engine's messages to this peer
  link_sealer answering; // seals this peer's answers to the engine's requests
  link_opener answers;   // opens the engine's answers to this peer's requests

  template <class... Ts>
  peer_seal seal(caf::atom_value type, const Ts&... fields) {
    return out.seal(type, fields...);
  }
  /// The seal of this peer's answer `x` to the engine's request of `type`.
  template <class T>
  peer_seal answer(caf::atom_value type, const T& x) {
    return answering.answer(type, x);
  }
};

/// The handshake as engine `id` at `gateway`, naming `own_gateway` as the dialer's gateway (it
/// must outlive the link: the engine watches it) and `reverse_token` as the token the engine
/// uses toward it; `prove(transcript)` makes the dialer's proof (a peer_proof). An empty link
/// and `err` on failure.
template <class Prove>
fake_peer_link handshake_as(caf::scoped_actor& self, const peer_actor& gateway,
                            const caf::actor& own_gateway, uint64_t id, Prove prove,
                            caf::error& err, uint64_t reverse_token = 1) {
  using namespace std::chrono_literals;
  fake_peer_link link;
  link.gateway = gateway;
  std::vector<char> nonce(link_nonce_bytes, 'f');
  auto exchange = link_key_exchange::generate();
  if (!exchange) {
    err = std::move(exchange.error());
    return {};
  }
  std::vector<char> theirs;
  std::vector<char> their_public;
  self->request(gateway, 10s, challenge_atom::value, protocol_version, id, nonce,
                exchange->public_key())
    .receive(
      [&](uint32_t, uint64_t listener, std::vector<char>& n, std::vector<char>& k, peer_proof&) {
        link.engine = listener;
        theirs = std::move(n);
        their_public = std::move(k);
      },
      [&](caf::error& e) { err = std::move(e); });
  if (theirs.empty())
    return {};
  auto keys = exchange->derive(their_public, link_role::dialer, id, link.engine, nonce, theirs);
  if (!keys) {
    err = std::move(keys.error());
    return {};
  }
  peer_proof proof = prove(link_transcript(link_role::dialer, id, link.engine, nonce, theirs,
                                           exchange->public_key(), their_public));
  self->request(gateway, 10s, hello_atom::value, id, reverse_token, own_gateway, theirs, proof)
    .receive([&](uint64_t, uint64_t t) { link.token = t; },
             [&](caf::error& e) { err = std::move(e); });
  if (link.token == 0)
    return {};
  link.out = link_sealer{link.token, keys->dialer_to_listener};
  link.in = link_opener{keys->listener_to_dialer};
  link.answering = link_sealer{reverse_token, keys->dialer_to_listener};
  link.answers = link_opener{keys->listener_to_dialer};
  return link;
}

/// Links `self` (it must outlive the link: the engine watches it) as engine `id` to `engine`'s
/// gateway, without a proof; an empty link and `err` on failure.
inline fake_peer_link link_fake_peer(caf::scoped_actor& self, const engine_actor& engine,
                                     uint64_t id, caf::error& err) {
  using namespace std::chrono_literals;
  peer_actor gateway;
  self->request(engine, 10s, gateway_atom::value)
    .receive([&](caf::actor& gw) { gateway = caf::actor_cast<peer_actor>(gw); },
             [&](caf::error& e) { err = std::move(e); });
  if (!gateway)
    return {};
  return handshake_as(
    self, gateway, caf::actor_cast<caf::actor>(self), id,
    [](const std::vector<unsigned char>&) { return peer_proof{}; }, err);
}

} // namespace cafshm::test
