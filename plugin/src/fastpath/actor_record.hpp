// What actor messages between local processes look like inside inbox records (the local fast
// path, docs/fastpath.md). Each process with local.transport shm reads its own actor inbox,
// "<engine name>.actors-<slot>"; every local process that holds a proxy of one of its actors
// (actor_proxy.hpp) appends records to it, and the engine appends a notice when it reclaims a
// process. The reader treats every byte as untrusted (actor_inbox_reader.hpp).
//
// payload (after the inbox's own record header, inbox_layout.hpp)
//   offset  size
//   0       1     kind: actor_record_kind                              written by the sender
//   1       7     zero
//   8       8     message: the CAF message id (caf::message_id::integer_value())
//                 process_gone: slot (4 bytes) and pid (4 bytes) of the reclaimed process
//                 watch, down: zero
//   16      8     message: the receiving actor's id in the reading process
//                 watch: the id of the reader's actor the sender holds a proxy of
//                 down: the id of the sender's actor that ended
//                 process_gone: zero
//   24      ...   CAF's binary format:
//                 message: sender (strong_actor_ptr: actor id + node id, null for an anonymous
//                          message), stages (std::vector<strong_actor_ptr>), the content
//                          (caf::message)
//                 watch:   the node id of the watching process (the sender)
//                 down:    the node id of the process whose actor ended (the sender), and the
//                          exit reason (caf::error)
//                 process_gone: nothing
// Writers: message, watch and down records come from processes holding or serving proxies;
// process_gone records from the engine (record sender slot 0). None of this is proof: any
// process that may write the inbox may write any of these (docs/fastpath.md, Trust).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace cafshm::fastpath {

enum class actor_record_kind : uint8_t {
  message = 0,      // a CAF message for one of the reader's actors
  watch = 1,        // the sender made a proxy of one of the reader's actors: tell it the end
  down = 2,         // an actor the reader holds a proxy of ended: kill the proxy with its reason
  process_gone = 3, // the engine reclaimed a process: kill every proxy of its actors
};

constexpr size_t actor_record_header_bytes = 24;

/// The name of the actor inbox of process `slot` of engine `engine_name`.
inline std::string actor_inbox_name(const std::string& engine_name, uint32_t slot) {
  return engine_name + ".actors-" + std::to_string(slot);
}

/// The fixed part of a record, as a sender writes it (header bytes 0..23).
struct actor_record_header {
  actor_record_kind kind = actor_record_kind::message;
  uint64_t word = 0;     // offset 8: message id, or slot | pid << 32 for process_gone
  uint64_t actor = 0;    // offset 16
};

inline void write_header(std::byte* at, const actor_record_header& h) {
  std::memset(at, 0, actor_record_header_bytes);
  at[0] = static_cast<std::byte>(h.kind);
  std::memcpy(at + 8, &h.word, 8);
  std::memcpy(at + 16, &h.actor, 8);
}

/// The header of `payload` (at least actor_record_header_bytes long); the kind unchecked.
inline actor_record_header read_header(std::span<const std::byte> payload) {
  actor_record_header h;
  h.kind = static_cast<actor_record_kind>(payload[0]);
  std::memcpy(&h.word, payload.data() + 8, 8);
  std::memcpy(&h.actor, payload.data() + 16, 8);
  return h;
}

} // namespace cafshm::fastpath
