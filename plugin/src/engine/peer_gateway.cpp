#include "peer_gateway.hpp"

#include <deque>
#include <map>

#include <caf/actor_cast.hpp>

#include "cafshm/error.hpp"
#include "secure_random.hpp"

namespace cafshm {

namespace {

struct pending_challenge {
  uint64_t dialer = 0;
  std::vector<char> dialer_nonce;
  std::chrono::steady_clock::time_point expires;
};

struct gateway_state {
  engine_impl engine;
  uint64_t key = 0;
  uint64_t engine_id = 0;
  std::shared_ptr<const peer_authenticator> auth;
  std::map<std::vector<char>, pending_challenge> challenges; // by the listener's nonce
  std::deque<std::vector<char>> order;                       // oldest first
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

peer_actor::behavior_type gateway_behavior(gateway_impl self, engine_impl engine, uint64_t key,
                                           uint64_t engine_id,
                                           std::shared_ptr<const peer_authenticator> auth) {
  self->state.engine = std::move(engine);
  self->state.key = key;
  self->state.engine_id = engine_id;
  self->state.auth = std::move(auth);
  return {
    [self](gateway_atom) { return caf::actor_cast<caf::actor>(self); },
    [self](challenge_atom, uint64_t dialer, const std::vector<char>& dialer_nonce)
      -> caf::result<uint64_t, std::vector<char>, peer_proof> {
      auto& st = self->state;
      if (st.auth->mode() == peer_auth_mode::closed)
        return st.auth->verify({}, {}).error(); // says why and what to configure
      if (dialer == 0 || dialer == st.engine_id || dialer_nonce.size() != link_nonce_bytes)
        return make_error(errc::invalid_argument,
                          "a challenge needs another engine's id and a nonce of "
                            + std::to_string(link_nonce_bytes) + " bytes");
      prune(st);
      auto nonce = fresh_nonce();
      auto proof = st.auth->prove(
        link_transcript(link_role::listener, dialer, st.engine_id, dialer_nonce, nonce));
      if (!proof)
        return std::move(proof.error());
      st.challenges[nonce] = {dialer, dialer_nonce,
                              std::chrono::steady_clock::now() + challenge_lifetime};
      st.order.push_back(nonce);
      return {st.engine_id, std::move(nonce), std::move(*proof)};
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
      auto dialer_nonce = std::move(i->second.dialer_nonce);
      st.challenges.erase(i); // good for one hello
      auto who = st.auth->verify(
        link_transcript(link_role::dialer, dialer, st.engine_id, dialer_nonce, nonce), proof);
      if (!who)
        return std::move(who.error());
      if (!dialer_gateway || reverse_token == 0)
        return make_error(errc::invalid_argument, "hello needs the dialer's gateway and a token");
      return self->delegate(st.engine, forward_atom::value, st.key, hello_atom::value, dialer,
                            reverse_token, std::move(dialer_gateway), std::move(*who));
    },
    [self](offer_atom, uint64_t token, transmit_offer& o) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            offer_atom::value, token, std::move(o));
    },
    [self](chunk_atom, uint64_t token, transmit_chunk& c) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            chunk_atom::value, token, std::move(c));
    },
    [self](commit_atom, uint64_t token, uint64_t id, uint64_t hash) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            commit_atom::value, token, id, hash);
    },
    [self](abort_atom, uint64_t token, uint64_t id) {
      self->send(self->state.engine, forward_atom::value, self->state.key, abort_atom::value,
                 token, id);
    },
    [self](version_atom, uint64_t token, const block_ref& ref) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            version_atom::value, token, ref);
    },
    [self](pull_atom, uint64_t token, const block_ref& ref) {
      return self->delegate(self->state.engine, forward_atom::value, self->state.key,
                            pull_atom::value, token, ref);
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
    std::move(auth));
}

} // namespace cafshm
