#include "fastpath/inbox_decoder.hpp"

namespace cafshm::fastpath {

namespace {

// Header fields are read with relaxed atomic loads: a sender may write them at any time, and the
// reader validates what it got instead of relying on them being stable.
uint64_t load_state(const std::byte* at) noexcept {
  return reinterpret_cast<const std::atomic<uint64_t>*>(at)->load(std::memory_order_acquire);
}

uint32_t load_u32(const std::byte* at) noexcept {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(at), __ATOMIC_RELAXED);
}

bool marked_for(uint64_t word, uint64_t position) noexcept {
  return state_tag(word) == tag_of_position(position) && state_bytes(word) != 0
         && state_kind(word) != record_kind::abandoned;
}

} // namespace

slot decode_slot(const std::byte* ring, uint64_t capacity, uint64_t position,
                 uint64_t available) noexcept {
  slot result;
  auto offset = position & (capacity - 1);
  if (offset % record_align != 0 || available < record_align || capacity - offset < record_align)
    return result;
  const std::byte* at = ring + offset;
  result.word = load_state(at);
  if (!marked_for(result.word, position))
    return result;
  auto bytes = state_bytes(result.word);
  // Sizes that do not fit the claimed span or the ring's end: a state word of this position
  // but nothing that can be skipped safely either.
  if (bytes > available || bytes > capacity - offset)
    return result;
  result.bytes = bytes;
  auto kind = state_kind(result.word);
  if (kind == record_kind::padding) {
    // Padding always fills the ring to its end.
    result.state = bytes == capacity - offset ? slot_state::padding : slot_state::corrupt;
    return result;
  }
  if (bytes < record_header_bytes) {
    result.state = slot_state::corrupt;
    return result;
  }
  result.length = load_u32(at + 8);
  result.sender = load_u32(at + 12);
  result.sequence = load_u32(at + 16);
  result.pid = static_cast<int32_t>(load_u32(at + 20));
  if (record_bytes(result.length) != bytes) {
    result.state = slot_state::corrupt;
    result.length = 0;
    return result;
  }
  result.state = kind == record_kind::committed ? slot_state::committed : slot_state::claimed;
  return result;
}

uint64_t next_marked_position(const std::byte* ring, uint64_t capacity, uint64_t position,
                              uint64_t limit) noexcept {
  for (auto p = position + record_align; p - position < limit - position; p += record_align)
    if (marked_for(load_state(ring + (p & (capacity - 1))), p))
      return p;
  return limit;
}

} // namespace cafshm::fastpath
