// State of the engine actor, shared by its local handlers (engine.cpp) and its engine-to-engine
// handlers (remote_link.cpp). Owned by the actor; nothing here is shared memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <unistd.h>

#include <caf/actor_addr.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "listen_address.hpp"

#include "actor_directory.hpp"
#include "block_cache.hpp"
#include "data_connection.hpp"
#include "cafshm/engine.hpp"
#include "memory_manager.hpp"
#include "cafshm/settings.hpp"
#include "link_seal.hpp"
#include "peer_auth.hpp"
#include "request_relay.hpp"
#include "ticket_office.hpp"
#include "xxh3_stream.hpp"

namespace cafshm {

using liveness_atom = caf::atom_constant<caf::atom("shm_alive")>;
// A peer message that the engine's peer gateway checked and hands on to the engine, with the
// gateway key (random, in process memory only): the engine takes peer messages only so. The
// sender of a CAF message proves nothing (CAF 0.17's BASP lets a remote node name any local
// actor as the sender of a routed message), a key nobody outside the process knows does.
using forward_atom = caf::atom_constant<caf::atom("shm_fwd")>;
// Dial the configured peer remote.peers[index] again if it is not linked.
using redial_atom = caf::atom_constant<caf::atom("shm_redial")>;
// The end of a data connection's thread (data_connection.hpp), with the gateway key: peer engine
// id, transfer id, whether it was receiving, the block's XXH3 or the error.
using data_end_atom = caf::atom_constant<caf::atom("shm_dend")>;
// clang-format off
using engine_impl = engine_actor::extend<
  caf::reacts_to<liveness_atom>,
  caf::reacts_to<redial_atom, uint64_t>,
  caf::reacts_to<data_end_atom, uint64_t, uint64_t, uint64_t, bool, uint64_t, caf::error>,
  // key, hello, dialer id, link token toward the dialer, the dialer's gateway, who proved it,
  // the link's keys (dialer to listener, then listener to dialer: 2 x link_mac_key_bytes)
  caf::replies_to<forward_atom, uint64_t, hello_atom, uint64_t, uint64_t, caf::actor, std::string,
                  std::vector<char>>
    ::with<uint64_t, uint64_t>,
  caf::replies_to<forward_atom, uint64_t, offer_atom, peer_seal, transmit_offer>
    ::with<transmit_receipt, peer_seal>,
  caf::replies_to<forward_atom, uint64_t, chunk_atom, peer_seal, transmit_chunk>
    ::with<done_atom, peer_seal>,
  caf::replies_to<forward_atom, uint64_t, commit_atom, peer_seal, uint64_t, uint64_t>
    ::with<transmit_receipt, peer_seal>,
  caf::reacts_to<forward_atom, uint64_t, abort_atom, peer_seal, uint64_t>,
  caf::replies_to<forward_atom, uint64_t, version_atom, peer_seal, block_ref>
    ::with<uint64_t, peer_seal>,
  caf::replies_to<forward_atom, uint64_t, pull_atom, peer_seal, block_ref>
    ::with<uint64_t, peer_seal>>;
// clang-format on

/// A linked peer engine: where this engine sends to it.
struct peer_link {
  peer_actor handle;   // the peer's gateway
  // the token the peer issued to this engine, the key of this direction and the next sequence
  // number: seals every message sent to it (link_seal.hpp)
  link_sealer out;
  // the key of the peer's direction of the same handshake and the last sequence of its answers
  // taken: opens the answers to what this engine sends (shared with requests in flight, so that
  // a re-link does not change what their answers are checked with)
  std::shared_ptr<link_opener> answers;
  std::string address; // "host:port" as linked, or "node <id>" when the peer linked to us
  bool dialed = false; // this engine dialed the peer; a link the peer opened never replaces a
                       // dialed one
  std::string identity; // who proved the peer's engine id (peer_authenticator::verify)
  std::string name;     // the name in remote.peers, if it is a configured peer
  std::string host;     // the host it was dialed at or its connection comes from: where a data
                        // port the peer names with a wildcard address is reached
  // latest answer of any kind from this peer: a transmit waiting for it stalls only when
  // the peer said nothing at all for remote.stall_timeout
  std::chrono::steady_clock::time_point last_heard = std::chrono::steady_clock::now();
};

/// A link token this engine issued at a handshake: whose it is and how its messages are opened.
struct issued_link {
  uint64_t peer = 0;  // engine id of the peer the token was issued to
  link_opener in;     // the key of the peer's direction, the last sequence taken
  link_sealer answers; // seals this engine's answers to them: this direction's key
};

/// A configured peer (remote.peers) that the engine keeps linked: redialed with back-off.
struct configured_peer_state {
  uint64_t engine_id = 0;            // while linked
  std::chrono::milliseconds backoff{0};
  bool dialing = false;
  bool ever_linked = false;
};

/// Inbound peer links this engine accepts at most at once (one per peer engine id; a second
/// hello of the same engine replaces its link).
constexpr size_t max_inbound_peers = 256;

/// Link tokens valid at once per peer engine (one per direction of a pair of links, plus
/// re-links); a further hello or dial ends the oldest.
constexpr size_t max_tokens_per_peer = 4;

/// A block this engine is sending. The block is pinned by a view of the engine's own session,
/// so its memory stays valid (even if its owner frees it or dies) until the transfer ends.
struct outgoing_transmit {
  uint64_t peer = 0;          // engine id of the destination
  block_ref ref;
  std::span<const std::byte> bytes;
  transmit_offer offer;
  uint64_t next_offset = 0;   // first byte not yet sent
  // the block's digest, fed with each chunk as it is first sent (in order); unused when the
  // offer carried the digest (a destination with a cache asked for it up front)
  xxh3_stream digest;
  uint64_t digested = 0;      // bytes fed to `digest`
  uint64_t acked = 0;         // bytes confirmed by the destination
  uint32_t in_flight = 0;     // chunks sent and not yet confirmed (<= remote.window_chunks)
  uint32_t retries_left = 0;  // chunk resends allowed after checksum mismatches
  uint64_t payload_bytes = 0;
  // latest answer from the destination to this transmit (offer, chunk or commit)
  std::chrono::steady_clock::time_point last_progress = std::chrono::steady_clock::now();
  // who waits for the end: a local transmit or a peer's pull
  caf::typed_response_promise<transmit_receipt> receipt;
  caf::typed_response_promise<uint64_t, peer_seal> pulled;
  uint64_t pull_token = 0; // the token the pull came under: its answer is sealed with its link
  bool is_pull = false;
  // the payload's data connection while it runs (its thread reads `bytes`: cancelled before
  // the block is unpinned); the block's XXH3 as its thread computed it, once it ended well
  std::shared_ptr<data_send> data;
  std::optional<uint64_t> sent_digest;
};

/// A block this engine is receiving, held by the engine until verified and delivered.
struct incoming_transmit {
  transmit_offer offer;
  block_ref block;
  std::span<std::byte> bytes;
  caf::actor_addr from;       // the sending engine (monitored)
  process_id destination = process_id::engine; // target.process, or the engine
  // digest of the bytes [0, verified), fed as chunks arrive in order; chunks that arrived
  // ahead of a gap (after a resend) wait in `ahead` (offset -> length) and are fed from the
  // block once the gap is filled
  xxh3_stream digest;
  uint64_t verified = 0;
  std::map<uint64_t, uint64_t> ahead;
  std::chrono::steady_clock::time_point last_activity; // offer or latest chunk
  uint64_t read = 0; // a cache fill: the remote read (engine_state::reads) that pulled it
  // the payload's data connection (its thread writes `bytes`: cancelled before the block is
  // freed), the token it waits under, and the block's XXH3 once its thread verified every byte
  std::shared_ptr<data_receive> data;
  uint64_t data_token = 0;
  std::optional<uint64_t> received_digest;
};

/// A remote read of this engine waiting for its pull: the block's engine sends the block as a
/// cache fill. It ends when the pull answers, when that engine goes down, or when it sent this
/// engine nothing at all for remote.stall_timeout; never by a time limit of its own, so that a
/// big block over a slow link arrives.
struct pending_read {
  uint64_t peer = 0;     // engine id of the block's engine
  block_ref ref;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t transfer = 0; // id of the cache fill's incoming transmit, once offered
  caf::typed_response_promise<std::vector<char>> reply;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

/// The XXH3 of a block this engine sent, valid while the block's stamp is unchanged.
struct block_digest {
  block_stamp stamp;
  uint64_t hash = 0;
};

/// Addresses of peers of another protocol version that an engine logs once each.
constexpr size_t max_logged_version_refusals = 256;

struct engine_state {
  std::shared_ptr<memory_manager> mm;
  settings config;
  caf::io::middleman_actor connector;
  // registering actor -> slots it registered; reclaimed when it goes down
  std::unordered_map<caf::actor_addr, std::vector<process_id>> slots_by_actor;
  // slot -> pidfd to poll (processes the door vouched for, other than the engine's own);
  // owned here, closed when the slot is reclaimed
  std::unordered_map<process_id, int> pidfds;
  std::shared_ptr<ticket_office> office;
  std::string door_path;
  std::shared_ptr<const listen_address> listen; // told to registering clients; may be null
  // remote side
  std::shared_ptr<const peer_authenticator> auth;
  peer_actor gateway;        // spawned by the engine, linked to it
  uint64_t gateway_key = 0;  // what the gateway's forwards carry (never leaves the process)
  std::unordered_map<uint64_t, peer_link> peers;           // by engine id
  std::unordered_map<std::string, uint64_t> peer_by_address;
  // link tokens this engine issued: token -> the peer's engine id and the key and last
  // sequence of messages from it under that token; and back
  std::unordered_map<uint64_t, issued_link> issued_tokens;
  std::unordered_map<uint64_t, std::deque<uint64_t>> token_of_peer; // oldest first
  // remote reads waiting for their pull, by a local id; a cache fill offer is accepted only
  // for one of these that has none yet, from the link of the block's engine
  std::map<uint64_t, pending_read> reads;
  uint64_t next_read = 1;
  // blocks fetched for remote reads that the cache does not keep (larger than remote.cache,
  // or no cache), by the id of the read: each serves that read and is then freed
  std::map<uint64_t, block_ref> fetched;
  std::map<uint64_t, outgoing_transmit> outgoing;          // by transfer id
  std::map<std::pair<uint64_t, uint64_t>, incoming_transmit> incoming; // by (sender, id)
  // latest peer message of any kind per sending engine id (incoming transmits stall by it)
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> last_heard_from;
  std::vector<configured_peer_state> configured; // one per remote.peers entry
  // "host:port" of peers refused for another protocol version, logged once each until linked
  std::set<std::string> version_refused;
  std::unique_ptr<block_cache> cache;
  // digests of blocks sent to engines with a cache, by block index (at most engine.max_blocks)
  std::unordered_map<uint32_t, block_digest> digests;
  uint64_t digests_reused = 0;
  // peer messages refused for a wrong MAC or a replayed sequence (link_seal.hpp)
  uint64_t peer_messages_refused = 0;
  std::unique_ptr<actor_directory> directory; // actors published by name
  std::shared_ptr<request_relay> relay; // the request inbox, or none (local.transport: basp)
  // the data port (opened with the first offer this engine takes; TLS with remote.tls), whether
  // opening it failed (then chunks go as link messages), and the transfers whose payload went
  // over data connections
  std::unique_ptr<data_listener> data_port;
  bool data_port_failed = false;
  uint64_t data_sent = 0;
  uint64_t data_received = 0;
  static inline const char* name = "cafshm.engine";

  engine_state() = default;
  engine_state(const engine_state&) = delete;
  engine_state& operator=(const engine_state&) = delete;
  ~engine_state() {
    for (auto& [slot, fd] : pidfds)
      ::close(fd);
  }
};

using engine_pointer = engine_impl::stateful_pointer<engine_state>;

} // namespace cafshm
