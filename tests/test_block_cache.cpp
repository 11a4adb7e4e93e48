// The engine's content cache index on its own: lookups by content and by remote source, LRU
// eviction by bytes, and taking an entry out for a hand-over.
#include <doctest/doctest.h>

#include "block_cache.hpp"

using namespace cafshm;

namespace {

block_ref block(uint32_t index, uint64_t size) {
  block_ref r;
  r.engine = 7;
  r.block = index;
  r.generation = 1;
  r.size = size;
  return r;
}

} // namespace

TEST_CASE("block cache: found by content and size, least recently used evicted past capacity") {
  block_cache c{300};
  CHECK(c.insert({block(1, 100), 11, std::nullopt, 0}).empty());
  CHECK(c.insert({block(2, 100), 22, std::nullopt, 0}).empty());
  CHECK(c.find(11, 100) != nullptr); // 1 is now the most recently used
  CHECK(c.find(11, 99) == nullptr);  // same hash, other size: not the content
  auto released = c.insert({block(3, 150), 33, std::nullopt, 0});
  REQUIRE(released.size() == 1);
  CHECK(released[0] == block(2, 100));
  CHECK(c.counters().evictions == 1);
  CHECK(c.bytes() == 250);
  CHECK(c.size() == 2);
  auto too_big = c.insert({block(4, 301), 44, std::nullopt, 0});
  REQUIRE(too_big.size() == 1); // refused: handed back at once, nothing evicted for it
  CHECK(too_big[0] == block(4, 301));
  CHECK(c.size() == 2);
}

TEST_CASE("block cache: take hands an entry's block over and forgets the entry") {
  block_cache c{1000};
  block_ref source = block(90, 100);
  source.engine = 8;
  CHECK(c.insert({block(1, 100), 11, source, 5}).empty());
  CHECK(c.insert({block(2, 200), 22, std::nullopt, 0}).empty());
  CHECK_FALSE(c.take(11, 200)); // no entry of that content and size
  auto taken = c.take(11, 100);
  REQUIRE(taken);
  CHECK(taken->local == block(1, 100));
  CHECK(taken->hash == 11);
  CHECK(taken->source == source);
  CHECK(c.size() == 1);
  CHECK(c.bytes() == 200);
  CHECK(c.find(11, 100) == nullptr);
  std::vector<block_ref> stale;
  CHECK(c.find_source(source, 5, stale) == nullptr); // gone from the source index too
  CHECK(stale.empty());
  CHECK_FALSE(c.take(11, 100));
  // Put back, it is found again by content and by source.
  CHECK(c.insert(std::move(*taken)).empty());
  CHECK(c.find(11, 100) != nullptr);
  CHECK(c.find_source(source, 5, stale) != nullptr);
  CHECK(c.bytes() == 300);
  auto all = c.clear();
  CHECK(all.size() == 2);
  CHECK(c.bytes() == 0);
}
