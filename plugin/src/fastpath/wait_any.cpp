#include "fastpath/wait_any.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cafshm::fastpath {

namespace {

timespec to_timespec(std::chrono::nanoseconds ns) {
  return {static_cast<time_t>(ns.count() / 1'000'000'000),
          static_cast<long>(ns.count() % 1'000'000'000)};
}

void wait_first(const futex_key& key, std::chrono::nanoseconds timeout) noexcept {
  auto ts = to_timespec(std::min<std::chrono::nanoseconds>(timeout, std::chrono::milliseconds{1}));
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(key.word), FUTEX_WAIT, key.expected, &ts,
            nullptr, 0);
}

} // namespace

void wait_any(std::span<const futex_key> keys, std::chrono::nanoseconds timeout) noexcept {
  if (keys.empty() || timeout.count() <= 0)
    return;
  auto n = std::min(keys.size(), wait_any_limit);
#ifdef SYS_futex_waitv
  static std::atomic<bool> unsupported{false};
  if (!unsupported.load(std::memory_order_relaxed)) {
    std::array<futex_waitv, wait_any_limit> waiters{};
    for (size_t i = 0; i < n; ++i) {
      waiters[i].val = keys[i].expected;
      waiters[i].uaddr = reinterpret_cast<uintptr_t>(keys[i].word);
      waiters[i].flags = FUTEX_32; // shared: no FUTEX_PRIVATE_FLAG
    }
    // futex_waitv takes an absolute time on the given clock.
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto until = std::chrono::seconds{now.tv_sec} + std::chrono::nanoseconds{now.tv_nsec}
                 + std::min<std::chrono::nanoseconds>(timeout, std::chrono::hours{24});
    auto ts = to_timespec(until);
    // EAGAIN (a word differs), EINTR, ETIMEDOUT and a wake-up all mean: look again.
    if (::syscall(SYS_futex_waitv, waiters.data(), static_cast<unsigned>(n), 0u, &ts,
                  CLOCK_MONOTONIC) >= 0
        || errno != ENOSYS)
      return;
    unsupported.store(true, std::memory_order_relaxed);
  }
#endif
  wait_first(keys[0], timeout);
}

} // namespace cafshm::fastpath
