#include "fastpath/eventcount.hpp"

#include <climits>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cafshm::fastpath {

namespace {

// A shared futex (no FUTEX_PRIVATE_FLAG): the kernel keys it by the mapped object and offset, so
// processes mapping the same shared-memory object at different addresses meet on it.
long futex(std::atomic<uint32_t>& word, int op, uint32_t value, const timespec* timeout) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), op, value, timeout, nullptr, 0);
}

} // namespace

uint32_t eventcount::prepare_wait() noexcept {
  auto key = sequence_.load(std::memory_order_acquire);
  waiters_.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return key;
}

void eventcount::wait(uint32_t key, std::chrono::nanoseconds timeout) noexcept {
  if (timeout.count() <= 0)
    return;
  auto ns = timeout.count();
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  // EAGAIN (the key is stale), EINTR and ETIMEDOUT all mean: look again.
  futex(sequence_, FUTEX_WAIT, key, &ts);
}

void eventcount::finish_wait() noexcept {
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

void eventcount::notify_one() noexcept {
  notify(1);
}

void eventcount::notify_all() noexcept {
  notify(INT_MAX);
}

void eventcount::notify(int count) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_relaxed) == 0)
    return;
  sequence_.fetch_add(1, std::memory_order_release);
  futex(sequence_, FUTEX_WAKE, static_cast<uint32_t>(count), nullptr);
}

} // namespace cafshm::fastpath
