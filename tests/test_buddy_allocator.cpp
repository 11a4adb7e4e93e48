// Tests of the buddy allocator (plugin/src/buddy_allocator.cpp): unit tests of every operation,
// a randomized comparison against a reference model with check() after every step, and proof
// that check() detects corrupted state.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "buddy_allocator.hpp"

using cafshm::buddy_allocator;

namespace {

constexpr size_t align8(size_t n) {
  return (n + 7) & ~size_t{7};
}

/// 8-byte aligned state buffer for an allocator of the given orders.
struct state_buffer {
  std::vector<uint64_t> storage;
  size_t bytes;

  state_buffer(uint32_t min_order, uint32_t max_order)
    : storage((buddy_allocator::state_bytes(min_order, max_order) + 7) / 8, 0xdeadbeefdeadbeefull),
      bytes(buddy_allocator::state_bytes(min_order, max_order)) {
  }

  std::span<std::byte> span() {
    return {reinterpret_cast<std::byte*>(storage.data()), bytes};
  }

  /// The tag byte of `page` (layout documented in buddy_allocator.hpp).
  uint8_t& tag(uint32_t page) {
    return reinterpret_cast<uint8_t*>(storage.data())[align8(sizeof(buddy_allocator::buddy_header))
                                                      + page];
  }

  buddy_allocator::buddy_header& header() {
    return *reinterpret_cast<buddy_allocator::buddy_header*>(storage.data());
  }
};

constexpr uint64_t kib = 1024;

} // namespace

TEST_CASE("state_bytes covers header, one tag byte and one link per page") {
  auto header = align8(sizeof(buddy_allocator::buddy_header));
  CHECK(buddy_allocator::state_bytes(12, 12) == header + 8 + sizeof(buddy_allocator::page_link));
  CHECK(buddy_allocator::state_bytes(12, 20) == header + 256 + 256 * 8);
  CHECK(buddy_allocator::state_bytes(12, 26) == header + 16384 + 16384 * 8);
  CHECK(buddy_allocator::state_bytes(10, 12) == header + 8 + 4 * 8); // tags padded to 8
  for (uint32_t top = 0; top < 20; ++top)
    CHECK(buddy_allocator::state_bytes(12, 12 + top) % 8 == 0);
}

TEST_CASE("create formats an arena that is one free block") {
  state_buffer st{12, 20};
  auto a = buddy_allocator::create(st.span(), 12, 20);
  CHECK(a.min_order() == 12);
  CHECK(a.max_order() == 20);
  CHECK(a.arena_bytes() == (uint64_t{1} << 20));
  CHECK(a.free_bytes() == a.arena_bytes());
  CHECK(a.largest_free_block() == a.arena_bytes());
  auto by_order = a.free_bytes_by_order();
  REQUIRE(by_order.size() == 9);
  for (size_t k = 0; k + 1 < by_order.size(); ++k)
    CHECK(by_order[k] == 0);
  CHECK(by_order.back() == a.arena_bytes());
  CHECK_FALSE(a.allocated_order(0));
  CHECK(a.check() == "");
  // attach sees the same state
  auto b = buddy_allocator::attach(st.span());
  CHECK(b.min_order() == 12);
  CHECK(b.max_order() == 20);
  CHECK(b.free_bytes() == a.arena_bytes());
  CHECK(b.check() == "");
}

TEST_CASE("a one-page arena works") {
  state_buffer st{12, 12};
  auto a = buddy_allocator::create(st.span(), 12, 12);
  CHECK(a.check() == "");
  auto x = a.allocate(12);
  REQUIRE(x);
  CHECK(*x == 0);
  CHECK(a.free_bytes() == 0);
  CHECK(a.largest_free_block() == 0);
  CHECK_FALSE(a.allocate(12));
  CHECK(a.check() == "");
  CHECK(a.free(0));
  CHECK(a.free_bytes() == 4096);
  CHECK(a.check() == "");
}

