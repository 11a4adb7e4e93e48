// Sleeping on several futex words at once (Linux futex_waitv, 5.16 and later): a parked
// scheduler worker waits for a record in any of the process's inboxes and for local work with
// one system call. The words are shared futexes (no FUTEX_PRIVATE_FLAG), like eventcount's, so
// the wake-ups eventcount::notify_* sends reach them, whichever process sends them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>

namespace cafshm::fastpath {

struct futex_key {
  std::atomic<uint32_t>* word = nullptr;
  uint32_t expected = 0; // sleep only while the word holds this value
};

/// The most words one wait_any() takes (the kernel's limit).
constexpr size_t wait_any_limit = 128;

/// Sleeps until one of the words no longer holds its expected value, a wake-up on one of them,
/// or `timeout`. Returns at once if a word already differs. A kernel without futex_waitv: waits
/// on the first word only, for at most 1 ms, so that the others are looked at again soon.
/// At most wait_any_limit keys (the rest are ignored).
void wait_any(std::span<const futex_key> keys, std::chrono::nanoseconds timeout) noexcept;

} // namespace cafshm::fastpath
