#include "peer_gateway.hpp"

#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include <caf/actor_cast.hpp>
#include <caf/message_view.hpp>
#include <caf/node_id.hpp>

#include "cafshm/error.hpp"
#include "link_seal.hpp"
#include "secure_random.hpp"

namespace cafshm {

namespace {

struct pending_challenge {
  uint64_t dialer = 0;
  std::vector<char> dialer_nonce;
  std::vector<char> dialer_public;
  std::optional<link_key_exchange> own; // this side's ephemeral key of the handshake
  std::chrono::steady_clock::time_point expires;
};

struct gateway_state {
  engine_impl engine;
  uint64_t key = 0;
  uint64_t engine_id = 0;
  std::shared_ptr<const peer_authenticator> auth;
  std::map<std::vector<char>, pending_challenge> challenges; // by the listener's nonce
  std::deque<std::vector<char>> order;                       // oldest first
  std::string engine_name;                                   // for log lines
  // (node of the sender, its version or "unknown") of refusals logged already: each once
  std::set<std::pair<std::string, std::string>> logged_refusals;
  static inline const char* name = "cafshm.peer_gateway";

  gateway_state() = default; // not an aggregate: CAF would construct it from the actor pointer
  gateway_state(const gateway_state&) = delete;
  gateway_state& operator=(const gateway_state&) = delete;
};

using gateway_impl = peer_actor::stateful_pointer<gateway_state>;

std::vector<char> fresh_nonce() {
  std::vector<char> nonce(link_nonce_bytes);
  secure_random(std::as_writable_bytes(std::span{nonce}));
  return nonce;
}

// Drops expired challenges and, beyond the bound, the oldest.
void prune(gateway_state& st) {
  auto now = std::chrono::steady_clock::now();
  while (!st.order.empty()) {
    auto i = st.challenges.find(st.order.front());
    bool stale = i == st.challenges.end() || i->second.expires < now
                 || st.challenges.size() >= max_pending_challenges;
    if (!stale)
      break;
    if (i != st.challenges.end())
      st.challenges.erase(i);
    st.order.pop_front();
  }
}

// Refuses a peer that speaks protocol version `theirs` (nullopt: a message of no version this
// gateway can read), logging it once per sending node and version.
caf::error refuse_version(gateway_impl self, std::optional<uint32_t> theirs) {
  auto& st = self->state;
  auto version = theirs ? "protocol version " + std::to_string(*theirs)
                        : std::string{"a message of no protocol version it can read"};
  auto what = "a peer engine sent " + version + "; this engine speaks protocol version "
              + std::to_string(protocol_version) + ": link only engines of one cafshm version";
  std::string node = "an unknown node";
  if (const auto& sender = self->current_sender())
    node = "node " + to_string(sender->node());
  auto key = std::make_pair(node, theirs ? std::to_string(*theirs) : std::string{"unknown"});
  if (st.logged_refusals.size() < max_logged_refusals && st.logged_refusals.insert(key).second)
    std::cerr << "cafshm engine '" << st.engine_name << "': refused a link from " << node << ": "
              << what << std::endl;
  return make_error(errc::version_mismatch, what);
}

peer_actor::behavior_type gateway_behavior(gateway_impl self, engine_impl engine, uint64_t key,
                                           uint64_t engine_id,
                                           std::shared_ptr<const peer_authenticator> auth,
                                           std::string engine_name) {
  self->state.engine_name = std::move(engine_name);
  // Whatever the gateway cannot read is no peer message of this version: an engine of another
  // version (its challenge names its version first in every version) or garbage.
  self->set_default_handler(
    [self](caf::scheduled_actor*, caf::message_view& m) -> caf::result<caf::message> {
      const auto& xs = m.content();
      std::optional<uint32_t> theirs;
      if (xs.size() >= 2 && xs.match_element<caf::atom_value>(0)
          && xs.get_as<caf::atom_value>(0) == challenge_atom::value
          && xs.match_element<uint32_t>(1))
        theirs = xs.get_as<uint32_t>(1);
      return refuse_version(self, theirs);
    });
  self->state.engine = std::move(engine);
  self->state.key = key;
  self->state.engine_id = engine_id;
  self->state.auth = std::move(auth);
  return {
    [self](gateway_atom) { return caf::actor_cast<caf::actor>(self); },
    [self](challenge_atom, uint32_t version, uint64_t dialer,
           const std::vector<char>& dialer_nonce, const std::vector<char>& dialer_public)
      -> caf::result<uint32_t, uint64_t, std::vector<char>, std::vector<char>, peer_proof> {
      auto& st = self->state;
      if (version != protocol_version)
        return refuse_version(self, version);
      if (st.auth->mode() == peer_auth_mode::closed)
        return st.auth->verify({}, {}).error(); // says why and what to configure
      if (dialer == 0 || dialer == st.engine_id || dialer_nonce.size() != link_nonce_bytes
          || dialer_public.size() != link_public_key_bytes)
        return make_error(errc::invalid_argument,
                          "a challenge needs another engine's id, a nonce of "
                            + std::to_string(link_nonce_bytes) + " bytes and a public key of "
                            + std::to_string(link_public_key_bytes) + " bytes");
      prune(st);
      auto own = link_key_exchange::generate();
      if (!own)
        return std::move(own.error());
      auto nonce = fresh_nonce();
      auto proof = st.auth->prove(link_transcript(link_role::listener, dialer, st.engine_id,
                                                  dialer_nonce, nonce, dialer_public,
                                                  own->public_key()));
      if (!proof)
        return std::move(proof.error());
      auto own_public = own->public_key();
      st.challenges[nonce] = {dialer, dialer_nonce, dialer_public, std::move(*own),
                              std::chrono::steady_clock::now() + challenge_lifetime};
      st.order.push_back(nonce);
      return {protocol_version, st.engine_id, std::move(nonce), std::move(own_public),
              std::move(*proof)};
    },
    [self](hello_atom, uint64_t dialer, uint64_t reverse_token, caf::actor& dialer_gateway,
           const std::vector<char>& nonce, const peer_proof& proof)
      -> caf::result<uint64_t, uint64_t> {
      auto& st = self->state;
      prune(st);
      auto i = st.challenges.find(nonce);
      if (i == st.challenges.end() || i->second.dialer != dialer)
        return make_error(errc::access_denied,
                          "hello without a fresh challenge of this engine for that engine id");
      auto pending = std::move(i->second);
      st.challenges.erase(i); // good for one hello
      auto who = st.auth->verify(link_transcript(link_role::dialer, dialer, st.engine_id,
                                                 pending.dialer_nonce, nonce,
                                                 pending.dialer_public, pending.own->public_key()),
                                 proof);
      if (!who)
        return std::move(who.error());
      if (!dialer_gateway || reverse_token == 0)
        return make_error(errc::invalid_argument, "hello needs the dialer's gateway and a token");
      auto keys = pending.own->derive(pending.dialer_public, link_role::listener, dialer,
                                      st.engine_id, pending.dialer_nonce, nonce);
      if (!keys)
        return std::move(keys.error());
      std::vector<char> both(keys->dialer_to_listener.begin(), keys->dialer_to_listener.end());
      both.insert(both.end(), keys->listener_to_dialer.begin(), keys->listener_to_dialer.end());
      return self->delegate(st.engine, forward_atom::value, st.key, hello_atom::value, dialer,
                            reverse_token, std::move(dialer_gateway), std::move(*who),
                            std::move(both));
    },
    [self](offer_atom, peer_seal& seal, transmit_offer& o) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            offer_atom::value, std::move(seal), std::move(o));
    },
    [self](chunk_atom, peer_seal& seal, transmit_chunk& c) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            chunk_atom::value, std::move(seal), std::move(c));
    },
    [self](commit_atom, peer_seal& seal, uint64_t id, uint64_t hash) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            commit_atom::value, std::move(seal), id, hash);
    },
    [self](abort_atom, peer_seal& seal, uint64_t id) {
      self->send(self->state.engine, forward_atom::value, self->state.key, abort_atom::value,
                 std::move(seal), id);
    },
    [self](version_atom, peer_seal& seal, const block_ref& ref) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            version_atom::value, std::move(seal), ref);
    },
    [self](pull_atom, peer_seal& seal, const block_ref& ref) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            pull_atom::value, std::move(seal), ref);
    },
  };
}

} // namespace

void spawn_peer_gateway(engine_pointer self, std::shared_ptr<const peer_authenticator> auth) {
  auto& st = self->state;
  st.auth = auth;
  st.gateway_key = secure_token();
  st.gateway = self->spawn<caf::hidden + caf::linked>(
    gateway_behavior, caf::actor_cast<engine_impl>(self), st.gateway_key, st.mm->engine_id(),
    std::move(auth), st.config.engine.name);
}

} // namespace cafshm