TEST_CASE("order_for rounds up to a power of two, at least min_order") {
  state_buffer st{12, 20};
  auto a = buddy_allocator::create(st.span(), 12, 20);
  CHECK(a.order_for(0) == 12);
  CHECK(a.order_for(1) == 12);
  CHECK(a.order_for(4095) == 12);
  CHECK(a.order_for(4096) == 12);
  CHECK(a.order_for(4097) == 13);
  CHECK(a.order_for(8192) == 13);
  CHECK(a.order_for(8193) == 14);
  CHECK(a.order_for(uint64_t{1} << 20) == 20);
  CHECK(a.order_for((uint64_t{1} << 20) + 1) == 21); // may exceed max_order
  CHECK(a.order_for(uint64_t{1} << 40) == 40);
  CHECK(a.order_for((uint64_t{1} << 40) + 1) == 41);
  CHECK(a.order_for(~uint64_t{0}) == 64);
}

TEST_CASE("allocate splits the smallest block that fits, lower half first") {
  state_buffer st{12, 16}; // 64 KiB in 16 pages
  auto a = buddy_allocator::create(st.span(), 12, 16);
  auto x = a.allocate(12);
  REQUIRE(x);
  CHECK(*x == 0);
  CHECK(a.allocated_order(0) == 12u);
  CHECK(a.free_bytes() == 60 * kib);
  // the split left one free block of each smaller order: 4, 8, 16, 32 KiB
  auto by_order = a.free_bytes_by_order();
  REQUIRE(by_order.size() == 5);
  CHECK(by_order[0] == 4 * kib);
  CHECK(by_order[1] == 8 * kib);
  CHECK(by_order[2] == 16 * kib);
  CHECK(by_order[3] == 32 * kib);
  CHECK(by_order[4] == 0);
  CHECK(a.largest_free_block() == 32 * kib);
  CHECK(a.check() == "");
  // the next page-sized block is the buddy of the first
  auto y = a.allocate(12);
  REQUIRE(y);
  CHECK(*y == 4 * kib);
  // an 8 KiB block comes from the free 8 KiB block without splitting
  auto z = a.allocate(13);
  REQUIRE(z);
  CHECK(*z == 8 * kib);
  CHECK(a.allocated_order(8 * kib) == 13u);
  CHECK(a.free_bytes_by_order()[1] == 0);
  // a 4 KiB block now splits the 16 KiB block
  auto w = a.allocate(12);
  REQUIRE(w);
  CHECK(*w == 16 * kib);
  CHECK(a.free_bytes_by_order()[0] == 4 * kib);
  CHECK(a.free_bytes_by_order()[1] == 8 * kib);
  CHECK(a.free_bytes_by_order()[2] == 0);
  CHECK(a.free_bytes() == (64 - 4 - 4 - 8 - 4) * kib);
  CHECK(a.check() == "");
}

TEST_CASE("free coalesces buddies back into one block") {
  state_buffer st{12, 16};
  auto a = buddy_allocator::create(st.span(), 12, 16);
  std::vector<uint64_t> offsets;
  for (int i = 0; i < 16; ++i) {
    auto x = a.allocate(12);
    REQUIRE(x);
    offsets.push_back(*x);
  }
  CHECK(a.free_bytes() == 0);
  CHECK(a.largest_free_block() == 0);
  CHECK_FALSE(a.allocate(12));
  // free the even pages first: nothing can coalesce
  for (int i = 0; i < 16; i += 2) {
    CHECK(a.free(offsets[i]));
    CHECK(a.check() == "");
  }
  CHECK(a.free_bytes() == 32 * kib);
  CHECK(a.largest_free_block() == 4 * kib);
  CHECK(a.free_bytes_by_order()[0] == 32 * kib);
  CHECK_FALSE(a.allocate(13)); // half the arena is free, but no two adjacent pages
  // then the odd ones: everything coalesces up to the whole arena
  for (int i = 1; i < 16; i += 2) {
    CHECK(a.free(offsets[i]));
    CHECK(a.check() == "");
  }
  CHECK(a.free_bytes() == 64 * kib);
  CHECK(a.largest_free_block() == 64 * kib);
  auto by_order = a.free_bytes_by_order();
  CHECK(by_order == std::vector<uint64_t>{0, 0, 0, 0, 64 * kib});
  auto whole = a.allocate(16);
  REQUIRE(whole);
  CHECK(*whole == 0);
}

