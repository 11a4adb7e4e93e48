#include "fastpath/inbox_writer.hpp"

#include <bit>
#include <cstring>
#include <thread>

#include <unistd.h>

#include "cafshm/error.hpp"
#include "fastpath/eventcount.hpp"

namespace cafshm::fastpath {

namespace {

using clock = std::chrono::steady_clock;

std::atomic<uint64_t>& state_at(std::byte* ring, uint64_t capacity, uint64_t position) {
  return *reinterpret_cast<std::atomic<uint64_t>*>(ring + (position & (capacity - 1)));
}

void store_u32(std::byte* at, uint32_t value) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(at), value, __ATOMIC_RELAXED);
}

// The reader's abandoned mark for `position` (never zero-sized: a zero word at position 0 of a
// fresh ring is not one).
bool abandoned_at(uint64_t word, uint64_t position) {
  return state_tag(word) == tag_of_position(position) && state_bytes(word) != 0
         && state_kind(word) == record_kind::abandoned;
}

caf::error abandoned_error(const std::string& name) {
  return make_error(errc::record_abandoned,
                    "inbox '" + name + "': the reader gave up waiting for this record (the "
                    "sender stalled between claiming and committing it)");
}

} // namespace

caf::expected<inbox_writer> inbox_writer::open(const std::string& segment_name,
                                               uint32_t sender_slot,
                                               std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto w = open(segment_name, sender_slot);
    if (w || std::chrono::steady_clock::now() >= deadline)
      return w;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

caf::expected<inbox_writer> inbox_writer::open(const std::string& segment_name,
                                               uint32_t sender_slot) {
  auto seg = shm_segment::open(segment_name, true);
  if (!seg)
    return seg.error();
  auto bad = [&](const std::string& why) {
    return make_error(errc::segment_error, "'" + segment_name + "' is not a usable inbox: " + why);
  };
  if (seg->size() < segment_bytes(min_capacity))
    return bad("too small");
  auto* control = reinterpret_cast<inbox_control*>(seg->data());
  if (__atomic_load_n(&control->magic, __ATOMIC_ACQUIRE) != inbox_magic)
    return bad("no inbox magic");
  if (control->layout_version != inbox_layout_version)
    return bad("layout version " + std::to_string(control->layout_version) + ", expected "
               + std::to_string(inbox_layout_version));
  auto capacity = control->capacity;
  if (!std::has_single_bit(capacity) || capacity < min_capacity || capacity > max_capacity
      || segment_bytes(capacity) > seg->size())
    return bad("capacity " + std::to_string(capacity) + " does not fit the object");
  inbox_writer w;
  w.segment_ = std::move(*seg);
  w.control_ = control;
  w.ring_ = w.segment_.data() + ring_offset;
  w.capacity_ = capacity;
  w.sender_ = sender_slot;
  w.pid_ = static_cast<int32_t>(::getpid());
  return w;
}

caf::expected<uint64_t> inbox_writer::claim(uint64_t need, clock::time_point deadline) {
  eventcount space{control_->space_seq, control_->writers_waiting};
  for (;;) {
    auto tail = control_->tail.load(std::memory_order_acquire);
    if (tail % record_align != 0)
      return make_error(errc::segment_error, "inbox '" + name() + "': corrupt tail");
    auto offset = tail & (capacity_ - 1);
    auto to_end = capacity_ - offset;
    auto total = need <= to_end ? need : to_end + need;
    auto fits = [&] {
      // tail - head > capacity: a head that moved past the tail we read (another writer and the
      // reader were faster; read both again) or a corrupt one (then waiting ends in inbox_full).
      auto used = tail - control_->head.load(std::memory_order_acquire);
      return used <= capacity_ && total <= capacity_ - used;
    };
    if (fits()) {
      if (control_->tail.compare_exchange_weak(tail, tail + total, std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
        if (total == need)
          return tail;
        // Padding to the ring's end; the record starts the next lap.
        state_at(ring_, capacity_, tail)
          .store(make_state(tail, to_end, record_kind::padding), std::memory_order_release);
        return tail + to_end;
      }
      continue;
    }
    auto now = clock::now();
    if (now >= deadline)
      return make_error(errc::inbox_full,
                        "inbox '" + name() + "' has no room for a record of " + std::to_string(need)
                          + " bytes (the receiving process does not read fast enough)");
    auto key = space.prepare_wait();
    auto fresh = control_->tail.load(std::memory_order_acquire);
    if (fresh == tail && !fits())
      space.wait(key, std::min<std::chrono::nanoseconds>(deadline - now, park_timeout_));
    space.finish_wait();
  }
}

caf::expected<void> inbox_writer::send(std::span<const std::byte> payload,
                                       std::chrono::nanoseconds wait) {
  if (payload.size() > max_payload())
    return make_error(errc::request_too_large,
                      "a record of " + std::to_string(payload.size()) + " bytes exceeds inbox '"
                        + name() + "''s limit of " + std::to_string(max_payload()) + " bytes");
  auto need = record_bytes(payload.size());
  auto deadline = wait >= std::chrono::hours{24 * 365} ? clock::time_point::max()
                                                       : clock::now() + wait;
  auto claimed = claim(need, deadline);
  if (!claimed)
    return claimed.error();
  auto position = *claimed;
  stop_at(TEST_stop_point::after_claim);
  auto* at = ring_ + (position & (capacity_ - 1));
  store_u32(at + 8, static_cast<uint32_t>(payload.size()));
  store_u32(at + 12, sender_);
  store_u32(at + 16, sequence_);
  store_u32(at + 20, static_cast<uint32_t>(pid_));
  std::memset(at + 24, 0, 8);
  // Mark the claim; the reader may have given up on the unmarked position meanwhile.
  auto& state = state_at(ring_, capacity_, position);
  auto claimed_word = make_state(position, need, record_kind::claimed);
  auto word = state.load(std::memory_order_relaxed);
  do {
    if (abandoned_at(word, position))
      return abandoned_error(name());
  } while (!state.compare_exchange_weak(word, claimed_word, std::memory_order_release,
                                        std::memory_order_relaxed));
  stop_at(TEST_stop_point::after_mark);
  if (!payload.empty())
    std::memcpy(at + record_header_bytes, payload.data(), payload.size());
  word = claimed_word;
  if (!state.compare_exchange_strong(word, make_state(position, need, record_kind::committed),
                                     std::memory_order_acq_rel))
    return abandoned_error(name());
  ++sequence_;
  // All waiters: a thread reading the inbox and scheduler workers that poll it
  // (inbox_poll_source.hpp) may sleep on the same word, and the one reading must not miss it.
  eventcount{control_->data_seq, control_->reader_waiting}.notify_all();
  return {};
}

} // namespace cafshm::fastpath
