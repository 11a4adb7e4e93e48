// Tests of an arena that grows (memory_manager with engine.max_arena above engine.arena): data
// segments added when no free block fits and removed again when empty, blocks and views in every
// segment, out_of_memory at the ceiling with its numbers, crash reclaim and scrubbing in added
// segments, engine stop, and a randomised model test over several segments with check() after
// every operation.

#include "test_names.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "admin_layout.hpp"
#include "memory_manager.hpp"

using namespace cafshm;
using cafshm_test::segment_guard;
using cafshm_test::unique_name;
using cafshm_test::why;

namespace {

constexpr uint64_t kib = 1024;
constexpr uint64_t mib = kib * 1024;

/// One memory manager whose arena starts at 1 MiB and may grow to `max_arena`.
struct env {
  segment_guard guard;
  engine_settings settings;
  std::unique_ptr<memory_manager> mm;
  std::vector<std::string> log;

  explicit env(uint64_t max_arena, scrub_policy scrub = scrub_policy::on_free)
    : guard(unique_name("grow")) {
    settings.name = guard.name;
    settings.arena_bytes = 1 * mib;
    settings.max_arena_bytes = max_arena;
    settings.min_block_bytes = 4 * kib;
    settings.scrub = scrub;
    auto created = memory_manager::create(settings);
    REQUIRE_MESSAGE(static_cast<bool>(created), why(created));
    mm = std::move(*created);
    mm->set_log([this](const std::string& line) { log.push_back(line); });
  }
  ~env() {
    if (mm && std::uncaught_exceptions() == 0)
      CHECK(mm->check() == "");
  }
  memory_manager* operator->() const { return mm.get(); }

  session reg(const std::string& name) {
    auto r = mm->register_process(name, ::getpid(), 0);
    REQUIRE_MESSAGE(static_cast<bool>(r), why(r));
    return r->session;
  }
  block_ref alloc(const session& s, uint64_t size) {
    auto r = mm->allocate(s, size);
    REQUIRE_MESSAGE(static_cast<bool>(r), why(r));
    return *r;
  }
  /// The data segment a block lies in, by the lease the engine hands out for it.
  std::string segment_of(const session& s, const block_ref& ref) {
    auto lease = mm->map(s, ref, access_mode::read);
    REQUIRE_MESSAGE(static_cast<bool>(lease), why(lease));
    REQUIRE_OK(mm->unmap(s, ref));
    return lease->data_segment;
  }
};

std::span<const char> bytes_of(const std::string& text) {
  return {text.data(), text.size()};
}

bool segment_exists(const env& e, uint32_t index) {
  return shm_segment::exists(memory_manager::added_segment_name(e.settings.name, index));
}

} // namespace

TEST_CASE("the arena grows by a data segment when no free block fits, and blocks work there") {
  env e{8 * mib};
  auto p = e.reg("p");
  auto first = e.alloc(p, 1 * mib); // the whole initial arena
  CHECK(e->live_segments() == 1);
  auto second = e.alloc(p, 100 * kib); // no free block fits: segment 1 is added
  CHECK(e->live_segments() == 2);
  CHECK(e.segment_of(p, first) == e.guard.data());
  auto added = memory_manager::added_segment_name(e.settings.name, 1);
  CHECK(e.segment_of(p, second) == added);
  CHECK(shm_segment::exists(added));
  auto st = e->stats();
  CHECK(st.arena_bytes == 2 * mib); // an added segment has at least the initial size
  CHECK(st.initial_arena_bytes == 1 * mib);
  CHECK(st.max_arena_bytes == 8 * mib);
  REQUIRE(st.data_segments.size() == 2);
  CHECK(st.data_segments[1] == added);
  CHECK(st.segment_bytes[1] == 1 * mib);
  CHECK(st.segments_added == 1);
  CHECK(st.used_bytes == 1 * mib + 100 * kib);
  CHECK(st.free_bytes == 1 * mib - 100 * kib);
  // the engine logs the growth
  REQUIRE_FALSE(e.log.empty());
  CHECK(e.log.back().find("added data segment '" + added + "'") != std::string::npos);
  // a block in the added segment: written by the engine, read through a mapping of the lease
  const std::string text = "bytes in the second segment";
  CHECK_OK(e->write(p, second, 50 * kib, bytes_of(text)));
  auto lease = e->map(p, second, access_mode::read_write);
  REQUIRE_OK(lease);
  CHECK(lease->data_segment == added);
  CHECK(lease->offset % (4 * kib) == 0);
  CHECK(lease->offset + lease->size <= 1 * mib);
  auto mapping = shm_segment::open(lease->data_segment, true, lease->offset, 100 * kib);
  REQUIRE_OK(mapping);
  CHECK(std::string(reinterpret_cast<const char*>(mapping->data()) + 50 * kib, text.size())
        == text);
  std::memcpy(mapping->data(), "mapped", 6); // and written through the mapping, read by the engine
  auto back = e->read(p, second, 0, 6);
  REQUIRE_OK(back);
  CHECK(std::string(back->begin(), back->end()) == "mapped");
  CHECK_OK(e->unmap(p, second));
  // copy across segments
  CHECK_OK(e->copy(p, second, first, {{50 * kib, 10, text.size()}}));
  auto copied = e->read(p, first, 10, text.size());
  REQUIRE_OK(copied);
  CHECK(std::string(copied->begin(), copied->end()) == text);
  CHECK(e->check() == "");
}