TEST_CASE("allocate fails when the arena is full or the order is out of range") {
  state_buffer st{12, 16};
  auto a = buddy_allocator::create(st.span(), 12, 16);
  CHECK_FALSE(a.allocate(17)); // larger than the arena
  CHECK_FALSE(a.allocate(11)); // smaller than a min block
  CHECK_FALSE(a.allocate(0));
  CHECK_FALSE(a.allocate(64));
  CHECK(a.free_bytes() == 64 * kib);
  auto x = a.allocate(15);
  REQUIRE(x);
  auto y = a.allocate(15);
  REQUIRE(y);
  CHECK(*x != *y);
  CHECK_FALSE(a.allocate(15));
  CHECK_FALSE(a.allocate(12));
  CHECK(a.free_bytes() == 0);
  CHECK(a.check() == "");
  CHECK(a.free(*y));
  CHECK_FALSE(a.allocate(16)); // half free is not enough for the whole arena
  CHECK(a.allocate(14));
  CHECK(a.check() == "");
}

TEST_CASE("free refuses offsets that are not the head of an allocated block") {
  state_buffer st{12, 16};
  auto a = buddy_allocator::create(st.span(), 12, 16);
  auto x = a.allocate(13); // pages 0-1
  REQUIRE(x);
  REQUIRE(*x == 0);
  auto before = a.free_bytes();
  CHECK_FALSE(a.free(4 * kib));      // inside the block
  CHECK_FALSE(a.free(1));            // not page-aligned
  CHECK_FALSE(a.free(100));          // not page-aligned
  CHECK_FALSE(a.free(8 * kib));      // head of a free block
  CHECK_FALSE(a.free(32 * kib));     // head of a free block
  CHECK_FALSE(a.free(64 * kib));     // past the arena
  CHECK_FALSE(a.free(~uint64_t{0})); // far past the arena
  CHECK_FALSE(a.allocated_order(4 * kib));
  CHECK_FALSE(a.allocated_order(8 * kib));
  CHECK_FALSE(a.allocated_order(64 * kib));
  CHECK(a.free_bytes() == before);
  CHECK(a.check() == "");
  CHECK(a.free(0));
  CHECK_FALSE(a.free(0)); // already free
  CHECK(a.free_bytes() == 64 * kib);
  CHECK(a.check() == "");
}

TEST_CASE("largest_free_block and free_bytes_by_order follow the free lists") {
  state_buffer st{12, 20}; // 1 MiB, 256 pages
  auto a = buddy_allocator::create(st.span(), 12, 20);
  auto half = a.allocate(19);
  REQUIRE(half);
  CHECK(a.largest_free_block() == 512 * kib);
  auto quarter = a.allocate(18);
  REQUIRE(quarter);
  CHECK(a.largest_free_block() == 256 * kib);
  auto by_order = a.free_bytes_by_order();
  CHECK(by_order == std::vector<uint64_t>{0, 0, 0, 0, 0, 0, 256 * kib, 0, 0});
  auto page = a.allocate(12);
  REQUIRE(page);
  CHECK(a.largest_free_block() == 128 * kib);
  uint64_t sum = 0;
  for (auto b : a.free_bytes_by_order())
    sum += b;
  CHECK(sum == a.free_bytes());
  CHECK(a.free_bytes() == 1024 * kib - 512 * kib - 256 * kib - 4 * kib);
  CHECK(a.free(*half));
  CHECK(a.largest_free_block() == 512 * kib);
  CHECK(a.free(*quarter));
  CHECK(a.free(*page));
  CHECK(a.largest_free_block() == 1024 * kib);
  CHECK(a.check() == "");
}

