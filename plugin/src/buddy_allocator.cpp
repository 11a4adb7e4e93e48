#include "buddy_allocator.hpp"

#include <bit>
#include <cstring>

namespace cafshm {

namespace {

constexpr uint8_t tag_free = 0x40;
constexpr uint8_t tag_used = 0x80;
constexpr uint8_t tag_order_mask = 0x3f;

size_t align8(size_t n) {
  return (n + 7) & ~size_t{7};
}

struct state_parts {
  buddy_allocator::buddy_header* header;
  uint8_t* tags;
  buddy_allocator::page_link* links;
};

state_parts split(std::span<std::byte> state, uint32_t min_order, uint32_t max_order) {
  auto* base = reinterpret_cast<uint8_t*>(state.data());
  size_t pages = size_t{1} << (max_order - min_order);
  auto* tags = base + align8(sizeof(buddy_allocator::buddy_header));
  auto* links = reinterpret_cast<buddy_allocator::page_link*>(tags + align8(pages));
  return {reinterpret_cast<buddy_allocator::buddy_header*>(base), tags, links};
}

} // namespace

size_t buddy_allocator::state_bytes(uint32_t min_order, uint32_t max_order) {
  size_t pages = size_t{1} << (max_order - min_order);
  return align8(sizeof(buddy_header)) + align8(pages) + pages * sizeof(page_link);
}

buddy_allocator buddy_allocator::create(std::span<std::byte> state, uint32_t min_order,
                                        uint32_t max_order) {
  auto parts = split(state, min_order, max_order);
  buddy_allocator result{parts.header, parts.tags, parts.links};
  auto* h = parts.header;
  h->min_order = min_order;
  h->max_order = max_order;
  h->free_bytes = 0;
  for (uint32_t k = 0; k < max_orders; ++k) {
    h->free_head[k] = no_page;
    h->free_count[k] = 0;
  }
  std::memset(parts.tags, 0, result.pages());
  result.push(max_order - min_order, 0);
  h->free_bytes = result.arena_bytes();
  return result;
}

buddy_allocator buddy_allocator::attach(std::span<std::byte> state) {
  auto* h = reinterpret_cast<buddy_header*>(state.data());
  auto parts = split(state, h->min_order, h->max_order);
  return {parts.header, parts.tags, parts.links};
}

uint32_t buddy_allocator::order_for(uint64_t size) const noexcept {
  uint32_t order = size <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(size - 1));
  return order < header_->min_order ? header_->min_order : order;
}

void buddy_allocator::push(uint32_t k, uint32_t page) noexcept {
  auto head = header_->free_head[k];
  links_[page] = {no_page, head};
  if (head != no_page)
    links_[head].prev = page;
  header_->free_head[k] = page;
  ++header_->free_count[k];
  tags_[page] = static_cast<uint8_t>(tag_free | k);
}

void buddy_allocator::unlink(uint32_t k, uint32_t page) noexcept {
  auto [prev, next] = links_[page];
  if (prev != no_page)
    links_[prev].next = next;
  else
    header_->free_head[k] = next;
  if (next != no_page)
    links_[next].prev = prev;
  --header_->free_count[k];
  tags_[page] = 0;
}

std::optional<uint64_t> buddy_allocator::allocate(uint32_t order) noexcept {
  if (order < header_->min_order || order > header_->max_order)
    return std::nullopt;
  uint32_t want = order - header_->min_order;
  uint32_t top = header_->max_order - header_->min_order;
  uint32_t k = want;
  while (k <= top && header_->free_head[k] == no_page)
    ++k;
  if (k > top)
    return std::nullopt;
  uint32_t page = header_->free_head[k];
  unlink(k, page);
  while (k > want) { // split: keep the lower half, free the upper half
    --k;
    push(k, page + (1u << k));
  }
  tags_[page] = static_cast<uint8_t>(tag_used | want);
  header_->free_bytes -= uint64_t{1} << order;
  return uint64_t{page} << header_->min_order;
}