TEST_CASE("a request larger than the initial arena gets a segment of its own size") {
  env e{16 * mib};
  auto p = e.reg("p");
  auto big = e.alloc(p, 5 * mib + 1);
  auto st = e->stats();
  REQUIRE(st.data_segments.size() == 2);
  CHECK(st.segment_bytes[1] == 5 * mib + 4 * kib);
  CHECK(e.segment_of(p, big) == st.data_segments[1]);
  CHECK_OK(e->write(p, big, 5 * mib - 3, bytes_of("old")));
  CHECK_OK(e->free(p, big)); // empty, and the initial arena is all free: removed
  st = e->stats();
  CHECK(st.data_segments.size() == 1);
  CHECK(st.arena_bytes == 1 * mib);
  CHECK(st.segments_removed == 1);
  CHECK_FALSE(segment_exists(e, 1));
  // the block was not scrubbed (its pages left with the segment): a new segment reads zeros
  auto again = e.alloc(p, 5 * mib + 1);
  auto bytes = e->read(p, again, 5 * mib - 3, 3);
  REQUIRE_OK(bytes);
  CHECK(std::all_of(bytes->begin(), bytes->end(), [](char c) { return c == 0; }));
  CHECK_OK(e->free(p, again));
}

TEST_CASE("out_of_memory at the ceiling names requested, free, largest free and the ceiling") {
  env e{3 * mib};
  auto p = e.reg("p");
  for (int i = 0; i < 3; ++i)
    e.alloc(p, 800 * kib); // one per segment: 1 MiB each, the ceiling reached
  CHECK(e->live_segments() == 3);
  auto st = e->stats();
  CHECK(st.arena_bytes == 3 * mib);
  auto refused = e->allocate(p, 800 * kib);
  CHECK_ERRC(refused, errc::out_of_memory);
  auto text = why(refused);
  INFO(text);
  st = e->stats();
  CHECK(text.find("requested " + std::to_string(800 * kib)) != std::string::npos);
  CHECK(text.find("free " + std::to_string(st.free_bytes)) != std::string::npos);
  CHECK(text.find("largest free block " + std::to_string(st.largest_free_block))
        != std::string::npos);
  CHECK(text.find("ceiling " + std::to_string(3 * mib)) != std::string::npos);
  CHECK(text.find("engine.max_arena") != std::string::npos);
  // larger than the ceiling: refused before anything is tried
  auto huge = e->allocate(p, 3 * mib + 1);
  CHECK_ERRC(huge, errc::out_of_memory);
  CHECK(why(huge).find("ceiling") != std::string::npos);
  // what still fits is served (and passes 80 % of the ceiling: one warning)
  CHECK_OK(e->allocate(p, st.largest_free_block));
  CHECK(e->stats().arena_bytes == 3 * mib);
  // the capacity row of the arena is the ceiling
  auto caps = e->capacities();
  CHECK(caps[0].setting == "engine.max_arena");
  CHECK(caps[0].capacity == 3 * mib);
  CHECK(std::count_if(e.log.begin(), e.log.end(), [](const std::string& line) {
          return line.find("warning: arena bytes") != std::string::npos
                 && line.find("raise engine.max_arena") != std::string::npos;
        }) == 1);
}

