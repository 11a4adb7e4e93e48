// The engine's side of engine-to-engine transfers: linking peers (dialing only what
// dial_policy.hpp allows, proving and checking engine ids with peer_auth.hpp), transmit (chunked, windowed,
// checksummed), receiving, the content cache and remote reads. Handlers of the engine actor.
//
// A transmit: the sender pins the block (a view of its own session) and offers its size. The
// receiver checks the destination (target process, its quota, the name) and allocates the block
// up front, so that out_of_memory, quota_exceeded or name_taken refuse the transmit before any
// payload moves, and asks for the chunks. A receiver with a cache asks first for the block's
// XXH3 (the sender then hashes the block once more, up front, unless it hashed the unchanged
// block before: memory_manager::content_stamp) and, holding that content, copies it locally and
// answers with a receipt: no payload moves. The sender keeps at most
// remote.window_chunks chunks of remote.chunk_bytes in flight, each with its own XXH3, and feeds
// each chunk, as it first sends it, into a streaming XXH3 of the block: one hashing pass. A
// chunk that fails its checksum is resent up to remote.checksum_retries times. After the last
// chunk the sender commits with the block's XXH3; the receiver, which fed its own streaming
// XXH3 as the chunks arrived (never re-reading the block), compares, hands the block to the
// target process (and name), tells target.deliver_to, and answers with the receipt. Requests of
// a transmit have no timeout of their own: a peer that goes down, or says nothing at all for
// remote.stall_timeout, fails every transmit with it on both sides; partial blocks are freed,
// nothing partial is ever delivered.
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
// `gateway` is where this engine sends to that peer; `keys` are the link's keys (dialer to
// listener, then listener to dialer).
caf::result<uint64_t, uint64_t> hello(engine_pointer self, uint64_t peer_id,
                                     uint64_t reverse_token, caf::actor gateway,
                                     std::string identity, const std::vector<char>& keys);
caf::result<transmit_receipt> transmit(engine_pointer self, const session& s,
                                       const block_ref& ref, const std::string& peer,
                                       transmit_target target);
// The peer messages below carry a seal (link_seal.hpp) with the link token this engine issued
// at a handshake; the sending engine's id is taken from the token. A message without a valid
// token, with a MAC not made with the link's key or with a sequence not above the last one is
// refused (access_denied), counted in stats and logged once per link.
// Every answer but an error carries this engine's seal (its key of the link, the request's
// token, the next sequence of its answers on that link).
caf::result<transmit_receipt, peer_seal> offer(engine_pointer self, const peer_seal& seal,
                                               transmit_offer& o);
caf::result<done_atom, peer_seal> chunk(engine_pointer self, const peer_seal& seal,
                                        transmit_chunk& c);
caf::result<transmit_receipt, peer_seal> commit(engine_pointer self, const peer_seal& seal,
                                                uint64_t id, uint64_t hash);
void abort(engine_pointer self, const peer_seal& seal, uint64_t id);
caf::result<uint64_t, peer_seal> version(engine_pointer self, const peer_seal& seal,
                                         const block_ref& ref);
caf::result<uint64_t, peer_seal> pull(engine_pointer self, const peer_seal& seal,
                                      const block_ref& ref);

/// A read of a block of another engine: served from the cache while the block's version there
/// is unchanged, else fetched whole (pulled) into the cache first. The pull has no time limit of
/// its own: it fails when that engine goes down or sends nothing for remote.stall_timeout.
caf::result<std::vector<char>> read(engine_pointer self, const session& s, const block_ref& ref,
                                    uint64_t offset, uint64_t length);

/// Ends everything that depended on `source` (a peer engine or a sender). Returns whether it
/// was a peer.
bool peer_down(engine_pointer self, const caf::actor_addr& source);

/// Fails outgoing transmits whose destination answered nothing at all (to any transmit) for
/// remote.stall_timeout, drops incoming ones whose sender has been silent that long (a
/// stopped process or a cut link that no down message reports): partial blocks are freed,
/// and fails remote reads whose block's engine has sent nothing that long.
void check_stalls(engine_pointer self);

/// Dials every peer of remote.peers, and keeps dialing each one that is not linked (after
/// remote.redial_min, doubling up to remote.redial_max); logs when a peer links or goes down.
void keep_linked(engine_pointer self);
/// One dial of remote.peers[index], unless it is linked or being dialed.
void redial(engine_pointer self, uint64_t index);

/// The end of a data connection's thread: a sender commits the transmit (or fails it), a
/// receiver keeps the block's digest for the commit (or frees the block).
void data_ended(engine_pointer self, uint64_t peer, uint64_t id, bool incoming, uint64_t digest,
                caf::error err);

/// Adds the remote side's numbers.
void fill_stats(const engine_state& st, engine_stats& stats);

} // namespace cafshm::remote
