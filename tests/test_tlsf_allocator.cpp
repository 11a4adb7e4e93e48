// Tests of the two-level segregated-fit allocator (plugin/src/tlsf_allocator.cpp): blocks of
// whole pages with no rounding to powers of two, merging with free neighbours, placement, holes
// in the page space, a randomized comparison against a page-by-page model with check() after
// every step, and proof that check() detects corrupted state.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <vector>

#include "tlsf_allocator.hpp"

using cafshm::tlsf_allocator;

namespace {

constexpr uint64_t kib = 1024;
constexpr uint64_t mib = 1024 * kib;
constexpr uint32_t page_shift = 12; // 4 KiB pages

constexpr size_t align8(size_t n) {
  return (n + 7) & ~size_t{7};
}

/// 8-byte aligned state for a page space of `space` pages, filled with garbage first.
struct state_buffer {
  std::vector<uint64_t> storage;
  uint32_t space;

  explicit state_buffer(uint32_t space_pages)
    : storage(tlsf_allocator::state_bytes(space_pages) / 8 + 1, 0xdeadbeefdeadbeefull),
      space(space_pages) {
  }
  std::span<std::byte> span() {
    return {reinterpret_cast<std::byte*>(storage.data()), storage.size() * 8};
  }
  tlsf_allocator::tlsf_header& header() {
    return *reinterpret_cast<tlsf_allocator::tlsf_header*>(storage.data());
  }
  /// The head word of `page` (layout documented in tlsf_allocator.hpp).
  uint32_t& head(uint32_t page) {
    return reinterpret_cast<uint32_t*>(reinterpret_cast<std::byte*>(storage.data())
                                       + align8(sizeof(tlsf_allocator::tlsf_header)))[page];
  }
};

} // namespace

TEST_CASE("state takes 8 bytes per page plus a fixed header") {
  auto fixed = align8(sizeof(tlsf_allocator::tlsf_header));
  CHECK(tlsf_allocator::state_bytes(1) == fixed + 8 + 8);
  CHECK(tlsf_allocator::state_bytes(256) == fixed + 256 * 8);
  CHECK(tlsf_allocator::state_bytes(16384) == fixed + 16384 * 8);
  CHECK(tlsf_allocator::state_bytes(3) % 8 == 0);
  CHECK(fixed < 32 * kib);
}

TEST_CASE("a new allocator has the whole arena free in one block") {
  state_buffer st{256};
  auto a = tlsf_allocator::create(st.span(), page_shift, 256, 256);
  CHECK(a.check() == "");
  CHECK(a.page_bytes() == 4 * kib);
  CHECK(a.arena_bytes() == 1 * mib);
  CHECK(a.free_bytes() == 1 * mib);
  CHECK(a.free_blocks() == 1);
  CHECK(a.largest_free_block() == 1 * mib);
  auto by_order = a.free_bytes_by_order();
  REQUIRE(by_order.size() == 9);
  CHECK(by_order.back() == 1 * mib);
  CHECK_FALSE(a.allocated_bytes(0));
  auto b = tlsf_allocator::attach(st.span());
  CHECK(b.arena_bytes() == 1 * mib);
  CHECK(b.check() == "");
}

TEST_CASE("a block occupies its size rounded up to whole pages, not to a power of two") {
  state_buffer st{4096}; // 16 MiB
  auto a = tlsf_allocator::create(st.span(), page_shift, 4096, 4096);
  CHECK(a.occupied_bytes(1) == 4 * kib);
  CHECK(a.occupied_bytes(4 * kib) == 4 * kib);
  CHECK(a.occupied_bytes(4 * kib + 1) == 8 * kib);
  CHECK(a.occupied_bytes(10'000'000) == 10'002'432); // 2442 pages, not 16 MiB
  CHECK(a.occupied_bytes(0) == 4 * kib);
  auto x = a.allocate(5 * 4 * kib - 100); // 5 pages
  auto y = a.allocate(6 * mib);           // a 6 MiB frame takes 6 MiB
  auto z = a.allocate(1);
  REQUIRE(x);
  REQUIRE(y);
  REQUIRE(z);
  CHECK(*x == 0);
  CHECK(*y == 5 * 4 * kib); // right behind x: no power-of-two alignment
  CHECK(*z == 5 * 4 * kib + 6 * mib);
  CHECK(a.allocated_bytes(*x) == 20 * kib);
  CHECK(a.allocated_bytes(*y) == 6 * mib);
  CHECK(a.allocated_bytes(*z) == 4 * kib);
  CHECK_FALSE(a.allocated_bytes(4 * kib)); // inside x
  CHECK(a.free_bytes() == 16 * mib - 20 * kib - 6 * mib - 4 * kib);
  CHECK(a.check() == "");
  // three 16 MiB + 1 B requests would each have taken 32 MiB; here the rest of the arena fits
  // one block of exactly the free bytes
  auto rest = a.allocate(a.free_bytes());
  REQUIRE(rest);
  CHECK(a.free_bytes() == 0);
  CHECK_FALSE(a.allocate(1));
  CHECK(a.check() == "");
}

