// Reads what lies at one position of an inbox ring (inbox_layout.hpp), trusting none of it: the
// ring is writable by every sender. Pure apart from reading the ring; the reader
// (inbox_consumer) and the fuzz target (fuzz/fuzz_inbox.cpp) build on it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fastpath/inbox_layout.hpp"

namespace cafshm::fastpath {

enum class slot_state : uint8_t {
  unmarked,  // no state word for this position yet (claimed but not marked, or garbage)
  claimed,   // a producer is writing the record (or died writing it)
  committed, // a complete record
  padding,   // filler to the ring's end
  corrupt,   // a state word for this position, but its sizes contradict each other
};

/// A position's contents. `bytes` (the span to skip) is set for every state but unmarked and is
/// then within the ring's end and within `available`; length/sender/sequence/pid are set for
/// claimed and committed (length <= bytes - record_header_bytes).
struct slot {
  slot_state state = slot_state::unmarked;
  uint64_t word = 0; // the state word as read
  uint64_t bytes = 0;
  uint32_t length = 0;
  uint32_t sender = 0;
  uint32_t sequence = 0;
  int32_t pid = 0;
};

/// Decodes the position `position` (a multiple of record_align) of the ring at `ring` of
/// `capacity` bytes (a power of two), of which `available` bytes from `position` on have been
/// claimed (tail - position, at most capacity). Reads at most the state word and the header, both
/// inside [ring, ring + capacity).
slot decode_slot(const std::byte* ring, uint64_t capacity, uint64_t position,
                 uint64_t available) noexcept;

/// The first position in (position, limit) that holds a state word written for itself (claimed,
/// committed, padding or corrupt), stepping by record_align; `limit` if there is none.
/// limit - position must be at most capacity.
uint64_t next_marked_position(const std::byte* ring, uint64_t capacity, uint64_t position,
                              uint64_t limit) noexcept;

} // namespace cafshm::fastpath
