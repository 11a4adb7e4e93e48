// Two-level segregated-fit allocator (TLSF) over an arena of whole pages (page = min_block).
// A block occupies exactly the pages its size needs: no rounding to powers of two. Free blocks
// sit on one list per size class; a two-level bitmap finds the smallest non-empty class that
// holds a fitting block in O(1), a freed block merges with free neighbours in O(1). It hands
// out byte offsets and never touches the arena itself. All state lives in a caller-provided
// byte range (in cafshm: the allocator section of admin memory), visible to every process that
// maps admin memory.
//
// Size classes (by pages n): n < 2^sl_bits: one class per n (exact fit). Above, class
// (fl, sl) holds [(2^sl_bits + sl) << (fl - 1), (2^sl_bits + sl + 1) << (fl - 1)): each power of
// two is split into 2^sl_bits classes, so a class spans less than 1/256 of its sizes.
// Allocation looks at the request's own class (best fit: exact below 2^sl_bits pages), else at the
// smallest larger non-empty class, and takes the lowest-addressed fitting block among the first
// class_scan entries of that list (if nothing larger is free, it walks the whole own class: an
// allocation fails only when no free block fits); it splits off the pages it needs at the block's
// low end and returns the rest to its class. Freeing merges with free neighbours at once.
//
// State layout (state_bytes() in total, 8-byte aligned, written only by the engine):
//   tlsf_header                          fixed, see below
//   uint32_t head[space_pages]           per page, padded to 8 bytes:
//                                          first page of a block: kind | length in pages;
//                                          last page of a FREE block or a HOLE of >= 2 pages:
//                                          first page + 1 (kind bits 0); every other page: 0
//   free_link link[(space_pages + 1) / 2] free-list neighbours of the free block that starts at
//                                          page 2i or 2i + 1 (free blocks are never adjacent, so
//                                          at most one starts in each pair of pages)
// 8 bytes per page. The page space holds the arena's pages; pages beyond the arena (room for
// ranges added later) form holes: blocks that are neither free nor allocated and never merge with
// free blocks. Holes merge with each other, so a hole always reaches from one range to the next.
// A range (in cafshm: one data segment) is added inside a hole, at least one hole page away from
// every other range, so no block ever spans two ranges; an empty range can be taken out again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace cafshm {

class tlsf_allocator {
public:
  static constexpr uint32_t no_page = 0xffffffffu;
  static constexpr uint32_t sl_bits = 8;                    // classes per power of two: 256
  static constexpr uint32_t sl_count = 1u << sl_bits;
  static constexpr uint32_t fl_count = 30 - sl_bits + 1;    // lengths below 2^30 pages
  static constexpr uint32_t sl_words = sl_count / 64;       // bitmap words per first level
  static constexpr uint32_t max_pages = (1u << 30) - 1;     // lengths and marks use 30 bits
  static constexpr uint32_t class_scan = 8;                 // list entries compared per search

  /// Kind of the block starting at a page (top two bits of page_entry::head).
  static constexpr uint32_t kind_free = 1u << 30;
  static constexpr uint32_t kind_used = 2u << 30;
  static constexpr uint32_t kind_hole = 3u << 30;
  static constexpr uint32_t kind_mask = 3u << 30;
  static constexpr uint32_t length_mask = (1u << 30) - 1;

  struct tlsf_header {
    uint32_t page_shift;                      // log2 of the page (min_block) size
    uint32_t space_pages;                     // pages of the page space
    uint32_t arena_pages;                     // pages in free or allocated blocks (not holes)
    uint32_t free_pages;                      // pages in free blocks
    uint32_t free_blocks;                     // number of free blocks
    uint32_t fl_bitmap;                       // bit fl: some class of that first level non-empty
    uint64_t sl_bitmap[fl_count][sl_words];   // bit sl: class (fl, sl) non-empty
    uint32_t free_head[fl_count][sl_count];   // first page of each class's free list or no_page
  };

  /// Neighbours of a free block on its class's list: first pages, or no_page.
  struct free_link {
    uint32_t prev;
    uint32_t next;
  };

  /// Bytes of state for a page space of `space_pages` pages.
  static size_t state_bytes(uint64_t space_pages);

  /// Formats `state` (at least state_bytes(space_pages) long, 8-byte aligned): pages
  /// [0, arena_pages) free in one block, the rest of the page space a hole.
  /// Requires 1 <= arena_pages <= space_pages <= max_pages.
  static tlsf_allocator create(std::span<std::byte> state, uint32_t page_shift,
                               uint32_t space_pages, uint32_t arena_pages);

  /// Uses state formatted earlier by create().
  static tlsf_allocator attach(std::span<std::byte> state);