TEST_CASE("freeing merges with free neighbours on both sides, back to the full arena") {
  state_buffer st{64};
  auto a = tlsf_allocator::create(st.span(), page_shift, 64, 64);
  std::vector<uint64_t> blocks;
  for (uint64_t pages : {3, 7, 1, 12, 5})
    blocks.push_back(*a.allocate(pages * 4 * kib));
  CHECK(a.free_blocks() == 1); // the tail
  REQUIRE(a.free(blocks[1]));
  REQUIRE(a.free(blocks[3]));
  CHECK(a.free_blocks() == 3); // two holes and the tail, not adjacent
  CHECK(a.check() == "");
  REQUIRE(a.free(blocks[2])); // joins the holes on its left and right into 20 pages
  CHECK(a.free_blocks() == 2);
  CHECK(a.largest_free_block() == 36 * 4 * kib); // the tail: 64 - 28 pages
  REQUIRE(a.free(blocks[4])); // joins the 20 pages and the tail
  CHECK(a.free_blocks() == 1);
  CHECK(a.largest_free_block() == 61 * 4 * kib);
  CHECK_FALSE(a.free(blocks[4])); // twice
  CHECK_FALSE(a.free(blocks[0] + 4 * kib)); // inside a block
  CHECK_FALSE(a.free(1));                   // not page aligned
  CHECK_FALSE(a.free(64 * 4 * kib));        // beyond the arena
  REQUIRE(a.free(blocks[0]));
  CHECK(a.free_blocks() == 1);
  CHECK(a.free_bytes() == a.arena_bytes());
  CHECK(a.largest_free_block() == a.arena_bytes());
  CHECK(a.check() == "");
}

TEST_CASE("placement: the best-fitting class, then the lowest address") {
  state_buffer st{256};
  auto a = tlsf_allocator::create(st.span(), page_shift, 256, 256);
  // free holes of 4, 2, 4 pages at increasing addresses, separated by live blocks
  std::vector<uint64_t> b;
  for (uint64_t pages : {1, 4, 1, 2, 1, 4, 1})
    b.push_back(*a.allocate(pages * 4 * kib));
  a.free(b[5]);
  a.free(b[3]);
  a.free(b[1]);
  // 2 pages: the exact 2-page hole, not the first 4-page one
  CHECK(a.allocate(8 * kib) == b[3]);
  // 3 pages: no 3-page block; of the 4-page holes the lower one
  CHECK(a.allocate(12 * kib) == b[1]);
  CHECK(a.allocate(12 * kib) == b[5]);
  CHECK(a.check() == "");
}

TEST_CASE("pages beyond the arena are a hole that is never handed out nor merged") {
  state_buffer st{100};
  auto a = tlsf_allocator::create(st.span(), page_shift, 100, 40);
  CHECK(a.check() == "");
  CHECK(a.arena_bytes() == 40 * 4 * kib);
  CHECK(a.free_bytes() == 40 * 4 * kib);
  CHECK_FALSE(a.allocate(41 * 4 * kib));
  auto x = a.allocate(40 * 4 * kib);
  REQUIRE(x);
  CHECK_FALSE(a.allocate(1));
  CHECK_FALSE(a.free(40 * 4 * kib)); // the hole's first page
  REQUIRE(a.free(*x));
  CHECK(a.largest_free_block() == 40 * 4 * kib);
  CHECK(a.check() == "");
}

