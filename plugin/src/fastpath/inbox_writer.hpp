// The sending side of an inbox (inbox_layout.hpp): appends records to another local process's
// inbox. Records of one inbox_writer arrive in the order send() was called. A full inbox makes
// send() wait for space up to its `wait` (woken by the reader when it frees space), then fail
// with errc::inbox_full; nothing is dropped silently.
// Not thread-safe: one thread at a time per inbox_writer (each thread may open its own).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include <caf/expected.hpp>

#include "fastpath/inbox_layout.hpp"
#include "shm_segment.hpp"

namespace cafshm::fastpath {

class inbox_writer {
public:
  /// Maps the inbox object `segment_name` read-write and checks its control block
  /// (errc::segment_error if it is missing, not an inbox, or of another layout version).
  /// `sender_slot` is this process's slot with the engine, carried in every record.
  static caf::expected<inbox_writer> open(const std::string& segment_name, uint32_t sender_slot);
  /// The same, waiting up to `wait` for the receiving process to create its inbox (tried
  /// every millisecond; the last error after `wait`).
  static caf::expected<inbox_writer> open(const std::string& segment_name, uint32_t sender_slot,
                                          std::chrono::milliseconds wait);

  inbox_writer(inbox_writer&&) noexcept = default;
  inbox_writer& operator=(inbox_writer&&) noexcept = default;

  /// Appends one record of `payload`. When the inbox is full, waits for space up to `wait`
  /// (zero: not at all). Errors: errc::request_too_large (payload above max_payload()),
  /// errc::inbox_full (no space within `wait`), errc::record_abandoned (this writer stalled so
  /// long that the reader gave up on the record), errc::segment_error (the control block holds
  /// values no reader wrote).
  caf::expected<void> send(std::span<const std::byte> payload,
                           std::chrono::nanoseconds wait = std::chrono::nanoseconds{0});

  uint64_t max_payload() const noexcept { return fastpath::max_payload(capacity_); }
  uint64_t capacity() const noexcept { return capacity_; }
  const std::string& name() const noexcept { return segment_.name(); }
  /// The `instance` its creator wrote into the object (as read now; tells this object from a
  /// later one of the same name).
  uint64_t instance() const noexcept { return __atomic_load_n(&control_->instance, __ATOMIC_RELAXED); }

  /// The pid its creator wrote into the object (as read now; untrusted like every field).
  int32_t owner_pid() const noexcept {
    return __atomic_load_n(&control_->owner_pid, __ATOMIC_RELAXED);
  }

  /// Longest single futex wait for space (the safety net for a lost wake-up).
  void park_timeout(std::chrono::milliseconds t) noexcept { park_timeout_ = t; }

  // -- test hooks: a writer process that stops half-way through a record ---------------------

  enum class TEST_stop_point : uint8_t {
    none,
    after_claim, // the tail CAS succeeded; the state word is not written yet
    after_mark,  // the state word says claimed; the payload is not copied, nothing committed
  };
  /// Calls `hook` at `point` of every later send() (e.g. to announce it and wait to be killed).
  void TEST_stop_at(TEST_stop_point point, std::function<void()> hook) {
    stop_point_ = point;
    stop_hook_ = std::move(hook);
  }

private:
  inbox_writer() = default;

  /// Claims `need` bytes for one record; returns its position (after a padding record if the
  /// ring's end came first), or the error that ends send().
  caf::expected<uint64_t> claim(uint64_t need, std::chrono::steady_clock::time_point deadline);

  void stop_at(TEST_stop_point point) {
    if (stop_point_ == point && stop_hook_)
      stop_hook_();
  }

  shm_segment segment_;
  inbox_control* control_ = nullptr;
  std::byte* ring_ = nullptr;
  uint64_t capacity_ = 0;   // validated copy; never re-read from the control block
  uint32_t sender_ = 0;
  int32_t pid_ = 0;
  uint32_t sequence_ = 0;   // of the next record
  std::chrono::milliseconds park_timeout_{100};
  TEST_stop_point stop_point_ = TEST_stop_point::none;
  std::function<void()> stop_hook_;
};

} // namespace cafshm::fastpath
