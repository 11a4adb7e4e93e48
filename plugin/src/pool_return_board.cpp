#include "pool_return_board.hpp"

#include <cstring>

namespace cafshm {

// The header as laid out in pool_return_board.hpp; every field is accessed atomically because
// any reader may write the board at any time.
struct pool_return_board::header {
  std::atomic<uint64_t> magic;
  std::atomic<uint64_t> pool;
  std::atomic<uint32_t> count;
  std::atomic<uint32_t> waiting;
};

static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free,
              "the board's words are shared between processes");
static_assert(std::atomic<uint32_t>::is_always_lock_free);

std::atomic<uint64_t>* pool_return_board::slots() const noexcept {
  return reinterpret_cast<std::atomic<uint64_t>*>(base_ + header_bytes);
}

pool_return_board pool_return_board::format(std::span<std::byte> memory, uint64_t pool,
                                             uint32_t count) {
  static_assert(sizeof(header) <= header_bytes);
  pool_return_board b;
  if (memory.size() < bytes_for(count))
    return b;
  std::memset(memory.data(), 0, bytes_for(count));
  b.base_ = memory.data();
  b.count_ = count;
  auto* h = new (b.base_) header;
  for (uint32_t i = 0; i < count; ++i)
    new (b.slots() + i) std::atomic<uint64_t>{0};
  h->pool.store(pool, std::memory_order_relaxed);
  h->count.store(count, std::memory_order_relaxed);
  h->waiting.store(0, std::memory_order_relaxed);
  h->magic.store(magic_value, std::memory_order_release);
  return b;
}

pool_return_board pool_return_board::attach(std::span<std::byte> memory, uint64_t pool) {
  pool_return_board b;
  if (memory.size() < header_bytes)
    return b;
  auto* h = reinterpret_cast<header*>(memory.data());
  if (h->magic.load(std::memory_order_acquire) != magic_value
      || h->pool.load(std::memory_order_relaxed) != pool)
    return b;
  auto count = h->count.load(std::memory_order_relaxed);
  if (memory.size() < bytes_for(count))
    return b;
  b.base_ = memory.data();
  b.count_ = count; // validated once; later writes to the shared count are never read
  return b;
}

bool pool_return_board::release(uint32_t index, uint64_t sequence) noexcept {
  if (!base_ || index >= count_)
    return false;
  slots()[index].store(sequence, std::memory_order_seq_cst);
  if (head()->waiting.load(std::memory_order_seq_cst) == 0)
    return false;
  return head()->waiting.exchange(0, std::memory_order_seq_cst) != 0;
}

uint64_t pool_return_board::released(uint32_t index) const noexcept {
  if (!base_ || index >= count_)
    return 0;
  return slots()[index].load(std::memory_order_seq_cst);
}

void pool_return_board::want() noexcept {
  if (base_)
    head()->waiting.store(1, std::memory_order_seq_cst);
}

void pool_return_board::unwant() noexcept {
  if (base_)
    head()->waiting.store(0, std::memory_order_relaxed);
}

} // namespace cafshm