  /// Bytes a block of `size` occupies: size rounded up to whole pages (at least one page).
  uint64_t occupied_bytes(uint64_t size) const noexcept;

  /// Byte offset of a newly allocated block holding `size` bytes, or nullopt if none fits.
  std::optional<uint64_t> allocate(uint64_t size) noexcept;

  /// Frees the block starting at `offset`; false if no allocated block starts there.
  bool free(uint64_t offset) noexcept;

  /// Turns pages [first, first + pages) of a hole into one free block: the hole must start at
  /// page first - 1 (one hole page stays before the range) and either end at the end of the page
  /// space or keep at least one hole page after the range. False (nothing changes) otherwise.
  bool add_range(uint32_t first, uint32_t pages) noexcept;

  /// Turns the free block [first, first + pages) back into a hole, merged with the holes on both
  /// sides: the block must be free, exactly that long, and lie between holes (or the end of the
  /// page space). False (nothing changes) otherwise.
  bool remove_range(uint32_t first, uint32_t pages) noexcept;

  /// Moves the range [first, first + pages) with its blocks down to one page after the start of
  /// the hole before it (packing ranges towards page 0, so that the holes between them join at
  /// the end of the page space); the range's blocks keep their lengths, kinds and order, free
  /// ones stay on the lists of their classes. The range must be tiled by blocks, lie between
  /// holes (or end the page space), and not start at page 0. Returns the range's new first page
  /// (`first` if it cannot move down), or no_page if it is not such a range (nothing changes).
  /// Walks the range's blocks and writes the page entries from the hole to its end: for the
  /// rare moment when no gap between ranges is large enough for a new one.
  uint32_t slide_range_down(uint32_t first, uint32_t pages);

  /// Whether [first, first + pages) is one free block (an added range that is empty again).
  bool range_free(uint32_t first, uint32_t pages) const noexcept;

  /// Whether free and allocated blocks tile [first, first + pages) exactly and a hole (or the
  /// end of the page space) follows it. For consistency checks: walks the range's blocks.
  bool tiles_range(uint32_t first, uint32_t pages) const noexcept;

  uint32_t space_pages() const noexcept { return header_->space_pages; }
  uint32_t arena_pages() const noexcept { return header_->arena_pages; }

  /// Bytes of the allocated block starting at `offset`, or nullopt.
  std::optional<uint64_t> allocated_bytes(uint64_t offset) const noexcept;

  uint32_t page_shift() const noexcept { return header_->page_shift; }
  uint64_t page_bytes() const noexcept { return uint64_t{1} << header_->page_shift; }
  uint64_t arena_bytes() const noexcept { return bytes(header_->arena_pages); }
  uint64_t free_bytes() const noexcept { return bytes(header_->free_pages); }
  uint32_t free_blocks() const noexcept { return header_->free_blocks; }

  /// The largest allocation that succeeds: the largest free block (scans the largest non-empty
  /// class only).
  uint64_t largest_free_block() const noexcept;

  /// Free bytes held in blocks of page_bytes * [2^k, 2^(k+1)) bytes; index k.
  /// Walks every free list: for statistics, not for the request path.
  std::vector<uint64_t> free_bytes_by_order() const;

  /// Verifies every invariant: blocks tile the page space without overlap or gap, no two free
  /// blocks are adjacent (coalesced), tails mark exactly the free blocks' last pages, counters
  /// equal what the blocks say, every free block is on the list of its class exactly once with
  /// consistent links, and the bitmaps mark exactly the non-empty classes. Walks the whole page
  /// space. Returns "" when all hold, else what is wrong.
  std::string check() const;

private:
  tlsf_allocator(tlsf_header* h, uint32_t* head, free_link* links)
    : header_(h), head_(head), links_(links) {}
  static tlsf_allocator at(std::span<std::byte> state, uint32_t space_pages);
  uint64_t bytes(uint64_t pages) const noexcept { return pages << header_->page_shift; }
  uint32_t length_at(uint32_t page) const noexcept { return head_[page] & length_mask; }
  bool free_at(uint32_t page) const noexcept { return (head_[page] & kind_mask) == kind_free; }
  free_link& link(uint32_t page) const noexcept { return links_[page / 2]; }
  /// First page of the free block (or, with kind_hole, the hole) whose last page is `page`, or
  /// no_page.
  uint32_t block_ending_at(uint32_t page, uint32_t kind) const noexcept;
  /// Writes the head (and, from 2 pages on, the tail mark) of a hole.
  void mark_hole(uint32_t page, uint32_t length) noexcept;
  void insert_free(uint32_t page, uint32_t length) noexcept;
  void remove_free(uint32_t page) noexcept;
  uint32_t find_fit(uint32_t length) const noexcept;

  tlsf_header* header_;
  uint32_t* head_;
  free_link* links_;
};

} // namespace cafshm