TEST_CASE("growth and shrink with live blocks in every segment, and a freed block coalesces back") {
  env e{8 * mib};
  auto p = e.reg("p");
  // four segments, each with three live blocks
  std::vector<std::vector<block_ref>> by_segment(4);
  std::map<std::string, size_t> index_of;
  for (int i = 0; i < 12; ++i) {
    auto ref = e.alloc(p, 320 * kib);
    auto seg = e.segment_of(p, ref);
    index_of.emplace(seg, index_of.size());
    by_segment[index_of[seg]].push_back(ref);
    CHECK(e->check() == "");
  }
  REQUIRE(e->live_segments() == 4);
  for (auto& blocks : by_segment)
    CHECK(blocks.size() == 3);
  // every block carries its own pattern
  for (auto& blocks : by_segment)
    for (auto& ref : blocks)
      CHECK_OK(e->write(p, ref, 0, bytes_of("block " + std::to_string(ref.block))));
  // room in the other segments (else an empty segment stays, see the next test)
  for (size_t k : {0u, 2u, 3u}) {
    CHECK_OK(e->free(p, by_segment[k][0]));
    by_segment[k].erase(by_segment[k].begin());
  }
  CHECK(e->live_segments() == 4);
  // empty the second segment: its memory goes with its last block, the others keep their bytes
  CHECK_OK(e->free(p, by_segment[1][1]));
  CHECK_OK(e->free(p, by_segment[1][0]));
  CHECK(e->live_segments() == 4);
  CHECK_OK(e->free(p, by_segment[1][2]));
  CHECK(e->live_segments() == 3);
  CHECK(e->check() == "");
  for (size_t k : {0u, 2u, 3u})
    for (auto& ref : by_segment[k]) {
      auto back = e->read(p, ref, 0, 6 + std::to_string(ref.block).size());
      REQUIRE_OK(back);
      CHECK(std::string(back->begin(), back->end()) == "block " + std::to_string(ref.block));
    }
  // growing again reuses the freed table entry and place in the page space
  auto again = e.alloc(p, 900 * kib);
  CHECK(e->live_segments() == 4);
  CHECK(e->check() == "");
  CHECK_OK(e->free(p, again));
  // the last segment goes with its last block
  CHECK_OK(e->free(p, by_segment[3][1]));
  CHECK(e->live_segments() == 3);
  CHECK_OK(e->free(p, by_segment[3][0]));
  CHECK(e->live_segments() == 2);
  for (size_t k : {0u, 2u})
    for (auto& ref : by_segment[k])
      CHECK_OK(e->free(p, ref));
  // everything merged back into the initial arena, the added objects are gone
  auto st = e->stats();
  CHECK(st.data_segments.size() == 1);
  CHECK(st.arena_bytes == 1 * mib);
  CHECK(st.free_bytes == 1 * mib);
  CHECK(st.largest_free_block == 1 * mib);
  CHECK(st.segments_added == 4);
  CHECK(st.segments_removed == 4);
  for (uint32_t i = 1; i < admin::max_segments; ++i)
    CHECK_FALSE(segment_exists(e, i));
  // the whole initial arena is one block again
  CHECK_OK(e->free(p, e.alloc(p, 1 * mib)));
}

