// Values that travel between processes and the engine in CAF messages. Every type here is
// inspectable and registered by cafshm::module on every node that loads it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/process_id.hpp"

namespace cafshm {

/// Identifies a registered process in every request. The token is a random secret that the
/// engine keeps in private memory; a session with a wrong token is an unknown process.
struct session {
  process_id process = process_id::engine; // the registered process (engine: none yet)
  uint64_t token = 0;
  friend bool operator==(const session&, const session&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session& x) {
  return f(caf::meta::type_name("cafshm::session"), x.process, x.token);
}

/// What the engine's local door (a Unix-domain socket) hands a process that may register: a
/// single-use, short-lived secret that stands for the uid, gid and pid the kernel reported for
/// it. Registration carries it; {0, 0} = no ticket.
struct door_ticket {
  uint64_t id = 0;
  uint64_t secret = 0;
  bool valid() const noexcept { return id != 0 && secret != 0; }
  friend bool operator==(const door_ticket&, const door_ticket&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, door_ticket& x) {
  return f(caf::meta::type_name("cafshm::door_ticket"), x.id, x.secret);
}

/// What register answers.
struct registration {
  cafshm::session session;
  uint64_t engine_id = 0;
  std::string data_segment;   // shared-memory object of the arena
  std::string admin_segment;  // shared-memory object of admin memory
  uint64_t min_block_bytes = 0;
  // The local fast path (docs/fastpath.md): the engine reads requests from the inbox of slot 0
  // of `inbox_engine` and answers into the inbox of the process's slot; empty: no fast path.
  std::string inbox_engine;
  uint32_t inbox_permissions = 0600; // mode (and group, ~0 = none) for the reply inbox, so
  uint32_t inbox_group = ~0u;        // that the engine's user may write to it
  uint64_t reply_inbox_bytes = 0;    // ring size for the reply inbox
  // Where the engine is published for clients (cafshmd's listening address), so that a client
  // given only the engine's actor handle can reconnect there after a restart; port 0: unknown
  // (an engine nobody announced, e.g. one that only its own process uses).
  std::string listen_host;
  uint16_t listen_port = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, registration& x) {
  return f(caf::meta::type_name("cafshm::registration"), x.session, x.engine_id,
           x.data_segment, x.admin_segment, x.min_block_bytes, x.inbox_engine,
           x.inbox_permissions, x.inbox_group, x.reply_inbox_bytes, x.listen_host, x.listen_port);
}

/// One range of a copy request: length bytes from src_offset in the source block to
/// dst_offset in the destination block.
struct copy_range {
  uint64_t src_offset = 0;
  uint64_t dst_offset = 0;
  uint64_t length = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, copy_range& x) {
  return f(caf::meta::type_name("cafshm::copy_range"), x.src_offset, x.dst_offset, x.length);
}

/// Kinds of access; numeric values match admin::access. Travels as its underlying byte (CAF
/// serialises enums so), so a receiver checks is_valid() before trusting it.
enum class access_mode : uint8_t { read = 1, read_write = 2 };

constexpr bool is_valid(access_mode m) noexcept {
  return m == access_mode::read || m == access_mode::read_write;
}

/// "read", "read_write", or "access_mode(N)" for a value no sender should use.
std::string to_string(access_mode m);

/// The engine's permission to map a block: which pages of which segment, and how.
struct view_lease {
  std::string data_segment;
  uint64_t offset = 0;     // byte offset of the block in the arena (page-aligned)
  uint64_t size = 0;       // bytes the view exposes (the block's requested size)
  bool writable = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, view_lease& x) {
  return f(caf::meta::type_name("cafshm::view_lease"), x.data_segment, x.offset, x.size,
           x.writable);
}

/// A block allocated and mapped in one request (allocate_map_atom): its ref and the permission
/// to map its pages for writing.
struct mapped_block {
  block_ref ref;
  view_lease lease;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mapped_block& x) {
  return f(caf::meta::type_name("cafshm::mapped_block"), x.ref, x.lease);
}

/// An actor that a process published at its engine under a name (client::publish), as a lookup
/// answers it: the handle, and the publishing process (e.g. to share a pool with it).
struct published_actor {
  caf::actor actor;
  process_id process = process_id::engine;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, published_actor& x) {
  return f(caf::meta::type_name("cafshm::published_actor"), x.actor, x.process);
}

} // namespace cafshm
