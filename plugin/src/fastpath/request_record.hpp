// What engine requests and their answers look like inside inbox records (the local fast path,
// docs/fastpath.md). A client appends requests to the engine's request inbox (slot 0); the
// engine appends each answer to the requesting process's inbox (its slot). Both sides treat the
// other's records as untrusted bytes.
//
// request payload                           written by the client
//   offset  size
//   0       8     request id: chosen by the client, unguessable by other processes, non-zero
//   8       8     instance of the client's reply inbox (inbox_control::instance), so that the
//                 engine never answers into an earlier or later holder's inbox of the slot
//   16      ...   the request: a caf::message (atom, session, args...) in CAF's binary format
//
// reply payload                             written by the engine
//   0       8     request id, as the request carried it
//   8       1     kind: reply_kind
//   9       7     zero
//   16      ...   kind message: the answer (the result values or a caf::error) in CAF's binary
//                 format; kind too_large: nothing (ask again over BASP)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <span>

#include <caf/atom.hpp>
#include <caf/message.hpp>

#include "cafshm/engine.hpp"

namespace cafshm::fastpath {

/// The requests that travel in records, each (atom, session, ...): the engine's relay refuses
/// any other kind, and clients send the others over BASP (register, re-attach and unregister
/// make or end the session and the reply inbox; publish and find_actor carry actor handles,
/// which only BASP's proxies make usable in another process). A transmit travels in a record
/// only without a deliver_to actor (the relay refuses a record with a handle of another
/// process: may_travel_by_inbox).
inline bool travels_by_inbox(caf::atom_value a) {
  static constexpr caf::atom_value kinds[] = {
    allocate_atom::value, free_atom::value,    write_atom::value,   read_atom::value,
    copy_atom::value,     share_atom::value,   revoke_atom::value,  transfer_atom::value,
    name_atom::value,     lookup_atom::value,  remove_atom::value,  map_atom::value,
    unmap_atom::value,    process_atom::value, stats_atom::value,   link_atom::value,
    unpublish_atom::value, transmit_atom::value, allocate_map_atom::value,
    unmap_transfer_atom::value, unmap_free_atom::value, map_many_atom::value,
  };
  return std::find(std::begin(kinds), std::end(kinds), a) != std::end(kinds);
}

/// The kind of `request` (atom, session, ...): its first element; none if that is no atom.
inline std::optional<caf::atom_value> kind_of(const caf::message& request) {
  if (request.empty() || !request.match_element<caf::atom_value>(0))
    return std::nullopt;
  return request.get_as<caf::atom_value>(0);
}

/// Whether a client sends `request` (atom, session, ...) through the engine's inbox: a kind of
/// travels_by_inbox(), and no actor handle in it.
inline bool may_travel_by_inbox(const caf::message& request) {
  auto kind = kind_of(request);
  if (!kind)
    return false;
  if (*kind == transmit_atom::value)
    return request.size() == 5 && request.match_element<transmit_target>(4)
           && !request.get_as<transmit_target>(4).deliver_to;
  return travels_by_inbox(*kind);
}

constexpr size_t request_header_bytes = 16;
constexpr size_t reply_header_bytes = 16;

enum class reply_kind : uint8_t {
  message = 0,
  too_large = 1, // the answer does not fit into the reply inbox
};

inline uint64_t load_u64(std::span<const std::byte> bytes, size_t offset) {
  uint64_t x;
  std::memcpy(&x, bytes.data() + offset, sizeof(x));
  return x;
}

inline void store_u64(std::byte* at, uint64_t x) {
  std::memcpy(at, &x, sizeof(x));
}

} // namespace cafshm::fastpath