TEST_CASE("an empty added segment stays while the rest of the arena is nearly full") {
  env e{8 * mib};
  auto p = e.reg("p");
  auto base = e.alloc(p, 1 * mib - 4 * kib); // the initial arena nearly full
  auto edge = e.alloc(p, 8 * kib);           // does not fit: segment 1
  CHECK(e->live_segments() == 2);
  CHECK_OK(e->free(p, edge)); // empty, but the rest has only 4 KiB free: kept for the next one
  CHECK(e->live_segments() == 2);
  auto next = e.alloc(p, 8 * kib);
  CHECK(e->stats().segments_added == 1);
  CHECK_OK(e->free(p, next));
  CHECK_OK(e->free(p, base)); // now the initial arena is free: the empty segment goes
  CHECK(e->live_segments() == 1);
  CHECK_FALSE(segment_exists(e, 1));
}

TEST_CASE("segments packed in the page space when no gap between them takes a new one") {
  env e{8 * mib};
  auto p = e.reg("p");
  // Segment 0 full, then seven added segments of 1 MiB (256 pages) one after the other.
  auto base = e.alloc(p, 1 * mib);
  std::vector<block_ref> held;
  for (int i = 0; i < 7; ++i)
    held.push_back(e.alloc(p, i % 2 == 0 ? 800 * kib : 1 * mib));
  REQUIRE(e->live_segments() == 8);
  for (auto& ref : held)
    CHECK_OK(e->write(p, ref, 0, bytes_of("block " + std::to_string(ref.block))));
  // Empty the 2nd, 4th and 6th added segment: they go (the others have room to spare), and
  // leave gaps of 1 MiB between the rest; the end of the page space has less than 1 MiB.
  for (size_t k : {1u, 3u, 5u})
    CHECK_OK(e->free(p, held[k]));
  CHECK(e->live_segments() == 5);
  CHECK(e->stats().arena_bytes == 5 * mib);
  // 2 MiB fit under the ceiling but in no gap: the segments are packed, then it is served.
  auto big = e->allocate(p, 2 * mib);
  REQUIRE_MESSAGE(static_cast<bool>(big), why(big));
  CHECK(e->live_segments() == 6);
  CHECK(e->stats().arena_bytes == 7 * mib);
  CHECK(std::count_if(e.log.begin(), e.log.end(), [](const std::string& line) {
          return line.find("packed") != std::string::npos;
        }) == 1);
  CHECK(e->check() == "");
  // Blocks that moved in the page space keep their bytes, their segments and their leases.
  for (size_t k : {0u, 2u, 4u, 6u}) {
    auto& ref = held[k];
    auto text = "block " + std::to_string(ref.block);
    auto back = e->read(p, ref, 0, text.size());
    REQUIRE_OK(back);
    CHECK(std::string(back->begin(), back->end()) == text);
    auto lease = e->map(p, ref, access_mode::read);
    REQUIRE_OK(lease);
    auto mapping = shm_segment::open(lease->data_segment, false, lease->offset, lease->size);
    REQUIRE_OK(mapping);
    CHECK(std::string(reinterpret_cast<const char*>(mapping->data()), text.size()) == text);
    CHECK_OK(e->unmap(p, ref));
  }
  CHECK_OK(e->write(p, *big, 2 * mib - 1, bytes_of("z")));
  for (size_t k : {0u, 2u, 4u, 6u})
    CHECK_OK(e->free(p, held[k]));
  CHECK_OK(e->free(p, *big));
  CHECK_OK(e->free(p, base));
  CHECK(e->live_segments() == 1);
  CHECK(e->check() == "");
}

TEST_CASE("an empty added segment kept at the edge gives way to the segment a request needs") {
  env e{3 * mib};
  auto p = e.reg("p");
  auto base = e.alloc(p, 1 * mib);   // segment 0 full
  auto edge = e.alloc(p, 64 * kib);  // segment 1 (1 MiB)
  CHECK_OK(e->free(p, edge));        // empty, kept: the rest of the arena has nothing free
  REQUIRE(e->live_segments() == 2);
  REQUIRE(e->stats().arena_bytes == 2 * mib);
  // 1.5 MiB: not in segment 1, and 2 MiB + 1.5 MiB is above the ceiling; without the empty
  // segment it is not.
  auto big = e->allocate(p, 1536 * kib);
  REQUIRE_MESSAGE(static_cast<bool>(big), why(big));
  CHECK(e->live_segments() == 2);
  CHECK(e->stats().arena_bytes == 2560 * kib);
  CHECK(e->stats().segments_removed == 1);
  CHECK_OK(e->free(p, *big));
  CHECK_OK(e->free(p, base));
  CHECK(e->live_segments() == 1);
}

