// The peer gateway: the actor that other engines talk to (peer_actor in cafshm/engine.hpp).
// It refuses peers of another protocol_version (and messages it cannot read) with
// version_mismatch, runs a link's handshake (challenge, hello with proofs, peer_auth.hpp) and
// hands every peer message on to its engine with the gateway key; the engine actor itself takes
// no peer message from anyone else. It holds no transfer state: the engine does (remote_link.hpp).
#pragma once

#include <chrono>
#include <cstddef>

#include "engine_state.hpp"

namespace cafshm {

/// Handshakes a gateway keeps open at once (a challenge answered, its hello not yet seen); a
/// further challenge ends the oldest.
constexpr size_t max_pending_challenges = 1024;

/// Peers of another protocol version (or sending garbage) that a gateway logs, each once per
/// sending node and version; further ones are refused without a log line.
constexpr size_t max_logged_refusals = 256;

/// How long a challenge waits for its hello.
constexpr std::chrono::seconds challenge_lifetime{30};

/// Spawns the gateway of the engine `self` (hidden, linked to it: it ends with the engine) and
/// stores it, its key and the engine's authenticator in self->state.
void spawn_peer_gateway(engine_pointer self, std::shared_ptr<const peer_authenticator> auth);

} // namespace cafshm
