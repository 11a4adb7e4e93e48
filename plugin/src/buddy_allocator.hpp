// Binary buddy allocator over an arena of 2^max_order bytes in blocks of 2^min_order..2^max_order.
// It hands out byte offsets; it never touches the arena itself. All of its state lives in a
// caller-provided byte range (in cafshm: the allocator section of admin memory), so that the
// state is visible to every process that maps admin memory and survives nothing but the segment.
//
// State layout (state_bytes() in total, 8-byte aligned, written only by the engine):
//   buddy_header                      fixed, see below
//   uint8_t tag[pages]                per min-block page: 0 = inside a block;
//                                     0x40|k = first page of a FREE block of order min+k;
//                                     0x80|k = first page of an ALLOCATED block of order min+k
//   page_link link[pages]             prev/next page of the free list a free head is on
// pages = 2^(max_order - min_order). Free lists are doubly linked so that coalescing unlinks a
// buddy in O(1); allocate and free are O(max_order - min_order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace cafshm {

class buddy_allocator {
public:
  static constexpr uint32_t no_page = 0xffffffffu;
  static constexpr uint32_t max_orders = 64;

  struct buddy_header {
    uint32_t min_order;              // log2 of the smallest block
    uint32_t max_order;              // log2 of the arena
    uint64_t free_bytes;             // sum of all free blocks
    uint32_t free_head[max_orders];  // by k = order - min_order: first page or no_page
    uint32_t free_count[max_orders]; // by k: length of that free list
  };
  struct page_link {
    uint32_t prev;
    uint32_t next;
  };

  /// Bytes of state needed for the given orders.
  static size_t state_bytes(uint32_t min_order, uint32_t max_order);

  /// Formats `state` (at least state_bytes() long, 8-byte aligned): the whole arena free.
  static buddy_allocator create(std::span<std::byte> state, uint32_t min_order,
                                uint32_t max_order);

  /// Uses state formatted earlier by create().
  static buddy_allocator attach(std::span<std::byte> state);

  /// Smallest order whose block holds `size` bytes (at least min_order; may exceed max_order).
  uint32_t order_for(uint64_t size) const noexcept;

  /// Byte offset of a newly allocated block of `order`, or nullopt if none is free.
  std::optional<uint64_t> allocate(uint32_t order) noexcept;

  /// Frees the block starting at `offset`; false if no allocated block starts there.
  bool free(uint64_t offset) noexcept;

  /// Order of the allocated block starting at `offset`, or nullopt.
  std::optional<uint32_t> allocated_order(uint64_t offset) const noexcept;

  uint32_t min_order() const noexcept { return header_->min_order; }
  uint32_t max_order() const noexcept { return header_->max_order; }
  uint64_t arena_bytes() const noexcept { return uint64_t{1} << header_->max_order; }
  uint64_t free_bytes() const noexcept { return header_->free_bytes; }
  uint64_t largest_free_block() const noexcept;

  /// Free bytes held in blocks of each order; index 0 is min_order.
  std::vector<uint64_t> free_bytes_by_order() const;

  /// Verifies every invariant: blocks tile the arena without overlap, are aligned to their size,
  /// used + free == arena, free lists match the tags and their counts, and no two free buddies
  /// of the same order remain uncoalesced. Returns "" when all hold, else what is wrong.
  std::string check() const;

private:
  buddy_allocator(buddy_header* h, uint8_t* tags, page_link* links)
    : header_(h), tags_(tags), links_(links) {}
  uint32_t pages() const noexcept { return 1u << (header_->max_order - header_->min_order); }
  void push(uint32_t k, uint32_t page) noexcept;
  void unlink(uint32_t k, uint32_t page) noexcept;

  buddy_header* header_;
  uint8_t* tags_;
  page_link* links_;
};

} // namespace cafshm