TEST_CASE("crash reclaim and scrubbing of blocks in added segments") {
  env e{4 * mib};
  auto keeper = e.reg("keeper");
  auto dying = e.reg("dying");
  auto reader = e.reg("reader");
  auto fill = e.alloc(keeper, 1 * mib);       // segment 0 full
  auto anchor = e.alloc(keeper, 64 * kib);    // segment 1, keeps it in place
  auto secret = e.alloc(dying, 128 * kib);    // segment 1
  auto pinned = e.alloc(dying, 64 * kib);     // segment 1, with a view of another process open
  CHECK(e.segment_of(dying, secret) == e.segment_of(keeper, anchor));
  CHECK(e.segment_of(dying, pinned) == e.segment_of(keeper, anchor));
  std::string payload(128 * kib, 's');
  CHECK_OK(e->write(dying, secret, 0, bytes_of(payload)));
  CHECK_OK(e->write(dying, pinned, 0, bytes_of(std::string(64 * kib, 'p'))));
  CHECK_OK(e->share(dying, pinned, reader.process, access_mode::read));
  REQUIRE_OK(e->map(reader, pinned, access_mode::read));
  auto before = e->stats();
  e->reclaim(dying.process); // the process died
  CHECK(e->check() == "");
  auto after = e->stats();
  CHECK(after.blocks == before.blocks - 1); // `pinned` drains until the reader unmaps
  CHECK(after.draining_blocks == 1);
  CHECK(after.used_bytes == before.used_bytes - 128 * kib);
  // the freed memory is zeroed: whoever gets it next reads zeros
  auto reuse = e.alloc(keeper, 128 * kib);
  CHECK(e.segment_of(keeper, reuse) == e.segment_of(keeper, anchor));
  auto bytes = e->read(keeper, reuse, 0, 128 * kib);
  REQUIRE_OK(bytes);
  CHECK(std::all_of(bytes->begin(), bytes->end(), [](char c) { return c == 0; }));
  CHECK_OK(e->unmap(reader, pinned)); // last view: the drained block returns, zeroed
  auto later = e.alloc(keeper, 64 * kib);
  auto zeros = e->read(keeper, later, 0, 64 * kib);
  REQUIRE_OK(zeros);
  CHECK(std::all_of(zeros->begin(), zeros->end(), [](char c) { return c == 0; }));
  CHECK(e->stats().draining_blocks == 0);
  for (auto ref : {fill, anchor, reuse, later})
    CHECK_OK(e->free(keeper, ref));
  CHECK(e->live_segments() == 1);
}

TEST_CASE("scrub on_allocate also zeroes blocks handed out in added segments") {
  env e{4 * mib, scrub_policy::on_allocate};
  auto p = e.reg("p");
  auto fill = e.alloc(p, 1 * mib);
  auto anchor = e.alloc(p, 4 * kib);
  auto old = e.alloc(p, 64 * kib);
  CHECK_OK(e->write(p, old, 0, bytes_of(std::string(64 * kib, 'o'))));
  CHECK_OK(e->free(p, old)); // the segment keeps `anchor`: stays, with the old bytes
  auto reuse = e.alloc(p, 64 * kib);
  auto bytes = e->read(p, reuse, 0, 64 * kib);
  REQUIRE_OK(bytes);
  CHECK(std::all_of(bytes->begin(), bytes->end(), [](char c) { return c == 0; }));
  for (auto ref : {fill, anchor, reuse})
    CHECK_OK(e->free(p, ref));
}

