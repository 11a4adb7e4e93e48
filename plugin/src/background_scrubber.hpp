// Freed arena memory that must be zeroed before another process gets it, zeroed by a thread of
// its own instead of on the engine's request path.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <thread>

namespace cafshm {

/// Who may have written freed memory: one registration of one process table slot. token 0 is
/// nobody known: such memory is zeroed for every allocation.
struct scrub_writer {
  uint32_t slot = 0;
  uint64_t token = 0;
  friend bool operator==(const scrub_writer&, const scrub_writer&) = default;
};

/// The dirty ranges of the engine's mappings of its data segments: memory the allocator holds
/// as free whose bytes a process wrote. Each range remembers the only process that may have
/// written it (or that anyone may have). A thread zeroes a range once it has stayed free for
/// `settle` (so that the process that freed it can take it back without zeroing), in pieces of
/// `piece_bytes`; an allocation takes the ranges it overlaps out first (claim) and zeroes what a
/// process other than the allocating one may have written.
///
/// Invariants: ranges never overlap; a range lies inside one mapping; every byte the allocator
/// hands out was claimed first, so the thread never writes memory a process holds (claim waits
/// for the piece the thread is zeroing). Thread-safe; the engine thread calls add, claim and
/// forget, the scrubber's own thread only zeroes.
class background_scrubber {
public:
  using writer = scrub_writer;
  static constexpr writer anyone{};

  struct counts {
    uint64_t pending_bytes = 0;   // dirty now (listed, or in the thread's piece)
    uint64_t zeroed_in_background = 0;
    uint64_t zeroed_by_engine = 0;   // by claim (before the thread reached them) or zero_all
    uint64_t kept_for_writer = 0;    // claimed by the process that wrote them: not zeroed
  };

  explicit background_scrubber(std::chrono::microseconds settle,
                               size_t piece_bytes = size_t{1} << 20);
  ~background_scrubber(); // stops the thread; ranges left are not zeroed
  background_scrubber(const background_scrubber&) = delete;
  background_scrubber& operator=(const background_scrubber&) = delete;

  /// Starts the thread (idempotent).
  void start();
  /// Stops and joins the thread; ranges left stay dirty (claim still zeroes them).
  void stop();

  /// [at, at + bytes) became free with bytes `by` may have written; it must overlap no range.
  void add(std::byte* at, size_t bytes, writer by);
  /// Takes [at, at + bytes) out for an allocation by `by`: zeroes every part that someone else
  /// may have written (also the part the thread is zeroing now: it waits for that piece).
  /// Returns whether a part was left as it was because `by` wrote it.
  bool claim(std::byte* at, size_t bytes, writer by);
  /// Drops the ranges in [at, at + bytes) without zeroing (the mapping goes away).
  void forget(std::byte* at, size_t bytes);
  /// Zeroes every range now, on the calling thread.
  void zero_all();

  counts stats() const;

private:
  using clock = std::chrono::steady_clock;
  struct range {
    size_t bytes;
    writer by;
    clock::time_point since;
  };
  using key = std::uintptr_t;

  void run();
  /// Removes [from, to) from the ranges (lock held, no piece in work overlaps); calls
  /// `inner(at, bytes, by)` for each part inside it.
  template <class F>
  void cut(key from, key to, F&& inner);
  /// Lists a range in ranges_ and by_age_ (lock held); answers its place in ranges_.
  std::map<key, range>::iterator insert(key start, const range& r);
  /// Takes the range at `i` out of both (lock held); answers the range after it.
  std::map<key, range>::iterator erase(std::map<key, range>::iterator i);
  void wait_for_piece(std::unique_lock<std::mutex>& lock, key from, key to);

  const std::chrono::microseconds settle_;
  const size_t piece_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable work_;       // the thread: a range was added, or stop
  std::condition_variable piece_done_; // claimers: the piece in work is zeroed
  std::map<key, range> ranges_;        // by start address
  std::set<std::pair<clock::time_point, key>> by_age_; // (since, start) of every range
  key busy_from_ = 0, busy_to_ = 0;    // the piece the thread is zeroing, or empty
  counts counts_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace cafshm
