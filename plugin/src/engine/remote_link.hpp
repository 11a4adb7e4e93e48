// The engine's side of engine-to-engine transfers: linking peers (dialing only what
// dial_policy.hpp allows, proving and checking engine ids with peer_auth.hpp), transmit (chunked, windowed,
// checksummed), receiving, the content cache and remote reads. Handlers of the engine actor.
//
// A transmit: the sender pins the block (a view of its own session) and offers (size, XXH3 of
// the whole block). The receiver either has that content in its cache (copies it locally and
// answers with a receipt: no payload moves) or allocates the destination block up front
// (out_of_memory refuses the transfer before any payload) and asks for the chunks. The sender
// keeps at most remote.window_chunks chunks of remote.chunk_bytes in flight, each with its own
// XXH3; a chunk that fails its checksum is resent up to remote.checksum_retries times. After the
// last chunk the sender commits; the receiver verifies the whole block, hands it to the target
// process (and name), tells target.deliver_to, and answers with the receipt. A peer that goes
// down fails every transfer with it on both sides; partial blocks are freed, nothing partial is
// ever delivered.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/make_message.hpp>
#include <caf/result.hpp>

#include "engine_state.hpp"

namespace cafshm::remote {

caf::result<uint64_t> link(engine_pointer self, const std::string& host, uint16_t port);
// A hello the gateway verified: `identity` proved `peer_id` (peer_authenticator::verify);
// `gateway` is where this engine sends to that peer.
caf::result<uint64_t, uint64_t> hello(engine_pointer self, uint64_t peer_id,
                                     uint64_t reverse_token, caf::actor gateway,
                                     std::string identity);
caf::result<transmit_receipt> transmit(engine_pointer self, const session& s,
                                       const block_ref& ref, const std::string& peer,
                                       transmit_target target);
// The peer messages below carry the link token this engine issued at hello; the sending
// engine's id is taken from it (a message without a valid token is refused, access_denied).
caf::result<transmit_receipt> offer(engine_pointer self, uint64_t token, transfer_offer& o);
caf::result<done_atom> chunk(engine_pointer self, uint64_t token, transfer_chunk& c);
caf::result<transmit_receipt> commit(engine_pointer self, uint64_t token, uint64_t id);
void abort(engine_pointer self, uint64_t token, uint64_t id);
caf::result<uint64_t> version(engine_pointer self, uint64_t token, const block_ref& ref);
caf::result<uint64_t> pull(engine_pointer self, uint64_t token, const block_ref& ref);

/// A read of a block of another engine: served from the cache while the block's version there
/// is unchanged, else fetched whole into the cache first.
caf::result<std::vector<char>> read(engine_pointer self, const session& s, const block_ref& ref,
                                    uint64_t offset, uint64_t length);

/// Ends everything that depended on `source` (a peer engine or a sender). Returns whether it
/// was a peer.
bool peer_down(engine_pointer self, const caf::actor_addr& source);

/// Aborts incoming transfers whose sender has been silent for longer than `idle` (a cut link
/// that no down message reports): their partial blocks are freed.
void expire_idle(engine_pointer self, std::chrono::milliseconds idle);

/// Adds the remote side's numbers.
void fill_stats(const engine_state& st, engine_stats& stats);

} // namespace cafshm::remote