TEST_CASE("engine stop removes every data segment it added") {
  std::string name;
  {
    env e{8 * mib};
    name = e.settings.name;
    auto p = e.reg("p");
    for (int i = 0; i < 5; ++i)
      e.alloc(p, 900 * kib);
    REQUIRE(e->live_segments() == 5);
    for (uint32_t i = 1; i < 5; ++i)
      CHECK(segment_exists(e, i));
    e.mm.reset(); // the engine stops with live blocks in every segment
    for (uint32_t i = 1; i < admin::max_segments; ++i)
      CHECK_FALSE(segment_exists(e, i));
    CHECK_FALSE(shm_segment::exists(e.guard.data()));
    CHECK_FALSE(shm_segment::exists(e.guard.admin()));
  }
}

TEST_CASE("a leftover object of an added segment's name does not stop the arena from growing") {
  env e{4 * mib};
  auto leftover = shm_segment::create(memory_manager::added_segment_name(e.settings.name, 1),
                                      4096, 0600);
  REQUIRE_OK(leftover);
  auto p = e.reg("p");
  e.alloc(p, 1 * mib);
  e.alloc(p, 1 * mib);
  CHECK(e->live_segments() == 2);
  CHECK(e->data_segment(1).size() == 1 * mib);
}

TEST_CASE("/dev/shm too small for an added segment: out_of_memory naming /dev/shm") {
  auto space = query_shm_space();
  const uint64_t want = uint64_t{1} << 40; // 1 TiB: more than any test machine's /dev/shm
  // Only when /dev/shm is size-limited below the request: then tmpfs refuses the reservation at
  // once instead of filling memory first.
  if (space.total_bytes == 0 || want / 2 <= space.total_bytes) {
    MESSAGE("skipped: /dev/shm has " << (space.total_bytes >> 20) << " MiB");
    return;
  }
  segment_guard guard{unique_name("grow")};
  engine_settings s;
  s.name = guard.name;
  s.arena_bytes = 64 * mib;
  s.min_block_bytes = 1 * mib; // keeps admin memory for a 1 TiB ceiling small (8 MiB)
  s.max_arena_bytes = want;
  auto mm = memory_manager::create(s);
  REQUIRE_OK(mm);
  auto p = (*mm)->register_process("p", ::getpid(), 0);
  REQUIRE_OK(p);
  auto refused = (*mm)->allocate(p->session, want / 2);
  CHECK_ERRC(refused, errc::out_of_memory);
  auto text = why(refused);
  INFO(text);
  CHECK(text.find("/dev/shm") != std::string::npos);
  CHECK(text.find(memory_manager::added_segment_name(s.name, 1)) != std::string::npos);
  CHECK((*mm)->live_segments() == 1);
  CHECK_FALSE(shm_segment::exists(memory_manager::added_segment_name(s.name, 1)));
  CHECK((*mm)->check() == "");
  CHECK_OK((*mm)->allocate(p->session, 1 * mib)); // the arena still serves what fits
}

