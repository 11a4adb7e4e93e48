// Layout of a process's inbox: one POSIX shared-memory object per receiving process, holding a
// bounded multi-producer single-consumer ring of variable-length records. Every local process
// that knows the name (and has write access) may append records; only the receiving process
// consumes them. Everything is a byte position or an offset, never a pointer; all integers are
// native-endian (one machine shares them).
//
//   offset 0              inbox_control    (sizeof <= ring_offset)
//   offset ring_offset    ring             (capacity bytes, a power of two)
//
// Positions: `tail` and `head` are byte positions that only grow (modulo 2^64); a position p lives
// at ring offset p % capacity. Every record starts at a multiple of record_align and never wraps
// around the end of the ring: a producer whose record does not fit before the end first fills the
// rest with a padding record. tail - head <= capacity always holds for honest parties.
//
// A record (all written by the producer that claimed it, except where noted):
//
//   offset  size  field
//   0       8     state      atomic; see below. Producer: claimed, then committed (or padding).
//                            Reader: abandoned (only over a claim it gave up waiting for).
//   8       4     length     payload bytes
//   12      4     sender     the sender's process slot, as the sender states it (unverified)
//   16      4     sequence   the sender's count of records sent through this inbox_writer
//   20      4     pid        the sender's pid: lets the reader see that a stuck claim's writer died
//   24      8     reserved   zero
//   32      ...   payload    `length` bytes, then up to 7 unused bytes (to record_align)
//
// A padding record is only its state word (8 bytes) followed by unused bytes to the ring's end.
//
// The state word (64 bits) = tag << 24 | units << 2 | kind:
//   tag    (40 bits) (position >> 3) mod 2^40: the position this word was written for. A word whose
//                    tag is not the reader's position (left over from an earlier lap, a payload
//                    byte pattern, or not yet written) means "not yet marked".
//   units  (22 bits) size of the whole record (header included) in record_align units, >= 1.
//   kind   (2 bits)  0 abandoned, 1 claimed, 2 committed, 3 padding.
// Producers: claim (CAS on tail) -> fill length/sender/sequence/pid -> store state = claimed
// (release) -> copy the payload -> CAS state claimed -> committed (acq_rel). A producer killed
// after its tail CAS leaves either an unmarked word (killed before marking) or a claim that is
// never committed; the reader skips both after a bound (inbox_consumer), so no dead writer blocks
// the ring for longer than that.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cafshm::fastpath {

constexpr uint64_t inbox_magic = 0x31584f424e494643ull; // "CFINBOX1"
constexpr uint32_t inbox_layout_version = 1;
constexpr uint64_t ring_offset = 512;   // bytes before the ring (the control block)
constexpr uint64_t record_align = 8;    // every record starts at a multiple of this
constexpr uint64_t record_header_bytes = 32;
constexpr uint64_t min_capacity = 4096;
constexpr uint64_t max_capacity = 1ull << 24; // 16 MiB: every record's units fit in 22 bits

enum class record_kind : uint8_t { abandoned = 0, claimed = 1, committed = 2, padding = 3 };

/// The control block at offset 0. "Creator" = the receiving process, before any sender can open
/// the object (it is published by name only once formatted: magic is written last).
struct inbox_control {
  // -- written once by the creator -----------------------------------------------------------
  uint64_t magic;          // inbox_magic once formatted
  uint32_t layout_version; // inbox_layout_version
  uint32_t control_bytes;  // sizeof(inbox_control)
  uint64_t capacity;       // ring bytes, a power of two in [min_capacity, max_capacity]
  int32_t owner_pid;       // the receiving process
  uint32_t owner_slot;     // its process slot with the engine
  uint64_t instance;       // random, non-zero: tells this object from a later one of the same
                           // name (a new holder of the slot), so that the old one's owner
                           // removes only its own
  // -- producers -----------------------------------------------------------------------------
  alignas(64) std::atomic<uint64_t> tail; // next position to claim; producers advance it by CAS
  // -- the reader ----------------------------------------------------------------------------
  alignas(64) std::atomic<uint64_t> head; // first position not yet consumed; only the reader
                                          // stores it (producers read it for free space)
  std::atomic<uint64_t> delivered;        // statistics, reader only: records handed out,
  std::atomic<uint64_t> abandoned;        //   claims given up on (writer dead or stalled),
  std::atomic<uint64_t> rejected;         //   records with inconsistent headers, skipped
  // -- wake-up of the reader (eventcount on a shared futex) ---------------------------------
  alignas(64) std::atomic<uint32_t> data_seq; // futex word: a producer that sees reader_waiting
                                              // increments it and wakes the reader
  std::atomic<uint32_t> reader_waiting;       // reader: 1 from before its last check until it
                                              // wakes up, else 0
  // -- wake-up of producers waiting for space ------------------------------------------------
  alignas(64) std::atomic<uint32_t> space_seq; // futex word: the reader increments it after
                                               // freeing space when writers_waiting > 0
  std::atomic<uint32_t> writers_waiting;       // producers: +1 before their last check, -1 after
};
static_assert(sizeof(inbox_control) <= ring_offset);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8 && sizeof(std::atomic<uint32_t>) == 4);

/// The fixed part of a record, at its position. Field comments: see the file comment.
struct record_header {
  std::atomic<uint64_t> state;
  uint32_t length;
  uint32_t sender;
  uint32_t sequence;
  int32_t pid;
  uint64_t reserved;
};
static_assert(sizeof(record_header) == record_header_bytes);

// -- the state word -------------------------------------------------------------------------------

constexpr uint64_t tag_bits = 40;
constexpr uint64_t units_bits = 22;
constexpr uint64_t max_units = (1ull << units_bits) - 1;

constexpr uint64_t tag_of_position(uint64_t position) noexcept {
  return (position / record_align) & ((1ull << tag_bits) - 1);
}

constexpr uint64_t make_state(uint64_t position, uint64_t bytes, record_kind kind) noexcept {
  return tag_of_position(position) << (units_bits + 2)
         | ((bytes / record_align) & max_units) << 2 | static_cast<uint64_t>(kind);
}

constexpr uint64_t state_tag(uint64_t state) noexcept {
  return state >> (units_bits + 2);
}

constexpr uint64_t state_bytes(uint64_t state) noexcept {
  return ((state >> 2) & max_units) * record_align;
}

constexpr record_kind state_kind(uint64_t state) noexcept {
  return static_cast<record_kind>(state & 3);
}

/// Bytes a record with `payload` bytes occupies in the ring.
constexpr uint64_t record_bytes(uint64_t payload) noexcept {
  return (record_header_bytes + payload + record_align - 1) / record_align * record_align;
}

/// Largest payload a ring of `capacity` bytes takes: a record plus the padding before it always
/// fit into an empty ring.
constexpr uint64_t max_payload(uint64_t capacity) noexcept {
  return capacity / 2 - record_header_bytes;
}

/// Bytes of the shared-memory object of a ring of `capacity` bytes.
constexpr uint64_t segment_bytes(uint64_t capacity) noexcept {
  return ring_offset + capacity;
}

} // namespace cafshm::fastpath
