// What a waiting inbox reader does while its inbox is empty: spin (poll without giving up the
// core), yield (poll, then sched_yield), then park on the inbox's futex until a producer wakes it.
// Spinning only pays when the reader and its peers each have a core of their own: with more
// runnable threads than cores a spinning reader takes the core its peer needs (docs/fastpath.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#include <sched.h>

namespace cafshm::fastpath {

struct idle_strategy {
  /// Poll without sleeping for this long after the last record (0 = never spin).
  std::chrono::microseconds spin{0};
  /// While spinning, sched_yield() between polls instead of a pause instruction: a thread that
  /// waits for this core (a peer woken by this reader's own record is often queued on the
  /// waker's core) runs at once instead of after the spin; so does unrelated work, for its slice.
  bool yield_while_spinning = false;
  /// Then poll and sched_yield() this many times.
  uint32_t yields = 0;
  /// Longest single futex wait while parked: the safety net for a producer that died between
  /// publishing a record and waking the reader. Waiting continues after it, up to the caller's
  /// deadline.
  std::chrono::milliseconds park_timeout{100};

  /// Park at once: the right default where cores are scarce.
  static idle_strategy park() { return {}; }

  /// A short spin, then park.
  static idle_strategy spin_then_park(std::chrono::microseconds spin_for) {
    idle_strategy s;
    s.spin = spin_for;
    return s;
  }

  /// What a spinning reader does between two polls: sched_yield() or a pause instruction.
  void pause_while_spinning() const noexcept {
    if (yield_while_spinning) {
      ::sched_yield();
      return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  /// A spin that gives the core to any thread waiting for it between polls, then park.
  static idle_strategy yielding_spin_then_park(std::chrono::microseconds spin_for) {
    auto s = spin_then_park(spin_for);
    s.yield_while_spinning = true;
    return s;
  }

  /// Spin 20 µs before parking only if the machine has at least `min_cores` cores; else park.
  static idle_strategy for_this_machine(unsigned min_cores = 4) {
    return std::thread::hardware_concurrency() >= min_cores
             ? spin_then_park(std::chrono::microseconds{20})
             : park();
  }
};

} // namespace cafshm::fastpath
