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

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace cafshm::fastpath {

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
