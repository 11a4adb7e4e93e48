// background_scrubber on its own: claims that cut dirty ranges at any boundary, what is zeroed
// and what is kept for its only writer, forget and zero_all, and allocations racing the
// scrubbing thread over an arena of random extents (never a foreign byte, never a byte of a
// held extent zeroed). Runs under ASan and TSan (scripts/test.sh --tsan).

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "background_scrubber.hpp"

using cafshm::background_scrubber;
using namespace std::chrono_literals;

namespace {

constexpr size_t page = 4096;

struct arena {
  std::vector<std::byte> bytes;
  explicit arena(size_t pages) : bytes(pages * page) {}
  std::byte* at(size_t p) { return bytes.data() + p * page; }
  void fill(size_t p, size_t n, int value) { std::memset(at(p), value, n * page); }
  bool all(size_t p, size_t n, int value) const {
    std::vector<std::byte> expected(page, std::byte(value));
    for (size_t i = p; i < p + n; ++i) // memcmp: fast also in unoptimised sanitizer builds
      if (std::memcmp(bytes.data() + i * page, expected.data(), page) != 0)
        return false;
    return true;
  }
};

constexpr background_scrubber::writer p_writer{1, 11}, q_writer{2, 22};

/// Whether the thread zeroed every listed range before `deadline`.
bool drained_within(const background_scrubber& s, std::chrono::seconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (s.stats().pending_bytes != 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(100us);
  return s.stats().pending_bytes == 0;
}

} // namespace

TEST_CASE("a claim zeroes what another process wrote, keeps what the claimer alone wrote, and "
          "leaves the rest of a cut range listed") {
  arena a{16};
  background_scrubber s{1h}; // the thread never gets a turn here
  s.start();
  a.fill(0, 8, 'p');
  s.add(a.at(0), 8 * page, p_writer);
  a.fill(8, 8, 'q');
  s.add(a.at(8), 8 * page, q_writer);
  CHECK(s.stats().pending_bytes == 16 * page);
  // pages 6..10: p's 6, 7 kept for p, q's 8, 9 zeroed
  CHECK(s.claim(a.at(6), 4 * page, p_writer));
  CHECK(a.all(6, 2, 'p'));
  CHECK(a.all(8, 2, 0));
  CHECK(a.all(0, 6, 'p')); // untouched, still listed
  CHECK(a.all(10, 6, 'q'));
  auto c = s.stats();
  CHECK(c.pending_bytes == 12 * page);
  CHECK(c.kept_for_writer == 2 * page);
  CHECK(c.zeroed_by_engine == 2 * page);
  // a claim inside one range, by q: p's bytes zeroed, both ends stay listed
  CHECK_FALSE(s.claim(a.at(2), 2 * page, q_writer));
  CHECK(a.all(2, 2, 0));
  CHECK(s.stats().pending_bytes == 10 * page);
  // anyone (token 0) is nobody's: zeroed even for a claimer with the same slot
  a.fill(6, 4, 'x');
  s.add(a.at(6), 4 * page, background_scrubber::anyone);
  CHECK_FALSE(s.claim(a.at(6), 4 * page, background_scrubber::anyone));
  CHECK(a.all(6, 4, 0));
  // memory nobody listed: a claim changes nothing
  a.fill(6, 4, 'n');
  CHECK_FALSE(s.claim(a.at(6), 4 * page, q_writer));
  CHECK(a.all(6, 4, 'n'));
  // forget drops without zeroing (a segment that goes away); zero_all zeroes the rest
  s.forget(a.at(0), 2 * page);
  CHECK(a.all(0, 2, 'p'));
  CHECK(s.stats().pending_bytes == 8 * page);
  s.zero_all();
  CHECK(s.stats().pending_bytes == 0);
  CHECK(a.all(4, 2, 0));
  CHECK(a.all(10, 6, 0));
  CHECK(a.all(0, 2, 'p'));
  CHECK(s.stats().zeroed_in_background == 0);
}

TEST_CASE("the thread zeroes a range once it has stayed free for the delay, in pieces") {
  arena a{64};
  background_scrubber s{0ms, 5 * page};
  s.start();
  a.fill(0, 64, 'p');
  s.add(a.at(0), 64 * page, p_writer);
  REQUIRE(drained_within(s, 10s));
  CHECK(a.all(0, 64, 0));
  CHECK(s.stats().zeroed_in_background == 64 * page);
  s.stop();
  a.fill(0, 4, 'q'); // stopped: ranges stay listed, a claim still zeroes them
  s.add(a.at(0), 4 * page, q_writer);
  CHECK_FALSE(s.claim(a.at(0), 4 * page, p_writer));
  CHECK(a.all(0, 4, 0));
}

TEST_CASE("allocations racing the thread over random extents see only zeros or their own "
          "bytes, and the thread never zeroes a held extent") {
  constexpr size_t pages = 512;
  arena a{pages};
  background_scrubber s{50us, 3 * page}; // short delay, small pieces: many races
  s.start();
  std::vector<int> held_by(pages, 0);
  struct extent {
    size_t first, n;
    int by;
  };
  std::vector<extent> held;
  std::mt19937 rng{20261203};
  long foreign = 0, clobbered = 0;
  auto release = [&](const extent& e) { // checks that nothing zeroed it while held
    if (!a.all(e.first, e.n, e.by))
      ++clobbered;
    for (size_t p = e.first; p < e.first + e.n; ++p)
      held_by[p] = 0;
    s.add(a.at(e.first), e.n * page, {static_cast<uint32_t>(e.by), static_cast<uint64_t>(e.by)});
  };
  for (int round = 0; round < 40000; ++round) {
    if (!held.empty() && (rng() % 2 != 0 || held.size() > 40)) { // free one
      size_t k = rng() % held.size();
      auto e = held[k];
      held.erase(held.begin() + static_cast<ptrdiff_t>(k));
      release(e);
      continue;
    }
    size_t first = rng() % pages, n = 1 + rng() % 32; // allocate anywhere free
    if (first + n > pages)
      continue;
    bool free = true;
    for (size_t p = first; p < first + n; ++p)
      free = free && held_by[p] == 0;
    if (!free)
      continue;
    int by = 1 + static_cast<int>(rng() % 3);
    bool kept = s.claim(a.at(first), n * page,
                        {static_cast<uint32_t>(by), static_cast<uint64_t>(by)});
    for (size_t p = first; p < first + n; ++p) {
      bool zero = a.all(p, 1, 0), own = a.all(p, 1, by);
      if (!zero && !(kept && own))
        ++foreign;
      held_by[p] = by;
    }
    a.fill(first, n, by);
    held.push_back({first, n, by});
  }
  for (const auto& e : held) // everything freed: the thread zeroes what is left
    release(e);
  CHECK(foreign == 0);
  CHECK(clobbered == 0);
  CHECK(drained_within(s, 20s));
  auto c = s.stats();
  CHECK(c.zeroed_in_background > 0);
  // which way each byte went depends on timing; that all ways were taken is not asserted
  MESSAGE("kept for the writer " << c.kept_for_writer << ", zeroed by claims "
                                 << c.zeroed_by_engine << ", by the thread "
                                 << c.zeroed_in_background);
}
