// The reading side of an inbox ring (inbox_layout.hpp): takes records out in ring order (so each
// sender's records in the order it sent them), wakes producers waiting for space, and parks on the
// inbox's eventcount when there is nothing to read.
//
// Everything in the mapping is untrusted: the reader keeps its own head and capacity, bounds every
// read by the ring, copies each payload into private memory before handing it out (a sender cannot
// change it under the handler), and never waits for one writer for longer than abandon_after:
//  - a claim whose state word was never written (writer killed right after its tail CAS) and
//  - a claim never committed (writer killed while copying)
// are skipped once their writer's pid is gone or abandon_after has passed since the reader first
// met them. One poll passes at most one ring's length, whatever the tail says.
// Not thread-safe: one reading thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox_decoder.hpp"
#include "fastpath/inbox_layout.hpp"

namespace cafshm::fastpath {

/// One record as handed to a handler; `payload` is the reader's private copy, valid during the
/// handler call only. sender and sequence are what the sender wrote (unverified).
struct inbox_record {
  uint32_t sender = 0;
  uint32_t sequence = 0;
  std::span<const std::byte> payload;
};

struct consumer_options {
  /// How long the reader waits for a claimed record to be completed before skipping it, when it
  /// cannot tell that the writer died (a dead pid is noticed within liveness_check_after).
  std::chrono::nanoseconds abandon_after = std::chrono::seconds{1};
  std::chrono::nanoseconds liveness_check_after = std::chrono::milliseconds{1};
};

class inbox_consumer {
public:
  /// `control` is the mapped control block, `ring` the ring of `capacity` bytes (a power of two,
  /// checked by the caller), `start` the position to read from (a multiple of record_align).
  inbox_consumer(inbox_control* control, std::byte* ring, uint64_t capacity, uint64_t start,
                 consumer_options options = {});

  /// Hands up to `max` complete records to `handler(const inbox_record&)`, without waiting;
  /// returns how many.
  template <class Handler>
  size_t poll(Handler&& handler, size_t max = std::numeric_limits<size_t>::max()) {
    return poll_impl(&handler, &call<Handler>, max);
  }

  /// Like poll, but waits (spin, yield, park: `idle`) until at least one record came or
  /// `timeout` passed. Returns how many records it handed out (0: timeout).
  template <class Handler>
  size_t receive(Handler&& handler, const idle_strategy& idle, std::chrono::nanoseconds timeout,
                 size_t max = std::numeric_limits<size_t>::max()) {
    return receive_impl(&handler, &call<Handler>, idle, timeout, max);
  }

  /// Makes a receive() in progress (or the next one) return soon, with what it has (maybe 0);
  /// callable from any thread of the process, e.g. to stop the reading thread.
  void interrupt() noexcept;

  /// The next position to read.
  uint64_t head() const noexcept { return head_; }

  /// Whether poll() would hand out or pass a record without waiting: the record at the position
  /// the reader last published is committed, padding or damaged. Callable from any thread while
  /// no poll runs, or as a hint while one does (inbox_poll_source.hpp).
  bool ready() const noexcept;
  /// Whether a claim that its writer has not committed yet lies at that position (poll() waits
  /// for it, and may give up on it only after liveness_check_after or abandon_after). Any thread.
  bool claim_pending() const noexcept;
  /// The inbox's eventcount words (data_seq, reader_waiting), for waiting on several at once.
  std::atomic<uint32_t>& data_sequence() noexcept { return control_->data_seq; }
  std::atomic<uint32_t>& reader_waiting() noexcept { return control_->reader_waiting; }
  std::chrono::nanoseconds liveness_check_after() const noexcept {
    return options_.liveness_check_after;
  }

  /// Counts kept in private memory (mirrored into the control block for tools).
  uint64_t delivered() const noexcept { return delivered_; }
  uint64_t abandoned() const noexcept { return abandoned_; }
  uint64_t rejected() const noexcept { return rejected_; }

private:
  using callback = void (*)(void*, const inbox_record&);
  using clock = std::chrono::steady_clock;

  template <class Handler>
  static void call(void* handler, const inbox_record& r) {
    (*static_cast<std::remove_reference_t<Handler>*>(handler))(r);
  }

  size_t poll_impl(void* handler, callback fn, size_t max);
  size_t receive_impl(void* handler, callback fn, const idle_strategy& idle,
                      std::chrono::nanoseconds timeout, size_t max);

  /// Whether to stop waiting for the claim at head_ (which `s` describes).
  bool give_up(const slot& s, uint64_t tail);

  /// How long a parked reader may sleep before it must look at a stuck claim again.
  std::chrono::nanoseconds stuck_recheck() const;

  void advance(uint64_t bytes) noexcept;
  void publish_head();

  // -- constant after construction
  inbox_control* control_;
  std::byte* ring_;
  uint64_t capacity_;
  consumer_options options_;
  // -- the reading thread's
  uint64_t head_;
  std::atomic<uint64_t> published_head_; // head_ as of the last publish_head(), for ready()
  bool moved_ = false;              // head_ advanced since the last publish_head()
  std::atomic<bool> interrupted_{false}; // set by interrupt() from any thread
  std::vector<std::byte> payload_;  // private copy of the record being handed out
  bool stuck_ = false;              // waiting for the claim at stuck_position_
  uint64_t stuck_position_ = 0;
  uint64_t stuck_limit_ = 0;        // tail when the wait began (what an unmarked skip may pass)
  clock::time_point stuck_since_;
  clock::time_point last_liveness_check_;
  uint64_t delivered_ = 0;
  uint64_t abandoned_ = 0;
  uint64_t rejected_ = 0;
};

} // namespace cafshm::fastpath