TEST_CASE("randomized against a page model: exact fit, accounting and check() after each step") {
  constexpr uint32_t arena_pages = 300; // not a power of two
  constexpr uint32_t space_pages = 320; // with a hole at the end
  state_buffer st{space_pages};
  auto a = tlsf_allocator::create(st.span(), page_shift, space_pages, arena_pages);
  std::vector<bool> used(arena_pages, false);
  std::map<uint64_t, uint32_t> live; // offset -> pages
  std::mt19937_64 rng{20240611};
  // sizes: mostly small, sometimes large, any byte count (so every rounding case shows up)
  std::geometric_distribution<uint32_t> small_pages{0.25};
  std::uniform_int_distribution<uint32_t> any_pages{1, arena_pages + 2};
  std::uniform_int_distribution<uint32_t> in_page{0, 4095};
  auto longest_free_run = [&] {
    uint32_t best = 0, run = 0;
    for (bool u : used) {
      run = u ? 0 : run + 1;
      best = std::max(best, run);
    }
    return best;
  };
  uint64_t free_pages = arena_pages;
  for (int step = 0; step < 100'000; ++step) {
    bool allocate = live.empty() || rng() % 100 < (free_pages > arena_pages / 3 ? 60 : 40);
    if (allocate) {
      uint32_t pages = rng() % 8 == 0 ? any_pages(rng) : 1 + small_pages(rng);
      uint64_t size = uint64_t{pages - 1} * 4096 + 1 + in_page(rng); // needs exactly `pages`
      bool fits = longest_free_run() >= pages;
      auto x = a.allocate(size);
      REQUIRE_MESSAGE(x.has_value() == fits, "step " << step << ", " << pages << " pages");
      if (x) {
        REQUIRE(*x % 4096 == 0);
        uint64_t first = *x / 4096;
        REQUIRE(first + pages <= arena_pages);
        for (uint64_t p = first; p < first + pages; ++p) {
          REQUIRE_FALSE(used[p]); // no overlap
          used[p] = true;
        }
        REQUIRE(a.allocated_bytes(*x) == uint64_t{pages} * 4096);
        live[*x] = pages;
        free_pages -= pages;
      }
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      REQUIRE(a.free(it->first));
      for (uint64_t p = it->first / 4096; p < it->first / 4096 + it->second; ++p)
        used[p] = false;
      free_pages += it->second;
      live.erase(it);
    }
    REQUIRE(a.free_bytes() == free_pages * 4096);
    REQUIRE(a.largest_free_block() == uint64_t{longest_free_run()} * 4096);
    auto problem = a.check();
    REQUIRE_MESSAGE(problem == "", "step " << step << ": " << problem);
  }
  uint64_t by_order = 0;
  for (auto b : a.free_bytes_by_order())
    by_order += b;
  CHECK(by_order == a.free_bytes());
  for (auto [offset, pages] : live)
    REQUIRE(a.free(offset));
  CHECK(a.free_blocks() == 1); // everything merged back
  CHECK(a.free_bytes() == a.arena_bytes());
  CHECK(a.largest_free_block() == a.arena_bytes());
  CHECK(a.check() == "");
}

TEST_CASE("large classes: a fitting block deep in the request's own class is found") {
  // 600 and 601 pages share one class (from 512 pages on a class spans 2 pages); the fitting
  // 601-page block sits behind more than class_scan 600-page ones.
  constexpr uint32_t n = tlsf_allocator::class_scan + 4;
  constexpr uint32_t space = n * 602 + 2 * n;
  state_buffer st{space};
  auto a = tlsf_allocator::create(st.span(), page_shift, space, space);
  std::vector<uint64_t> holes, fences;
  for (uint32_t i = 0; i < n; ++i) {
    // the first hole (freed first, so last on its list) has 601 pages, the others 600
    holes.push_back(*a.allocate((i == 0 ? 601 : 600) * 4096ull));
    fences.push_back(*a.allocate(4096));
  }
  auto rest = a.allocate(a.free_bytes());
  REQUIRE(rest);
  for (auto h : holes)
    REQUIRE(a.free(h));
  REQUIRE(a.check() == "");
  CHECK(a.largest_free_block() == 601 * 4096);
  CHECK(a.allocate(601 * 4096) == holes[0]);
  CHECK_FALSE(a.allocate(601 * 4096));
  CHECK(a.check() == "");
}

