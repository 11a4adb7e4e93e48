// The return board of a pool: a small block through which readers give pool blocks back
// without a message. The pool allocates it with its blocks and shares it read-write with every
// reader; a reader maps it once per pool, like the pool's blocks.
//
// Layout (in the arena, at the start of the board's block; 64 + 8 × count bytes):
//
//   offset  size        field      written by
//   0       8           magic      the pool, once before sharing ("cafshmRB")
//   8       8           pool       the pool, once: its id (pool_frame::pool)
//   16      4           count      the pool, once: blocks in the pool
//   20      4           waiting    the pool sets it to 1 before it waits for a block; the
//                                  reader that clears it (exchange) sends the pool one wake-up
//   24      40          (unused, keeps released[] on its own cache line)
//   64      8 × count   released   released[i]: sequence of the last frame of block i a reader
//                                  released (pool_frame::sequence)
//
// Invariants: the pool gives block i back only when released[i] equals the sequence of the
// loan that is out, so a stale, repeated or forged value never returns a block that is out
// again. A reader stores released[i] before it reads `waiting`, the pool sets `waiting` before
// it reads released[] again (both sequentially consistent): a release while the pool starts to
// wait is either seen by the pool's scan or wakes it. Readers are processes the pool owner chose
// to share with; one of them can give back a block another one holds (as the return message
// can), but none can make the pool read or write outside the board.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace cafshm {

class pool_return_board {
public:
  static constexpr uint64_t magic_value = 0x4252'6d68'7366'6163; // "cafshmRB", little-endian
  static constexpr size_t header_bytes = 64;

  static constexpr size_t bytes_for(uint32_t count) noexcept {
    return header_bytes + sizeof(uint64_t) * static_cast<size_t>(count);
  }

  pool_return_board() = default;

  /// Writes a fresh header into `memory` (the pool's own, writable mapping of the board).
  static pool_return_board format(std::span<std::byte> memory, uint64_t pool, uint32_t count);
  /// A board written by someone else (a reader's mapping): empty if `memory` is too small or
  /// its header does not match `pool` (the reader then returns blocks by message).
  static pool_return_board attach(std::span<std::byte> memory, uint64_t pool);

  explicit operator bool() const noexcept { return base_ != nullptr; }
  uint32_t count() const noexcept { return count_; }

  // -- reader side ------------------------------------------------------------------------------

  /// Marks the frame (index, sequence) released. True if the pool was waiting: the caller then
  /// sends it one wake-up message.
  bool release(uint32_t index, uint64_t sequence) noexcept;

  // -- pool side --------------------------------------------------------------------------------

  /// The sequence readers released last for block `index`.
  uint64_t released(uint32_t index) const noexcept;
  /// Announces that the pool waits for a block; scan released[] afterwards.
  void want() noexcept;
  /// Withdraws want(), e.g. when the pool stopped waiting.
  void unwant() noexcept;

private:
  struct header;
  header* head() const noexcept { return reinterpret_cast<header*>(base_); }
  std::atomic<uint64_t>* slots() const noexcept;

  std::byte* base_ = nullptr;
  uint32_t count_ = 0; // the pool's own copy (a reader's board is validated on attach)
};

} // namespace cafshm