TEST_CASE("randomized allocate/free against a reference model, check() after every step") {
  constexpr uint32_t min_order = 12;
  constexpr uint32_t max_order = 22; // 4 MiB in 1024 pages
  constexpr uint32_t pages = 1u << (max_order - min_order);
  constexpr int steps = 120000;
  state_buffer st{min_order, max_order};
  auto a = buddy_allocator::create(st.span(), min_order, max_order);
  const uint64_t arena = a.arena_bytes();

  std::map<uint64_t, uint32_t> model; // offset -> order of allocated blocks
  std::vector<uint64_t> heads;        // the same offsets, for picking one at random
  std::vector<bool> used(pages, false);
  uint64_t allocated = 0;

  auto region_free = [&](uint32_t first, uint32_t count) {
    for (uint32_t p = first; p < first + count; ++p)
      if (used[p])
        return false;
    return true;
  };
  // Whether the model has a fully free, aligned region of `order`: then allocation must succeed.
  auto model_can_allocate = [&](uint32_t order) {
    if (order < min_order || order > max_order)
      return false;
    uint32_t count = 1u << (order - min_order);
    for (uint32_t p = 0; p < pages; p += count)
      if (region_free(p, count))
        return true;
    return false;
  };
  auto model_largest = [&]() -> uint64_t {
    for (uint32_t order = max_order + 1; order-- > min_order;)
      if (model_can_allocate(order))
        return uint64_t{1} << order;
    return 0;
  };

  std::mt19937 rng{20240611};
  std::geometric_distribution<uint32_t> extra_order{0.4};
  std::uniform_real_distribution<double> coin{0.0, 1.0};
  size_t successes = 0, failures = 0, frees = 0, bad_frees = 0;

  for (int step = 0; step < steps; ++step) {
    // phases that fill the arena and phases that drain it
    double p_alloc = (step / 5000) % 2 == 0 ? 0.7 : 0.3;
    double r = coin(rng);
    if (r < 0.02) {
      // free of something that is not an allocated head: must be refused, state unchanged
      uint64_t offset = std::uniform_int_distribution<uint64_t>{0, arena + 8192}(rng);
      if (coin(rng) < 0.5)
        offset &= ~uint64_t{4095};
      bool is_head = model.count(offset) != 0;
      auto before = a.free_bytes();
      bool freed = a.free(offset);
      REQUIRE(freed == is_head);
      if (freed) { // a real head by chance: keep the model in sync
        uint32_t order = model[offset];
        model.erase(offset);
        heads.erase(std::find(heads.begin(), heads.end(), offset));
        for (uint32_t p = offset >> min_order; p < (offset >> min_order) + (1u << (order - min_order)); ++p)
          used[p] = false;
        allocated -= uint64_t{1} << order;
        ++frees;
      } else {
        REQUIRE(a.free_bytes() == before);
        ++bad_frees;
      }
    } else if (r < 0.02 + p_alloc || heads.empty()) {
      uint32_t order = min_order + std::min<uint32_t>(extra_order(rng), max_order - min_order + 2);
      bool expected = model_can_allocate(order);
      auto x = a.allocate(order);
      REQUIRE_MESSAGE(x.has_value() == expected, "step " << step << " order " << order);
      if (x) {
        uint64_t offset = *x;
        uint32_t count = 1u << (order - min_order);
        REQUIRE(offset % (uint64_t{1} << order) == 0); // aligned to its size
        REQUIRE(offset + (uint64_t{1} << order) <= arena);
        REQUIRE(region_free(static_cast<uint32_t>(offset >> min_order), count)); // no overlap
        for (uint32_t p = offset >> min_order; p < (offset >> min_order) + count; ++p)
          used[p] = true;
        model[offset] = order;
        heads.push_back(offset);
        allocated += uint64_t{1} << order;
        ++successes;
      } else {
        ++failures;
      }
    } else {
      auto i = std::uniform_int_distribution<size_t>{0, heads.size() - 1}(rng);
      uint64_t offset = heads[i];
      uint32_t order = model[offset];
      REQUIRE(a.allocated_order(offset) == order);
      REQUIRE(a.free(offset));
      heads[i] = heads.back();
      heads.pop_back();
      model.erase(offset);
      for (uint32_t p = offset >> min_order; p < (offset >> min_order) + (1u << (order - min_order)); ++p)
        used[p] = false;
      allocated -= uint64_t{1} << order;
      ++frees;
    }
    auto problem = a.check();
    REQUIRE_MESSAGE(problem == "", "step " << step << ": " << problem);
    REQUIRE(a.free_bytes() == arena - allocated);
    if (step % 101 == 0) {
      REQUIRE(a.largest_free_block() == model_largest());
      uint64_t sum = 0;
      for (auto b : a.free_bytes_by_order())
        sum += b;
      REQUIRE(sum == a.free_bytes());
    }
  }
  MESSAGE("allocations " << successes << ", refused " << failures << ", frees " << frees
                         << ", refused frees " << bad_frees);
  CHECK(successes > 10000);
  CHECK(failures > 1000); // the arena was full often enough to exercise refusal
  CHECK(bad_frees > 1000);
  // give everything back: one free block again
  for (auto offset : heads)
    REQUIRE(a.free(offset));
  CHECK(a.check() == "");
  CHECK(a.free_bytes() == arena);
  CHECK(a.largest_free_block() == arena);
}

