#include "fastpath/inbox_consumer.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <sched.h>

#include "fastpath/eventcount.hpp"

namespace cafshm::fastpath {

namespace {

std::atomic<uint64_t>& state_at(std::byte* ring, uint64_t capacity, uint64_t position) {
  return *reinterpret_cast<std::atomic<uint64_t>*>(ring + (position & (capacity - 1)));
}

bool process_gone(int32_t pid) {
  return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

} // namespace

inbox_consumer::inbox_consumer(inbox_control* control, std::byte* ring, uint64_t capacity,
                               uint64_t start, consumer_options options)
  : control_(control), ring_(ring), capacity_(capacity), options_(options), head_(start),
    published_head_(start) {
}

bool inbox_consumer::ready() const noexcept {
  auto head = published_head_.load(std::memory_order_acquire);
  auto tail = control_->tail.load(std::memory_order_seq_cst);
  auto available = std::min(tail - head, capacity_) / record_align * record_align;
  if (available == 0)
    return false;
  auto s = decode_slot(ring_, capacity_, head, available);
  return s.state == slot_state::committed || s.state == slot_state::padding
         || s.state == slot_state::corrupt;
}

bool inbox_consumer::claim_pending() const noexcept {
  auto head = published_head_.load(std::memory_order_acquire);
  auto tail = control_->tail.load(std::memory_order_acquire);
  return std::min(tail - head, capacity_) / record_align > 0 && !ready();
}

size_t inbox_consumer::poll_impl(void* handler, callback fn, size_t max) {
  size_t delivered = 0;
  uint64_t passed = 0; // bytes passed in this call: at most one ring's length
  // Positions looked at: every step passes record_align bytes at least, except a CAS that lost
  // to a writer changing the word (decoded again); a writer flipping it on purpose cannot keep
  // this call from returning.
  uint64_t steps_left = 2 * (capacity_ / record_align);
  while (delivered < max && passed < capacity_ && steps_left-- > 0) {
    auto tail = control_->tail.load(std::memory_order_acquire);
    // More than a ring, or not whole units: a tail no honest producer wrote. Only whole units
    // within one ring are looked at, so head_ stays a multiple of record_align.
    auto available = std::min(tail - head_, capacity_) / record_align * record_align;
    if (available == 0)
      break;
    auto s = decode_slot(ring_, capacity_, head_, available);
    uint64_t skip = 0;
    switch (s.state) {
      case slot_state::committed: {
        auto payload = ring_ + (head_ & (capacity_ - 1)) + record_header_bytes;
        payload_.resize(s.length);
        if (s.length > 0) // an empty vector's data() may be null
          std::memcpy(payload_.data(), payload, s.length);
        stuck_ = false;
        advance(s.bytes); // the copy is private: free the space before the handler runs
        publish_head();
        passed += s.bytes;
        ++delivered;
        ++delivered_;
        control_->delivered.store(delivered_, std::memory_order_relaxed);
        fn(handler, inbox_record{s.sender, s.sequence, {payload_.data(), payload_.size()}});
        continue;
      }
      case slot_state::padding:
        skip = s.bytes;
        break;
      case slot_state::corrupt:
        skip = s.bytes;
        ++rejected_;
        control_->rejected.store(rejected_, std::memory_order_relaxed);
        break;
      case slot_state::claimed: {
        if (!give_up(s, tail))
          goto pending;
        // Mark it abandoned, so that a writer that is alive after all fails its commit and
        // reports it instead of believing the record delivered. A failed CAS: it changed
        // (committed just now); decode it again.
        auto word = s.word;
        if (!state_at(ring_, capacity_, head_)
               .compare_exchange_strong(word, make_state(head_, s.bytes, record_kind::abandoned),
                                        std::memory_order_acq_rel))
          continue;
        skip = s.bytes;
        ++abandoned_;
        control_->abandoned.store(abandoned_, std::memory_order_relaxed);
        break;
      }
      case slot_state::unmarked: {
        if (!give_up(s, tail))
          goto pending;
        // A writer that marks late finds this and fails (inbox_writer::send).
        auto word = s.word;
        if (!state_at(ring_, capacity_, head_)
               .compare_exchange_strong(word,
                                        make_state(head_, record_align, record_kind::abandoned),
                                        std::memory_order_acq_rel))
          continue;
        // The claim's size is unknown: skip to the next position that a writer marked, or past
        // everything claimed before the wait began.
        skip = next_marked_position(ring_, capacity_, head_, stuck_limit_) - head_;
        ++abandoned_;
        control_->abandoned.store(abandoned_, std::memory_order_relaxed);
        break;
      }
    }
    stuck_ = false;
    advance(skip);
    passed += skip;
  }
pending:
  publish_head();
  return delivered;
}

bool inbox_consumer::give_up(const slot& s, uint64_t tail) {
  auto now = clock::now();
  if (!stuck_ || stuck_position_ != head_) {
    stuck_ = true;
    stuck_position_ = head_;
    stuck_limit_ = head_ + std::min(tail - head_, capacity_) / record_align * record_align;
    stuck_since_ = now;
    last_liveness_check_ = now;
    return options_.abandon_after.count() <= 0;
  }
  if (now - stuck_since_ >= options_.abandon_after)
    return true;
  if (s.state == slot_state::claimed && now - last_liveness_check_ >= options_.liveness_check_after) {
    last_liveness_check_ = now;
    return process_gone(s.pid);
  }
  return false;
}

std::chrono::nanoseconds inbox_consumer::stuck_recheck() const {
  if (!stuck_)
    return std::chrono::nanoseconds::max();
  auto now = clock::now();
  auto until_abandon = stuck_since_ + options_.abandon_after - now;
  auto until_check = last_liveness_check_ + options_.liveness_check_after - now;
  return std::max(std::chrono::nanoseconds{0},
                  std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::min(until_abandon, until_check)));
}

void inbox_consumer::interrupt() noexcept {
  interrupted_.store(true, std::memory_order_release);
  // Bumps the sequence word a parked reader waits on (if it announced itself). All: scheduler
  // workers may sleep on the same word (inbox_poll_source.hpp).
  eventcount{control_->data_seq, control_->reader_waiting}.notify_all();
}

void inbox_consumer::advance(uint64_t bytes) noexcept {
  head_ += bytes;
  moved_ = true;
}

void inbox_consumer::publish_head() {
  if (!moved_)
    return;
  moved_ = false;
  published_head_.store(head_, std::memory_order_release);
  control_->head.store(head_, std::memory_order_release);
  eventcount{control_->space_seq, control_->writers_waiting}.notify_all();
}

size_t inbox_consumer::receive_impl(void* handler, callback fn, const idle_strategy& idle,
                                    std::chrono::nanoseconds timeout, size_t max) {
  auto start = clock::now();
  auto deadline = timeout >= std::chrono::hours{24 * 365} ? clock::time_point::max()
                                                           : start + timeout;
  if (auto n = poll_impl(handler, fn, max))
    return n;
  if (idle.spin.count() > 0) {
    auto spin_end = std::min(deadline, start + idle.spin);
    while (clock::now() < spin_end) {
      if (auto n = poll_impl(handler, fn, max))
        return n;
      idle.pause_while_spinning();
    }
  }
  for (uint32_t i = 0; i < idle.yields; ++i) {
    ::sched_yield();
    if (auto n = poll_impl(handler, fn, max))
      return n;
  }
  eventcount data{control_->data_seq, control_->reader_waiting};
  for (;;) {
    auto key = data.prepare_wait();
    auto n = poll_impl(handler, fn, max);
    // (interrupt() sets the flag before its fence: either it saw this waiter and wakes it, or
    // this load after prepare_wait's fence sees the flag.)
    if (n == 0 && !interrupted_.load(std::memory_order_acquire)) {
      auto now = clock::now();
      if (now >= deadline) {
        data.finish_wait();
        return 0;
      }
      auto nap = std::min({std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now),
                           std::chrono::nanoseconds{idle.park_timeout}, stuck_recheck()});
      data.wait(key, std::max(nap, std::chrono::nanoseconds{1000}));
    }
    data.finish_wait();
    if (n > 0 || interrupted_.exchange(false, std::memory_order_acq_rel))
      return n;
  }
}

} // namespace cafshm::fastpath
