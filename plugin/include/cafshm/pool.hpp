// Pools of pre-shared blocks: the fast way to hand data from one process to another.
//
// pool (sender side): `count` blocks of `block_bytes`, allocated, mapped read-write and
// pre-faulted once, and shared for reading with the reader processes once. loan() hands out a
// free block's writable bytes without asking the engine; seal() turns the loan into a
// pool_frame, an ordinary CAF value that goes to the reader in any message. The block comes back
// to the pool when the reader releases its frame_view, or when the actor holding the frame goes
// down. A release marks the block on the pool's return board, a small block shared read-write
// with the readers; it sends a message only when the pool waits for a block. A block is loaned again only after it came back, so a reader never sees its block
// rewritten while it holds it, and a slow reader makes the sender wait (credit-based
// back-pressure) instead of losing frames.
//
// pool_reader (receiving side): maps each block of a pool the first time a frame of it
// arrives and keeps the view, so that opening later frames costs no engine request. It drops a
// pool's views when the pool's return actor goes down (the pool closed or its process ended).
//
// Blocking forms (create, loan, open) are for threads outside the scheduler (main, scoped or
// detached actors); event-based actors use the forms taking `self`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include "cafshm/async.hpp"
#include "cafshm/block_ref.hpp"
#include "cafshm/process_id.hpp"

namespace cafshm {

class client;

/// A loaned pool block on its way to a reader (what seal() answers and the message carries).
struct pool_frame {
  block_ref ref;        // the block (shared for reading with the reader's process)
  uint64_t pool = 0;    // id of the pool (random per pool)
  uint32_t index = 0;   // the block's slot in the pool
  uint64_t length = 0;  // bytes the sender wrote, from the start of the block
  uint64_t sequence = 0; // number of this loan of the block (a late release of an older one
                         // cannot give the block back while it is out again)
  caf::actor owner;     // the pool's return actor: it watches holders and takes wake-ups
  block_ref board;      // the pool's return board (shared read-write with its readers):
                        // release marks the block there, without a message
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_frame& x) {
  return f(caf::meta::type_name("cafshm::pool_frame"), x.ref, x.pool, x.index, x.length,
           x.sequence, x.owner, x.board);
}

struct pool_options {
  uint32_t count = 4;               // blocks in the pool
  uint64_t block_bytes = 0;         // bytes of each block (the engine rounds up to 2^k pages)
  std::vector<process_id> readers;  // processes that may read the blocks
};

class pool {
public:
  struct state;

  /// A pool block lent to the caller: write into bytes(), then seal() it. A loan destroyed
  /// without being sealed goes back to the pool.
  class loan {
  public:
    loan() = default;
    loan(loan&& other) noexcept;
    loan& operator=(loan&& other) noexcept;
    ~loan();

    std::span<std::byte> bytes() const noexcept;
    char* data() const noexcept { return reinterpret_cast<char*>(bytes().data()); }
    size_t size() const noexcept { return bytes().size(); }
    uint32_t index() const noexcept { return index_; }
    explicit operator bool() const noexcept { return state_ != nullptr; }

  private:
    friend class pool;
    loan(std::shared_ptr<state> s, uint32_t index) : state_(std::move(s)), index_(index) {}
    void give_back() noexcept; // an unsealed loan returns to the pool
    std::shared_ptr<state> state_;
    uint32_t index_ = 0;
  };

  /// Allocates, maps, pre-faults and shares the blocks (blocking).
  static caf::expected<pool> create(client& c, pool_options opts);
  /// The same through `self`'s requests to the engine.
  static async_result<pool> create(caf::event_based_actor* self, client& c, pool_options opts);

  pool() = default;
  pool(pool&&) noexcept = default;
  pool& operator=(pool&& other) noexcept;
  ~pool(); // close()

  /// A free block, or nothing if every block is out (never blocks, never asks the engine).
  std::optional<loan> try_loan();
  /// A free block, waiting up to `wait` for one to come back (errc::pool_exhausted after it).
  caf::expected<loan> get_loan(std::chrono::milliseconds wait = std::chrono::seconds(5));
  /// A free block for an event-based actor: at once if one is free, else when one comes back.
  async_result<loan> get_loan(caf::event_based_actor* self);

  /// Turns `l` into the frame to send: `length` bytes were written. `holder` is the actor that
  /// will get the frame: if it goes down before releasing it, the block comes back by itself.
  pool_frame seal(loan&& l, uint64_t length, const caf::actor& holder);

  /// Lets one more process read every block (blocking).
  caf::expected<void> share_with(process_id process);

  uint32_t count() const noexcept;
  uint64_t block_bytes() const noexcept;
  /// Blocks free right now.
  uint32_t available() const;
  const std::vector<block_ref>& blocks() const;
  explicit operator bool() const noexcept { return state_ != nullptr; }

  /// Unmaps and frees every block and stops the return actor; readers drop their views when
  /// they see it go down (the engine keeps a block until its last view closed).
  void close();

private:
  friend struct pool_builder;
  explicit pool(std::shared_ptr<state> s) : state_(std::move(s)) {}
  std::shared_ptr<state> state_;
};

/// A received pool frame, mapped: read bytes(); release() (or the destructor) gives the block
/// back to its pool.
class frame_view {
public:
  struct mapping; // a pool_reader's mapping of the block, shared with its cache

  frame_view() = default;
  frame_view(frame_view&& other) noexcept;
  frame_view& operator=(frame_view&& other) noexcept;
  ~frame_view();

  std::span<const std::byte> bytes() const noexcept;
  std::span<const char> chars() const noexcept {
    auto b = bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  const pool_frame& frame() const noexcept { return frame_; }
  explicit operator bool() const noexcept { return mapping_ != nullptr; }

  /// Gives the block back to the sender's pool now.
  void release();

private:
  friend class pool_reader;
  frame_view(std::shared_ptr<const mapping> m, pool_frame f)
    : mapping_(std::move(m)), frame_(std::move(f)) {}
  std::shared_ptr<const mapping> mapping_;
  pool_frame frame_;
};

class pool_reader {
public:
  struct state;

  /// Maps through `c`, which must outlive the reader.
  explicit pool_reader(client& c);
  pool_reader(pool_reader&&) noexcept = default;
  pool_reader& operator=(pool_reader&&) noexcept = default;
  ~pool_reader();

  /// The frame's bytes; maps its block on first sight (blocking).
  caf::expected<frame_view> open(const pool_frame& f);
  /// The same for an event-based actor (at once if the block is mapped already).
  async_result<frame_view> open(caf::event_based_actor* self, const pool_frame& f);

  /// Blocks mapped right now.
  size_t mapped() const;

private:
  std::shared_ptr<state> state_;
};

} // namespace cafshm