// A model of the blocks (owner, size, content tag) against which every operation is checked;
// check() after every operation (CAFSHM_MODEL_OPS sets the number, e.g. 1000000 nightly).
TEST_CASE("randomised model test over several data segments: check() after every operation") {
  uint64_t ops = 100'000;
  if (const char* n = std::getenv("CAFSHM_MODEL_OPS"))
    ops = std::strtoull(n, nullptr, 10);
  env e{12 * mib};
  std::mt19937_64 random{20261130};
  std::vector<session> procs{e.reg("a"), e.reg("b"), e.reg("c")};
  struct live_block {
    block_ref ref;
    size_t owner;
    char tag;
    uint64_t bytes; // occupied
  };
  std::vector<live_block> live;
  uint64_t used = 0, grew = 0, shrank = 0, refused = 0, within_ceiling = 0, below_used = 0,
           max_segments_seen = 1, spread = 0;
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>{0, n - 1}(random); };
  auto occupied = [](uint64_t size) { return (size + 4 * kib - 1) / (4 * kib) * (4 * kib); };
  // Phases of filling and emptying, so the arena grows and shrinks again and again.
  for (uint64_t op = 0; op < ops; ++op) {
    bool filling = (op / 2000) % 2 == 0;
    uint64_t roll = pick(100);
    auto segments_before = e->live_segments();
    if (live.empty() || (filling ? roll < 65 : roll < 30)) {
      // sizes: mostly small, some up to the initial arena, a few above it
      uint64_t size = roll % 10 == 0 ? 1 + pick(1536 * kib)
                      : roll % 3 == 0 ? 1 + pick(256 * kib)
                                      : 1 + pick(16 * kib);
      auto owner = pick(procs.size());
      auto st = e->stats();
      auto r = e->allocate(procs[owner], size);
      if (r) {
        char tag = static_cast<char>('a' + pick(26));
        CHECK_OK(e->write(procs[owner], *r, size - 1, {&tag, 1}));
        live.push_back({*r, owner, tag, occupied(size)});
        used += occupied(size);
      } else {
        ++refused;
        REQUIRE(cafshm_test::errc_of(r) == errc::out_of_memory);
        // Refused only when nothing fits and the arena cannot grow by a segment for it: never
        // while the arena could grow by the block's occupied bytes within the ceiling.
        REQUIRE(st.largest_free_block < occupied(size));
        within_ceiling += occupied(size) <= 12 * mib - st.arena_bytes;
        // (what the live blocks leave under the ceiling would take it, but not in one piece)
        below_used += used + occupied(size) <= 12 * mib;
      }
    } else {
      auto k = pick(live.size());
      auto& b = live[k];
      auto last = e->read(procs[b.owner], b.ref, b.ref.size - 1, 1);
      REQUIRE_OK(last);
      REQUIRE((*last)[0] == b.tag); // nothing else wrote into the block
      if (roll % 7 == 0) { // a view, then the free drains until unmap
        auto lease = e->map(procs[b.owner], b.ref, access_mode::read);
        REQUIRE_OK(lease);
        auto st = e->stats();
        auto seg = std::find(st.data_segments.begin(), st.data_segments.end(),
                             lease->data_segment);
        REQUIRE(seg != st.data_segments.end());
        REQUIRE(lease->offset + lease->size
                <= st.segment_bytes[size_t(seg - st.data_segments.begin())]);
        REQUIRE_OK(e->free(procs[b.owner], b.ref));
        REQUIRE_OK(e->unmap(procs[b.owner], b.ref));
      } else {
        REQUIRE_OK(e->free(procs[b.owner], b.ref));
      }
      used -= b.bytes;
      live[k] = live.back();
      live.pop_back();
    }
    auto segments_after = e->live_segments();
    grew += segments_after > segments_before;
    shrank += segments_after < segments_before;
    max_segments_seen = std::max<uint64_t>(max_segments_seen, segments_after);
    auto err = e->check();
    REQUIRE_MESSAGE(err.empty(), "after operation " << op << ": " << err);
    if (op % 500 == 0 && e->live_segments() >= 3) { // live blocks in every segment?
      std::set<std::string> holding;
      for (auto& b : live)
        holding.insert(e.segment_of(procs[b.owner], b.ref));
      spread += holding.size() == e->live_segments();
    }
    REQUIRE(e->header().used_bytes == used);
    REQUIRE(e->header().arena_bytes <= 12 * mib);
  }
  auto packed = std::count_if(e.log.begin(), e.log.end(), [](const std::string& line) {
    return line.find("packed") != std::string::npos;
  });
  MESSAGE(ops << " operations: " << grew << " segments added, " << shrank << " removed, up to "
              << max_segments_seen << " segments at once, packed " << packed << " times, " << spread
              << " samples with live blocks in every one of 3 or more segments, " << refused
              << " refused (" << within_ceiling << " of them while the arena could grow by the "
              << "block; " << below_used << " with live bytes + the block within the ceiling)");
  CHECK(within_ceiling == 0);
  CHECK(packed > 0); // the page space had no gap for a new segment, and the segments moved
  CHECK(grew > 10);
  CHECK(shrank > 10);
  CHECK(max_segments_seen >= 4);
  CHECK(spread > 0);
  // everything freed: one free block of the initial arena
  for (auto& b : live)
    CHECK_OK(e->free(procs[b.owner], b.ref));
  auto st = e->stats();
  CHECK(st.data_segments.size() == 1);
  CHECK(st.free_bytes == 1 * mib);
  CHECK(st.largest_free_block == 1 * mib);
}