TEST_CASE("check() detects corrupted state") {
  state_buffer st{12, 16};
  auto a = buddy_allocator::create(st.span(), 12, 16);
  auto x = a.allocate(13); // pages 0-1 allocated; free blocks at pages 2 (8K), 4 (16K), 8 (32K)
  REQUIRE(x);
  REQUIRE(*x == 0);
  REQUIRE(a.check() == "");
  auto saved = st.storage;
  auto restore = [&] {
    st.storage = saved;
    REQUIRE(a.check() == "");
  };

  SUBCASE("a tag inside an allocated block (overlap)") {
    st.tag(1) = 0x80;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("the tag of a free block cleared (gap)") {
    st.tag(4) = 0;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("an allocated block turned free without list entry") {
    st.tag(0) ^= 0xc0; // 0x81 -> 0x41
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("a free block claims a larger order (misaligned / overlapping)") {
    st.tag(2) = 0x40 | 2;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("free_bytes off by one page") {
    st.header().free_bytes += 4096;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("free list count wrong") {
    ++st.header().free_count[1];
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("free list head lost") {
    st.header().free_head[3] = buddy_allocator::no_page;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("two free buddies left uncoalesced") {
    // free the allocated 8K block by hand without coalescing: pages 0 and 2 are free buddies
    CHECK(a.free(0));
    REQUIRE(a.check() == "");
    st.storage = saved;
    st.tag(0) = 0x40 | 1;
    // put page 0 on the order-1 list so that lists and tags agree; only coalescing is wrong
    auto& h = st.header();
    auto* links = reinterpret_cast<buddy_allocator::page_link*>(
      reinterpret_cast<uint8_t*>(st.storage.data()) + align8(sizeof(buddy_allocator::buddy_header))
      + align8(16));
    links[0] = {buddy_allocator::no_page, h.free_head[1]};
    links[h.free_head[1]].prev = 0;
    h.free_head[1] = 0;
    ++h.free_count[1];
    h.free_bytes += 8192;
    auto problem = a.check();
    CHECK(problem.find("coalesced") != std::string::npos);
    restore();
  }
}
