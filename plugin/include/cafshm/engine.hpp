// The typed messaging interface of the communications engine. Every request except stats and
// register carries the requester's session; every failure is a cafshm error (error.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/typed_actor.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/engine_stats.hpp"
#include "cafshm/process_id.hpp"
#include "cafshm/protocol.hpp"
#include "cafshm/remote.hpp"

namespace cafshm {

using register_atom = caf::atom_constant<caf::atom("shm_reg")>;
using unregister_atom = caf::atom_constant<caf::atom("shm_unreg")>;
using reattach_atom = caf::atom_constant<caf::atom("shm_reatt")>;
using allocate_atom = caf::atom_constant<caf::atom("shm_alloc")>;
using free_atom = caf::atom_constant<caf::atom("shm_free")>;
using write_atom = caf::atom_constant<caf::atom("shm_write")>;
using read_atom = caf::atom_constant<caf::atom("shm_read")>;
using copy_atom = caf::atom_constant<caf::atom("shm_copy")>;
using share_atom = caf::atom_constant<caf::atom("shm_share")>;
using revoke_atom = caf::atom_constant<caf::atom("shm_revoke")>;
using transfer_atom = caf::atom_constant<caf::atom("shm_xfer")>;
using name_atom = caf::atom_constant<caf::atom("shm_name")>;
using lookup_atom = caf::atom_constant<caf::atom("shm_lookup")>;
using remove_atom = caf::atom_constant<caf::atom("shm_remove")>;
using map_atom = caf::atom_constant<caf::atom("shm_map")>;
using unmap_atom = caf::atom_constant<caf::atom("shm_unmap")>;
using allocate_map_atom = caf::atom_constant<caf::atom("shm_allocm")>;
using unmap_transfer_atom = caf::atom_constant<caf::atom("shm_unmxfr")>;
using unmap_free_atom = caf::atom_constant<caf::atom("shm_unmfre")>;
using map_many_atom = caf::atom_constant<caf::atom("shm_mapn")>;
using process_atom = caf::atom_constant<caf::atom("shm_proc")>;
using stats_atom = caf::atom_constant<caf::atom("shm_stats")>;
using done_atom = caf::atom_constant<caf::atom("shm_done")>;
using transmit_atom = caf::atom_constant<caf::atom("shm_xmit")>;
using link_atom = caf::atom_constant<caf::atom("shm_link")>;
using delivered_atom = caf::atom_constant<caf::atom("shm_deliv")>;
using door_atom = caf::atom_constant<caf::atom("shm_door")>;
using publish_atom = caf::atom_constant<caf::atom("shm_pub")>;
using unpublish_atom = caf::atom_constant<caf::atom("shm_unpub")>;
using find_actor_atom = caf::atom_constant<caf::atom("shm_findac")>;
// engine-to-engine protocol
using hello_atom = caf::atom_constant<caf::atom("shm_hello")>;
using offer_atom = caf::atom_constant<caf::atom("shm_offer")>;
using chunk_atom = caf::atom_constant<caf::atom("shm_chunk")>;
using commit_atom = caf::atom_constant<caf::atom("shm_commit")>;
using abort_atom = caf::atom_constant<caf::atom("shm_abort")>;
using version_atom = caf::atom_constant<caf::atom("shm_vers")>;
using pull_atom = caf::atom_constant<caf::atom("shm_pull")>;
using gateway_atom = caf::atom_constant<caf::atom("shm_gatew")>;
using challenge_atom = caf::atom_constant<caf::atom("shm_chall")>;

/// Version of the messages between processes and engines and between engines (the layouts of
/// the types in protocol.hpp, engine_stats.hpp and remote.hpp, and the shapes of the messages of
/// engine_actor and peer_actor). Register carries it; an engine refuses clients of another
/// version instead of failing later on a message it cannot read. A link's challenge carries it
/// too, and its answer: engines of two versions never link (errc::version_mismatch).
constexpr uint32_t protocol_version = 12;

/// Most blocks one map_many_atom request maps (errc::request_too_large above): a request holds
/// the engine for a bounded time, and its answer fits into a reply inbox record.
constexpr size_t max_map_many = 64;

/// Registry key under which a module in engine role puts its engine.
constexpr caf::atom_value engine_registry_key = caf::atom("cafshm");

// clang-format off
using engine_actor = caf::typed_actor<
  // name, quota (0 = engine default), ticket of the local door, protocol_version ->
  // registration. The ticket stands for the uid, gid and pid the kernel reported at the door;
  // without one, only an engine with engine.unauthenticated_tcp registers (pid unknown). The
  // sender is monitored: when it goes down, a process the door vouched for whose pid is still
  // alive is detached (its blocks stay, its session stays valid); any other is reclaimed.
  // errc::process_exited if the ticket's process has exited since the door issued it,
  // too_many_processes if its user has engine.max_processes_per_user processes registered,
  // version_mismatch (naming both versions) for a client of another protocol_version.
  caf::replies_to<register_atom, std::string, uint64_t, door_ticket, uint32_t>
    ::with<registration>,
  // session, engine id, ticket of the local door, protocol_version -> registration: a process
  // registered with an engine that died takes its session back at the engine that adopted
  // its segments (same engine id; the ticket's pid and its start time must be the slot's).
  // errc::engine_restarted if this engine has another id (it started fresh), unknown_process
  // if the adopting engine reclaimed the slot, process_exited as at register. The sender is
  // monitored as at register.
  caf::replies_to<reattach_atom, session, uint64_t, door_ticket, uint32_t>::with<registration>,
  // where the local door is (the path of its Unix-domain socket; public)
  caf::replies_to<door_atom>::with<std::string>,
  caf::replies_to<unregister_atom, session>::with<done_atom>,
  caf::replies_to<allocate_atom, session, uint64_t>::with<block_ref>,
  caf::replies_to<free_atom, session, block_ref>::with<done_atom>,
  // offset, bytes
  caf::replies_to<write_atom, session, block_ref, uint64_t, std::vector<char>>::with<done_atom>,
  // offset, length -> bytes
  caf::replies_to<read_atom, session, block_ref, uint64_t, uint64_t>::with<std::vector<char>>,
  // source, destination, ranges
  caf::replies_to<copy_atom, session, block_ref, block_ref, std::vector<copy_range>>
    ::with<done_atom>,
  // grantee, its access
  caf::replies_to<share_atom, session, block_ref, process_id, access_mode>::with<done_atom>,
  caf::replies_to<revoke_atom, session, block_ref, process_id>::with<done_atom>,
  // new owner (process_id::engine: the engine holds it)
  caf::replies_to<transfer_atom, session, block_ref, process_id>::with<block_ref>,
  caf::replies_to<name_atom, session, block_ref, std::string>::with<done_atom>,
  caf::replies_to<lookup_atom, session, std::string>::with<block_ref>,
  caf::replies_to<remove_atom, session, std::string>::with<done_atom>,
  // the access wanted -> permission to map the block's pages
  caf::replies_to<map_atom, session, block_ref, access_mode>::with<view_lease>,
  caf::replies_to<unmap_atom, session, block_ref>::with<done_atom>,
  // Compound requests: what would take two or more requests, in one, with the same checks.
  // size -> a new block of the session and the permission to map it for writing (allocate,
  // then map read_write; should the map fail, the block is freed again)
  caf::replies_to<allocate_map_atom, session, uint64_t>::with<mapped_block>,
  // The view is counted closed first (unmap) in any case; then the block passes on as
  // transfer_atom / free_atom would (their error, if any, with the view closed). A failing
  // unmap (no open view) is the answer, and nothing else happens.
  caf::replies_to<unmap_transfer_atom, session, block_ref, process_id>::with<block_ref>,
  caf::replies_to<unmap_free_atom, session, block_ref>::with<done_atom>,
  // up to max_map_many blocks, one access for all -> one permission per block, in order. All
  // or none: should one fail (its error names its position), those mapped before it are
  // counted closed again.
  caf::replies_to<map_many_atom, session, std::vector<block_ref>, access_mode>
    ::with<std::vector<view_lease>>,
  // process name -> the live process registered under it
  caf::replies_to<process_atom, session, std::string>::with<process_id>,
  // without a session: aggregate numbers only (no processes, pids, names or refs)
  caf::replies_to<stats_atom>::with<engine_stats>,
  caf::replies_to<stats_atom, session>::with<engine_stats>,
  // actor discovery: name, actor -> done; the entry ends with the actor or its process
  caf::replies_to<publish_atom, session, std::string, caf::actor>::with<done_atom>,
  caf::replies_to<unpublish_atom, session, std::string>::with<done_atom>,
  caf::replies_to<find_actor_atom, session, std::string>::with<published_actor>,
  // -- across engines ----------------------------------------------------------------------
  // Sends a block the session may read to another engine ("host:port" or a configured peer
  // name); answers once the destination verified and delivered it. A read_atom whose ref
  // belongs to another engine is served through that engine (and this engine's cache).
  caf::replies_to<transmit_atom, session, block_ref, std::string, transmit_target>
    ::with<transmit_receipt>,
  // links to the engine at host:port -> its engine id. The engine dials only the addresses of
  // remote.peers and hosts matching remote.allow_dial (else peer_not_allowed); transmit too.
  caf::replies_to<link_atom, session, std::string, uint16_t>::with<uint64_t>,
  // where peer engines send: this engine's peer gateway (a peer_actor)
  caf::replies_to<gateway_atom>::with<caf::actor>>;

/// Nonces of a link handshake: 32 random bytes each.
constexpr size_t link_nonce_bytes = 32;

/// The peer gateway of an engine: the only actor that takes engine-to-engine messages. cafshmd
/// publishes it on remote.listen; the engine actor (engine.listen) answers gateway_atom with it.
/// A link starts with a handshake in which each side proves its engine id (peer_proof) and both
/// agree on the keys of the link (ephemeral X25519, plugin/src/engine/link_seal.hpp):
///   challenge(protocol_version, dialer id, dialer nonce, dialer public key)
///     -> (protocol_version, listener id, listener nonce, listener public key, listener's proof)
///   hello(dialer id, link token the listener uses toward the dialer, the dialer's gateway,
///         listener nonce, dialer's proof) -> (listener id, link token the dialer uses)
/// A proof signs the transcript of both engine ids, both nonces and both public keys
/// (link_transcript in plugin/src/engine/peer_auth.hpp): it cannot be replayed toward another
/// engine or in another handshake, and it authenticates the keys. A challenge of another
/// protocol_version is refused with version_mismatch naming both versions, and so is every
/// message the gateway cannot read (another version's shapes, or garbage): a hello needs the
/// nonce of an accepted challenge, so a peer of another version never links and none of its
/// transfers is taken. The challenge keeps (atom, uint32_t version) first in every version, so
/// that an engine can name the version of a peer whose challenge it cannot read otherwise.
/// Every later message carries a peer_seal: the token the receiving engine issued (the receiver
/// takes the sender's engine id from it, never from the message), the sender's sequence number
/// on that direction and a MAC with that direction's key; a wrong MAC or a sequence not above
/// the last is refused (access_denied). Every answer but an error carries a seal of the
/// answering side (its key, the request's token, a sequence of its answers). offer -> receipt (cache_hit) or an empty receipt: send
/// the chunks, or, with cache_hit set, offer again with the block's digest (the destination
/// keeps a cache and looks the content up by it); chunk -> done; commit(id, XXH3-64 of the
/// block, from the same pass as the chunks) -> receipt; abort(id); version(ref) -> version of an
/// exported block; pull(ref) -> version sent to the requester as a cache fill.
using peer_actor = caf::typed_actor<
  caf::replies_to<gateway_atom>::with<caf::actor>,
  caf::replies_to<challenge_atom, uint32_t, uint64_t, std::vector<char>, std::vector<char>>
    ::with<uint32_t, uint64_t, std::vector<char>, std::vector<char>, peer_proof>,
  caf::replies_to<hello_atom, uint64_t, uint64_t, caf::actor, std::vector<char>, peer_proof>
    ::with<uint64_t, uint64_t>,
  caf::replies_to<offer_atom, peer_seal, transmit_offer>::with<transmit_receipt, peer_seal>,
  caf::replies_to<chunk_atom, peer_seal, transmit_chunk>::with<done_atom, peer_seal>,
  caf::replies_to<commit_atom, peer_seal, uint64_t, uint64_t>
    ::with<transmit_receipt, peer_seal>,
  caf::reacts_to<abort_atom, peer_seal, uint64_t>,
  caf::replies_to<version_atom, peer_seal, block_ref>::with<uint64_t, peer_seal>,
  caf::replies_to<pull_atom, peer_seal, block_ref>::with<uint64_t, peer_seal>>;
// clang-format on

class memory_manager;
class listen_address;
class peer_authenticator;
class request_relay;
class ticket_office;
struct settings;

/// Spawns an engine actor over `mm` (hidden, so that it never delays system shutdown). It polls
/// the pidfds of registered local processes every engine.liveness_interval. It links to peer
/// engines through `connector` (CAF's middleman actor, or the openssl manager's for TLS); with
/// an invalid connector, the remote features answer config_error.
/// Registrations are accepted with tickets of `office` (the local door's, or issued in this
/// process by cafshm::module for its own clients). Peer engines prove their engine ids to
/// `peers` (made from config.remote) and talk to the engine's peer gateway only.
/// With a `relay`, registrations tell local processes its request inbox (the fast path).
/// Registrations tell clients the address in `listen` (where the engine is published), if any.
engine_actor spawn_engine(caf::actor_system& sys, std::shared_ptr<memory_manager> mm,
                          const settings& config, caf::io::middleman_actor connector,
                          std::shared_ptr<ticket_office> office, std::string door_path,
                          std::shared_ptr<const peer_authenticator> peers,
                          std::shared_ptr<request_relay> relay = nullptr,
                          std::shared_ptr<const listen_address> listen = nullptr);

} // namespace cafshm
