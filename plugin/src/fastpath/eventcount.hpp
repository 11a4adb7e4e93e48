// An eventcount on a futex word in shared memory: waiting for a condition that other processes
// make true, without losing a wake-up and without a lock.
//
//   waiter:   key = prepare_wait();  if (!condition()) wait(key, timeout);  finish_wait();
//   notifier: make the condition true (a release store);  notify_one() / notify_all();
//
// Why nothing is lost: prepare_wait() reads the sequence word, then announces the waiter
// (waiters += 1) and issues a seq_cst fence before the waiter's re-check of the condition; a
// notifier issues a seq_cst fence after making the condition true and before it reads `waiters`.
// Of two such fences one comes first, so either the notifier sees the waiter (it bumps the
// sequence word and wakes: FUTEX_WAIT on the old key then returns at once or is woken) or the
// waiter's re-check sees the condition (it does not sleep). The futex is a shared one (no
// FUTEX_PRIVATE_FLAG) and must live in a MAP_SHARED mapping. The timeout of wait() is the safety
// net for a notifier killed between making the condition true and its wake-up, and for a
// `waiters` word that another process corrupted.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace cafshm::fastpath {

class eventcount {
public:
  /// Both words live in shared memory; neither is owned.
  eventcount(std::atomic<uint32_t>& sequence, std::atomic<uint32_t>& waiters) noexcept
    : sequence_(sequence), waiters_(waiters) {
  }

  /// Announces a waiter; returns the key for wait(). Call finish_wait() afterwards, always.
  uint32_t prepare_wait() noexcept;

  /// Sleeps until the sequence word differs from `key`, a wake-up, or `timeout` (at most).
  void wait(uint32_t key, std::chrono::nanoseconds timeout) noexcept;

  /// Withdraws the announcement of prepare_wait().
  void finish_wait() noexcept;

  /// Wakes one / all waiters if any announced themselves (one fence and a load otherwise).
  void notify_one() noexcept;
  void notify_all() noexcept;

private:
  void notify(int count) noexcept;

  std::atomic<uint32_t>& sequence_;
  std::atomic<uint32_t>& waiters_;
};

} // namespace cafshm::fastpath