TEST_CASE("check() detects corrupted state") {
  state_buffer st{64};
  auto a = tlsf_allocator::create(st.span(), page_shift, 64, 64);
  auto x = a.allocate(3 * 4096); // pages 0-2
  auto y = a.allocate(2 * 4096); // pages 3-4
  REQUIRE(x);
  REQUIRE(y);
  REQUIRE(a.free(*x)); // free 0-2, used 3-4, free 5-63
  REQUIRE(a.check() == "");
  auto saved = st.storage;
  auto restore = [&] {
    st.storage = saved;
    REQUIRE(a.check() == "");
  };
  SUBCASE("a block start inside another block (overlap)") {
    st.head(1) = tlsf_allocator::kind_used | 1;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("a block start cleared (gap)") {
    st.head(3) = 0;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("an allocated block claims more pages") {
    st.head(3) = tlsf_allocator::kind_used | 3;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("a free block's end mark lost") {
    st.head(2) = 0;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("an allocated block turned free without a list entry") {
    st.head(3) = tlsf_allocator::kind_free | 2;
    st.head(4) = 4;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("free pages off by one") {
    ++st.header().free_pages;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("a class bitmap bit cleared") {
    st.header().sl_bitmap[0][3 / 64] &= ~(uint64_t{1} << 3);
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("a free list head lost") {
    st.header().free_head[0][3] = tlsf_allocator::no_page;
    CHECK(a.check() != "");
    restore();
  }
  SUBCASE("two adjacent free blocks") {
    REQUIRE(a.free(*y)); // merges into one block of 64 pages
    REQUIRE(a.check() == "");
    st.storage = saved;
    // mark 3-4 free by hand without merging, on its class list, with counters that agree
    auto& h = st.header();
    REQUIRE(h.free_head[0][2] == tlsf_allocator::no_page);
    st.head(3) = tlsf_allocator::kind_free | 2;
    st.head(4) = 4;
    auto* links = reinterpret_cast<tlsf_allocator::free_link*>(
      &st.head(0) + align8(64 * sizeof(uint32_t)) / sizeof(uint32_t));
    links[3 / 2] = {tlsf_allocator::no_page, tlsf_allocator::no_page};
    h.free_head[0][2] = 3;
    h.sl_bitmap[0][0] |= uint64_t{1} << 2;
    h.free_pages += 2;
    ++h.free_blocks;
    auto problem = a.check();
    CHECK(problem.find("coalesced") != std::string::npos);
    restore();
  }
}

TEST_CASE("ranges added in a hole: never merged with each other, taken out again when free") {
  state_buffer st{100};
  auto a = tlsf_allocator::create(st.span(), page_shift, 100, 40); // hole [40, 100)
  // a range needs a hole page before it, and one after it unless it ends the page space
  CHECK_FALSE(a.add_range(40, 10)); // no hole page between it and [0, 40)
  CHECK_FALSE(a.add_range(42, 10)); // the hole does not start at page 41
  CHECK_FALSE(a.add_range(41, 60)); // beyond the page space
  CHECK(a.check() == "");
  REQUIRE(a.add_range(41, 20)); // [41, 61), holes [40, 41) and [61, 100)
  CHECK(a.check() == "");
  CHECK(a.arena_bytes() == 60 * 4 * kib);
  CHECK(a.free_bytes() == 60 * 4 * kib);
  CHECK(a.tiles_range(0, 40));
  CHECK(a.tiles_range(41, 20));
  CHECK_FALSE(a.tiles_range(40, 21)); // starts in a hole
  CHECK(a.range_free(41, 20));
  REQUIRE(a.add_range(62, 38)); // up to the end of the page space: no hole page after it
  CHECK(a.check() == "");
  CHECK(a.tiles_range(62, 38));
  // blocks of the three ranges never merge: the largest free block is the largest range
  CHECK(a.largest_free_block() == 40 * 4 * kib);
  CHECK_FALSE(a.allocate(41 * 4 * kib));
  auto low = a.allocate(40 * 4 * kib); // [0, 40)
  auto mid = a.allocate(20 * 4 * kib); // [41, 61)
  REQUIRE(low);
  REQUIRE(mid);
  CHECK(*low == 0);
  CHECK(*mid == 41 * 4 * kib);
  CHECK_FALSE(a.range_free(41, 20));
  CHECK_FALSE(a.remove_range(41, 20)); // not free
  REQUIRE(a.free(*mid));
  REQUIRE(a.free(*low));
  CHECK(a.check() == "");
  CHECK(a.free_blocks() == 3);
  CHECK_FALSE(a.remove_range(0, 40)); // the first range has no hole before it
  CHECK_FALSE(a.remove_range(41, 19)); // not the whole free block
  REQUIRE(a.remove_range(41, 20)); // holes [40, 41), [41, 61), [61, 62) merge into [40, 62)
  CHECK(a.check() == "");
  CHECK(a.arena_bytes() == 78 * 4 * kib);
  REQUIRE(a.remove_range(62, 38)); // and the last one: [40, 100) is one hole again
  CHECK(a.check() == "");
  CHECK(a.arena_bytes() == 40 * 4 * kib);
  CHECK(a.free_bytes() == 40 * 4 * kib);
  CHECK(st.head(40) == (tlsf_allocator::kind_hole | 60));
  // and the whole hole is usable again
  REQUIRE(a.add_range(41, 59));
  CHECK(a.check() == "");
  CHECK(a.allocate(59 * 4 * kib) == 41 * 4 * kib);
  CHECK(a.check() == "");
}

TEST_CASE("a range slides down to the hole's start with its blocks, free ones still on their lists") {
  state_buffer st{200};
  auto a = tlsf_allocator::create(st.span(), page_shift, 200, 40); // hole [40, 200)
  REQUIRE(a.add_range(41, 30));  // [41, 71)
  REQUIRE(a.add_range(72, 50));  // [72, 122), the hole [122, 200) after it
  REQUIRE(a.add_range(123, 77)); // [123, 200): ends the page space
  auto page = [](uint64_t offset) { return static_cast<uint32_t>(offset >> page_shift); };
  // blocks in the ranges that will move: used and free ones, of one page and of several
  REQUIRE(a.allocate(40 * 4 * kib));                   // [0, 40)
  REQUIRE(a.allocate(30 * 4 * kib));                   // [41, 71)
  auto m1 = a.allocate(1 * 4 * kib);                   // [72, 73)
  auto m2 = a.allocate(10 * 4 * kib);                  // [73, 83)
  auto m3 = a.allocate(5 * 4 * kib);                   // [83, 88)
  REQUIRE(m1);
  REQUIRE(m2);
  REQUIRE(m3);
  REQUIRE(a.free(*m2)); // free [73, 83) between used blocks, free tail [88, 122)
  auto e1 = a.allocate(77 * 4 * kib); // the last range, full
  REQUIRE(e1);
  REQUIRE(a.free(*e1));
  CHECK(a.slide_range_down(41, 30) == 41);   // already one page after the hole's start
  CHECK(a.slide_range_down(0, 40) == tlsf_allocator::no_page); // page 0 never moves
  CHECK(a.slide_range_down(42, 29) == tlsf_allocator::no_page); // not a range
  // The first added range empties and goes: [72, 122) has a hole of 32 pages before it.
  REQUIRE(a.free(41 * 4 * kib));
  REQUIRE(a.remove_range(41, 30)); // hole [40, 72)
  CHECK(a.check() == "");
  auto before_free = a.free_bytes();
  auto before_arena = a.arena_bytes();
  auto before_blocks = a.free_blocks();
  REQUIRE(a.slide_range_down(72, 50) == 41); // [41, 91), hole [91, 123)
  CHECK(a.check() == "");
  CHECK(a.free_bytes() == before_free);
  CHECK(a.arena_bytes() == before_arena);
  CHECK(a.free_blocks() == before_blocks);
  CHECK(a.tiles_range(41, 50));
  CHECK(a.allocated_bytes(uint64_t{page(*m1) - 31} << page_shift) == 4 * kib);
  CHECK(a.allocated_bytes(uint64_t{page(*m3) - 31} << page_shift) == 5 * 4 * kib);
  CHECK(st.head(page(*m2) - 31) == (tlsf_allocator::kind_free | 10));
  // the moved free blocks are found by allocation, and frees merge as before
  REQUIRE(a.free(uint64_t{page(*m1) - 31} << page_shift)); // [41, 52) free
  CHECK(st.head(41) == (tlsf_allocator::kind_free | 11));
  CHECK(a.allocate(11 * 4 * kib) == 41 * 4 * kib);
  CHECK(a.allocate(34 * 4 * kib) == 57 * 4 * kib); // the old free tail [88, 122), now [57, 91)
  CHECK(a.check() == "");
  // the last range slides too: it ends the page space, a hole takes the end instead
  REQUIRE(a.slide_range_down(123, 77) == 92);
  CHECK(a.check() == "");
  CHECK(a.tiles_range(92, 77));
  CHECK(st.head(169) == (tlsf_allocator::kind_hole | 31));
  CHECK(a.range_free(92, 77));
  REQUIRE(a.remove_range(92, 77)); // and can still be taken out: [91, 200) one hole
  CHECK(a.check() == "");
  CHECK(st.head(91) == (tlsf_allocator::kind_hole | 109));
}