std::optional<uint32_t> buddy_allocator::allocated_order(uint64_t offset) const noexcept {
  if (offset & ((uint64_t{1} << header_->min_order) - 1))
    return std::nullopt;
  uint64_t page = offset >> header_->min_order;
  if (page >= pages() || !(tags_[page] & tag_used))
    return std::nullopt;
  return header_->min_order + (tags_[page] & tag_order_mask);
}

bool buddy_allocator::free(uint64_t offset) noexcept {
  auto order = allocated_order(offset);
  if (!order)
    return false;
  auto page = static_cast<uint32_t>(offset >> header_->min_order);
  uint32_t k = *order - header_->min_order;
  uint32_t top = header_->max_order - header_->min_order;
  tags_[page] = 0;
  header_->free_bytes += uint64_t{1} << *order;
  while (k < top) { // coalesce while the buddy is a free block of the same order
    uint32_t buddy = page ^ (1u << k);
    if (tags_[buddy] != (tag_free | k))
      break;
    unlink(k, buddy);
    page &= ~(1u << k);
    ++k;
  }
  push(k, page);
  return true;
}

uint64_t buddy_allocator::largest_free_block() const noexcept {
  for (uint32_t k = header_->max_order - header_->min_order + 1; k-- > 0;)
    if (header_->free_head[k] != no_page)
      return uint64_t{1} << (k + header_->min_order);
  return 0;
}

std::vector<uint64_t> buddy_allocator::free_bytes_by_order() const {
  std::vector<uint64_t> result(header_->max_order - header_->min_order + 1);
  for (uint32_t k = 0; k < result.size(); ++k)
    result[k] = uint64_t{header_->free_count[k]} << (k + header_->min_order);
  return result;
}

std::string buddy_allocator::check() const {
  auto fail = [](auto&&... xs) {
    std::string s;
    ((s += xs), ...);
    return s;
  };
  uint32_t top = header_->max_order - header_->min_order;
  uint64_t free_pages = 0;
  uint64_t used_pages = 0;
  std::vector<uint32_t> counted(top + 1, 0);
  for (uint32_t page = 0; page < pages();) {
    uint8_t tag = tags_[page];
    if (!(tag & (tag_free | tag_used)))
      return fail("page ", std::to_string(page), " starts no block (overlap or gap)");
    uint32_t k = tag & tag_order_mask;
    if (k > top || (page & ((1u << k) - 1)) != 0)
      return fail("block at page ", std::to_string(page), " misaligned for order ",
                  std::to_string(k + header_->min_order));
    for (uint32_t inner = page + 1; inner < page + (1u << k); ++inner)
      if (tags_[inner] != 0)
        return fail("page ", std::to_string(inner), " inside a block carries a tag (overlap)");
    if (tag & tag_free) {
      free_pages += 1u << k;
      ++counted[k];
      uint32_t buddy = page ^ (1u << k);
      if (k < top && tags_[buddy] == (tag_free | k))
        return fail("free buddies at pages ", std::to_string(page), " and ",
                    std::to_string(buddy), " are not coalesced");
    } else {
      used_pages += 1u << k;
    }
    page += 1u << k;
  }
  if (free_pages + used_pages != pages())
    return fail("used + free != arena");
  if ((free_pages << header_->min_order) != header_->free_bytes)
    return fail("free_bytes is ", std::to_string(header_->free_bytes), ", blocks say ",
                std::to_string(free_pages << header_->min_order));
  for (uint32_t k = 0; k <= top; ++k) {
    uint32_t n = 0;
    uint32_t prev = no_page;
    for (uint32_t p = header_->free_head[k]; p != no_page; p = links_[p].next) {
      if (++n > counted[k] || tags_[p] != (tag_free | k) || links_[p].prev != prev)
        return fail("free list of order ", std::to_string(k + header_->min_order),
                    " is inconsistent at page ", std::to_string(p));
      prev = p;
    }
    if (n != counted[k] || n != header_->free_count[k])
      return fail("free list of order ", std::to_string(k + header_->min_order), " holds ",
                  std::to_string(n), " blocks, tags say ", std::to_string(counted[k]));
  }
  return {};
}

} // namespace cafshm
