#include "tlsf_allocator.hpp"

#include <bit>
#include <cstring>
#include <utility>

namespace cafshm {

namespace {

size_t align8(size_t n) {
  return (n + 7) & ~size_t{7};
}

struct size_class {
  uint32_t fl;
  uint32_t sl;
};

size_class class_of(uint32_t length) noexcept {
  if (length < tlsf_allocator::sl_count)
    return {0, length};
  auto b = static_cast<uint32_t>(std::bit_width(length)) - 1; // >= sl_bits
  return {b - tlsf_allocator::sl_bits + 1,
          (length >> (b - tlsf_allocator::sl_bits)) - tlsf_allocator::sl_count};
}

std::string text(auto&&... xs) {
  std::string s;
  ((s += xs), ...);
  return s;
}

} // namespace

size_t tlsf_allocator::state_bytes(uint64_t space_pages) {
  return align8(sizeof(tlsf_header)) + align8(space_pages * sizeof(uint32_t))
         + (space_pages + 1) / 2 * sizeof(free_link);
}

tlsf_allocator tlsf_allocator::at(std::span<std::byte> state, uint32_t space_pages) {
  auto* base = state.data();
  auto* head = reinterpret_cast<uint32_t*>(base + align8(sizeof(tlsf_header)));
  auto* links = reinterpret_cast<free_link*>(reinterpret_cast<std::byte*>(head)
                                             + align8(size_t{space_pages} * sizeof(uint32_t)));
  return {reinterpret_cast<tlsf_header*>(base), head, links};
}

tlsf_allocator tlsf_allocator::create(std::span<std::byte> state, uint32_t page_shift,
                                      uint32_t space_pages, uint32_t arena_pages) {
  auto result = at(state, space_pages);
  auto* h = result.header_;
  std::memset(h, 0, sizeof(tlsf_header));
  h->page_shift = page_shift;
  h->space_pages = space_pages;
  for (auto& fl : h->free_head)
    for (auto& head : fl)
      head = no_page;
  std::memset(result.head_, 0, size_t{space_pages} * sizeof(uint32_t));
  h->arena_pages = arena_pages;
  result.insert_free(0, arena_pages);
  h->free_pages = arena_pages;
  if (arena_pages < space_pages)
    result.mark_hole(arena_pages, space_pages - arena_pages);
  return result;
}

tlsf_allocator tlsf_allocator::attach(std::span<std::byte> state) {
  return at(state, reinterpret_cast<const tlsf_header*>(state.data())->space_pages);
}

uint64_t tlsf_allocator::occupied_bytes(uint64_t size) const noexcept {
  uint64_t mask = page_bytes() - 1;
  return size == 0 ? page_bytes() : (size + mask) & ~mask;
}

uint32_t tlsf_allocator::block_ending_at(uint32_t page, uint32_t kind) const noexcept {
  uint32_t h = head_[page];
  if ((h & kind_mask) == kind)
    return (h & length_mask) == 1 ? page : no_page;
  if ((h & kind_mask) != 0 || h == 0)
    return no_page;
  uint32_t start = h - 1; // a tail mark: of a free block or of a hole
  return start < page && (head_[start] & kind_mask) == kind ? start : no_page;
}

void tlsf_allocator::mark_hole(uint32_t page, uint32_t length) noexcept {
  head_[page] = kind_hole | length;
  if (length > 1)
    head_[page + length - 1] = page + 1;
}

bool tlsf_allocator::add_range(uint32_t first, uint32_t pages) noexcept {
  auto& h = *header_;
  if (first == 0 || pages == 0 || first >= h.space_pages || pages > h.space_pages - first)
    return false;
  uint32_t hole = first - 1;
  if ((head_[hole] & kind_mask) != kind_hole)
    return false;
  uint32_t hole_end = hole + length_at(hole);
  uint32_t end = first + pages;
  if (end > hole_end || (end == hole_end && hole_end != h.space_pages))
    return false; // beyond the hole, or no hole page left between the range and the next one
  head_[hole + length_at(hole) - 1] = 0; // the old tail mark (if any; rewritten below)
  mark_hole(hole, 1);
  if (end < hole_end)
    mark_hole(end, hole_end - end);
  if (pages > 1)
    head_[first + pages - 1] = 0;
  insert_free(first, pages);
  h.free_pages += pages;
  h.arena_pages += pages;
  return true;
}

bool tlsf_allocator::remove_range(uint32_t first, uint32_t pages) noexcept {
  auto& h = *header_;
  if (first == 0 || !range_free(first, pages))
    return false;
  uint32_t left = block_ending_at(first - 1, kind_hole);
  uint32_t end = first + pages;
  bool hole_right = end < h.space_pages && (head_[end] & kind_mask) == kind_hole;
  if (left == no_page || (end < h.space_pages && !hole_right))
    return false;
  uint32_t hole_end = hole_right ? end + length_at(end) : end;
  remove_free(first);
  head_[first - 1] = 0; // old tail marks of the left hole and of the right one
  if (hole_right) {
    head_[end] = 0;
    head_[hole_end - 1] = 0;
  }
  mark_hole(left, hole_end - left);
  h.free_pages -= pages;
  h.arena_pages -= pages;
  return true;
}

uint32_t tlsf_allocator::slide_range_down(uint32_t first, uint32_t pages) {
  auto& h = *header_;
  if (first == 0 || !tiles_range(first, pages))
    return no_page;
  uint32_t left = block_ending_at(first - 1, kind_hole);
  if (left == no_page)
    return no_page;
  uint32_t to = left + 1;
  if (to == first)
    return first;
  uint32_t end = first + pages;
  uint32_t hole_end = end < h.space_pages ? end + length_at(end) : end; // a hole follows
  // The blocks by their offset in the range, free ones off their lists.
  std::vector<std::pair<uint32_t, uint32_t>> blocks; // offset, head word
  for (uint32_t page = first; page < end; page += length_at(page))
    blocks.emplace_back(page - first, head_[page]);
  for (const auto& [offset, word] : blocks)
    if ((word & kind_mask) == kind_free)
      remove_free(first + offset);
  // From the left hole to the end of the right one: a one-page hole, the range, a hole.
  std::memset(head_ + left, 0, size_t{hole_end - left} * sizeof(uint32_t));
  mark_hole(left, 1);
  for (const auto& [offset, word] : blocks) {
    if ((word & kind_mask) == kind_free)
      insert_free(to + offset, word & length_mask);
    else
      head_[to + offset] = word;
  }
  mark_hole(to + pages, hole_end - to - pages);
  return to;
}

bool tlsf_allocator::range_free(uint32_t first, uint32_t pages) const noexcept {
  return first < header_->space_pages && pages != 0 && head_[first] == (kind_free | pages);
}

bool tlsf_allocator::tiles_range(uint32_t first, uint32_t pages) const noexcept {
  const auto& h = *header_;
  if (pages == 0 || first >= h.space_pages || pages > h.space_pages - first)
    return false;
  uint32_t end = first + pages;
  for (uint32_t page = first; page < end;) {
    uint32_t kind = head_[page] & kind_mask;
    if ((kind != kind_free && kind != kind_used) || length_at(page) == 0)
      return false;
    page += length_at(page);
    if (page > end)
      return false;
  }
  return end == h.space_pages || (head_[end] & kind_mask) == kind_hole;
}

void tlsf_allocator::insert_free(uint32_t page, uint32_t length) noexcept {
  auto [fl, sl] = class_of(length);
  auto& h = *header_;
  auto first = h.free_head[fl][sl];
  head_[page] = kind_free | length;
  if (length > 1)
    head_[page + length - 1] = page + 1;
  link(page) = {no_page, first};
  if (first != no_page)
    link(first).prev = page;
  h.free_head[fl][sl] = page;
  h.sl_bitmap[fl][sl / 64] |= uint64_t{1} << (sl % 64);
  h.fl_bitmap |= 1u << fl;
  ++h.free_blocks;
}

void tlsf_allocator::remove_free(uint32_t page) noexcept {
  auto& h = *header_;
  uint32_t length = length_at(page);
  auto [fl, sl] = class_of(length);
  auto [prev, next] = link(page);
  if (prev != no_page)
    link(prev).next = next;
  else
    h.free_head[fl][sl] = next;
  if (next != no_page)
    link(next).prev = prev;
  if (h.free_head[fl][sl] == no_page) {
    h.sl_bitmap[fl][sl / 64] &= ~(uint64_t{1} << (sl % 64));
    bool any = false;
    for (auto word : h.sl_bitmap[fl])
      any = any || word != 0;
    if (!any)
      h.fl_bitmap &= ~(1u << fl);
  }
  head_[page] = 0;
  head_[page + length - 1] = 0;
  --h.free_blocks;
}

// Placement: the smallest class that holds a fitting block, and within a class the lowest address
// among the first class_scan candidates. Preferring low addresses packs live blocks towards the
// start of the arena and leaves the large free blocks at its end.
uint32_t tlsf_allocator::find_fit(uint32_t length) const noexcept {
  const auto& h = *header_;
  auto lowest_fitting = [&](uint32_t p) {
    uint32_t best = no_page;
    for (uint32_t tried = 0; p != no_page && tried < class_scan; p = link(p).next, ++tried)
      if (length_at(p) >= length && p < best)
        best = p;
    return best;
  };
  auto [fl, sl] = class_of(length);
  // The own class: exact sizes below sl_count, else sizes on both sides of `length`.
  if (auto p = lowest_fitting(h.free_head[fl][sl]); p != no_page)
    return p;
  // The smallest larger non-empty class: every block there fits.
  for (uint32_t word = (sl + 1) / 64; sl + 1 < sl_count && word < sl_words; ++word) {
    uint64_t bits = h.sl_bitmap[fl][word];
    if (word == (sl + 1) / 64)
      bits &= ~uint64_t{0} << ((sl + 1) % 64);
    if (bits != 0)
      return lowest_fitting(h.free_head[fl][word * 64 + static_cast<uint32_t>(std::countr_zero(bits))]);
  }
  uint32_t fls = fl + 1 < 32 ? h.fl_bitmap & (~0u << (fl + 1)) : 0;
  if (fls != 0) {
    auto next_fl = static_cast<uint32_t>(std::countr_zero(fls));
    for (uint32_t word = 0; word < sl_words; ++word)
      if (uint64_t bits = h.sl_bitmap[next_fl][word]; bits != 0)
        return lowest_fitting(
          h.free_head[next_fl][word * 64 + static_cast<uint32_t>(std::countr_zero(bits))]);
  }
  // Nothing larger is free: a fitting block can only sit deeper in the own class's list. Walking
  // all of it happens only on the way to a failed allocation, and makes allocation succeed
  // exactly when some free block fits.
  for (auto p = h.free_head[fl][sl]; p != no_page; p = link(p).next)
    if (length_at(p) >= length)
      return p;
  return no_page;
}

std::optional<uint64_t> tlsf_allocator::allocate(uint64_t size) noexcept {
  uint64_t want = occupied_bytes(size) >> header_->page_shift;
  if (size == 0 || want > header_->free_pages)
    return std::nullopt;
  auto length = static_cast<uint32_t>(want);
  auto page = find_fit(length);
  if (page == no_page)
    return std::nullopt;
  uint32_t have = length_at(page);
  remove_free(page);
  if (have > length)
    insert_free(page + length, have - length);
  head_[page] = kind_used | length;
  header_->free_pages -= length;
  return bytes(page);
}

std::optional<uint64_t> tlsf_allocator::allocated_bytes(uint64_t offset) const noexcept {
  if (offset & (page_bytes() - 1))
    return std::nullopt;
  uint64_t page = offset >> header_->page_shift;
  if (page >= header_->space_pages || (head_[page] & kind_mask) != kind_used)
    return std::nullopt;
  return bytes(length_at(static_cast<uint32_t>(page)));
}

bool tlsf_allocator::free(uint64_t offset) noexcept {
  if (!allocated_bytes(offset))
    return false;
  auto page = static_cast<uint32_t>(offset >> header_->page_shift);
  uint32_t length = length_at(page);
  head_[page] = 0;
  header_->free_pages += length;
  uint32_t start = page;
  uint32_t total = length;
  uint32_t right = page + length;
  if (right < header_->space_pages && free_at(right)) {
    total += length_at(right);
    remove_free(right);
  }
  if (page > 0) {
    if (auto left = block_ending_at(page - 1, kind_free); left != no_page) {
      start = left;
      total += length_at(left);
      remove_free(left);
    }
  }
  insert_free(start, total);
  return true;
}

uint64_t tlsf_allocator::largest_free_block() const noexcept {
  const auto& h = *header_;
  if (h.fl_bitmap == 0)
    return 0;
  auto fl = static_cast<uint32_t>(std::bit_width(h.fl_bitmap)) - 1;
  for (uint32_t word = sl_words; word-- > 0;)
    if (uint64_t bits = h.sl_bitmap[fl][word]; bits != 0) {
      uint32_t sl = word * 64 + static_cast<uint32_t>(std::bit_width(bits)) - 1;
      uint32_t largest = 0;
      for (auto p = h.free_head[fl][sl]; p != no_page; p = link(p).next)
        largest = std::max(largest, length_at(p));
      return bytes(largest);
    }
  return 0;
}

std::vector<uint64_t> tlsf_allocator::free_bytes_by_order() const {
  std::vector<uint64_t> result(std::bit_width(header_->arena_pages), 0);
  for (uint32_t fl = 0; fl < fl_count; ++fl)
    for (uint32_t sl = 0; sl < sl_count; ++sl)
      for (auto p = header_->free_head[fl][sl]; p != no_page; p = link(p).next) {
        uint32_t length = length_at(p);
        result[std::bit_width(length) - 1] += bytes(length);
      }
  return result;
}

std::string tlsf_allocator::check() const {
  const auto& h = *header_;
  uint64_t free_pages = 0, used_pages = 0;
  uint32_t free_blocks = 0;
  bool previous_free = false, previous_hole = false;
  for (uint32_t page = 0; page < h.space_pages;) {
    uint32_t kind = head_[page] & kind_mask;
    uint32_t length = length_at(page);
    if (kind == 0 || length == 0)
      return text("page ", std::to_string(page), " starts no block (overlap or gap)");
    if (uint64_t{page} + length > h.space_pages)
      return text("block at page ", std::to_string(page), " of ", std::to_string(length),
                  " pages ends beyond the page space");
    bool is_free = kind == kind_free;
    bool marked = is_free || kind == kind_hole; // carries a tail mark
    for (uint32_t inner = page + 1; inner < page + length; ++inner) {
      uint32_t expected = marked && inner == page + length - 1 ? page + 1 : 0;
      if (head_[inner] != expected)
        return text("page ", std::to_string(inner), " inside the block at page ",
                    std::to_string(page), " carries ", std::to_string(head_[inner]),
                    " instead of ", std::to_string(expected), " (overlap or a lost end mark)");
    }
    if (is_free) {
      if (previous_free)
        return text("free block at page ", std::to_string(page),
                    " follows a free block (not coalesced)");
      free_pages += length;
      ++free_blocks;
    } else if (kind == kind_used) {
      used_pages += length;
    } else if (previous_hole) {
      return text("hole at page ", std::to_string(page), " follows a hole (not merged)");
    }
    previous_free = is_free;
    previous_hole = kind == kind_hole;
    page += length;
  }
  if (free_pages != h.free_pages)
    return text("free_pages is ", std::to_string(h.free_pages), ", blocks say ",
                std::to_string(free_pages));
  if (free_pages + used_pages != h.arena_pages)
    return text("used + free pages != arena pages");
  if (free_blocks != h.free_blocks)
    return text("free_blocks is ", std::to_string(h.free_blocks), ", blocks say ",
                std::to_string(free_blocks));
  uint32_t listed = 0;
  for (uint32_t fl = 0; fl < fl_count; ++fl) {
    bool fl_any = false;
    for (uint32_t sl = 0; sl < sl_count; ++sl) {
      uint32_t prev = no_page;
      for (auto p = h.free_head[fl][sl]; p != no_page; p = link(p).next) {
        if (p >= h.space_pages || ++listed > free_blocks || !free_at(p) || link(p).prev != prev)
          return text("free list (", std::to_string(fl), ", ", std::to_string(sl),
                      ") is inconsistent at page ", std::to_string(p));
        auto c = class_of(length_at(p));
        if (c.fl != fl || c.sl != sl)
          return text("free block at page ", std::to_string(p), " is on the wrong class list");
        prev = p;
      }
      bool non_empty = h.free_head[fl][sl] != no_page;
      bool bit = (h.sl_bitmap[fl][sl / 64] >> (sl % 64)) & 1;
      if (non_empty != bit)
        return text("bitmap bit of class (", std::to_string(fl), ", ", std::to_string(sl),
                    ") differs from its list");
      fl_any = fl_any || non_empty;
    }
    if (fl_any != (((h.fl_bitmap >> fl) & 1) != 0))
      return text("first-level bitmap bit ", std::to_string(fl), " differs from its lists");
  }
  if (listed != free_blocks)
    return text("free lists hold ", std::to_string(listed), " blocks, the arena ",
                std::to_string(free_blocks));
  return {};
}

} // namespace cafshm
