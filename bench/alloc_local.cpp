// Row 3: allocate+free pairs per second on the same random workload through the engine (see
// handoff.cpp), through memory_manager in-process (the engine's work without messages), directly
// on tlsf_allocator, on Boost.Interprocess's managed_shared_memory (rbtree_best_fit, its default)
// and on malloc; and fragmentation (largest free block / free bytes) of tlsf vs Boost after a
// long random workload of mixed sizes, with occupied / requested bytes for requests >= 64 KiB.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>
#include <random>

#include <boost/interprocess/managed_shared_memory.hpp>
#include <unistd.h>

#include "bench.hpp"
#include "tlsf_allocator.hpp"
#include "memory_manager.hpp"
#include "processes.hpp"

namespace bench {

using clock_type = std::chrono::steady_clock;
namespace bip = boost::interprocess;

workload make_workload(uint64_t seed, size_t live, size_t ops, uint32_t min_size,
                       uint32_t max_size) {
  workload w;
  std::mt19937_64 rng{seed};
  std::uniform_real_distribution<double> logsize{std::log(double(min_size)),
                                                 std::log(double(max_size))};
  auto size = [&] { return static_cast<uint32_t>(std::exp(logsize(rng))); };
  std::uniform_int_distribution<uint32_t> victim{0, static_cast<uint32_t>(live - 1)};
  for (size_t i = 0; i < live; ++i)
    w.initial.push_back(size());
  w.sizes.reserve(ops);
  w.victims.reserve(ops);
  for (size_t i = 0; i < ops; ++i) {
    w.sizes.push_back(size());
    w.victims.push_back(victim(rng));
  }
  return w;
}

namespace {

constexpr uint32_t min_order = 12;  // 4 KiB, the engine's default min_block
constexpr uint32_t rate_order = 28; // 256 MiB arena for the rate workload

// Runs the replacement workload on an allocator: alloc(size) -> handle (or nullopt), free(handle).
// Returns pairs per second of the timed part (the live set is allocated first, untimed).
template <class Handle, class Alloc, class Free>
double replay(const workload& w, size_t ops, Alloc alloc, Free free) {
  std::vector<Handle> slots;
  slots.reserve(w.initial.size());
  for (auto s : w.initial)
    slots.push_back(alloc(s).value_or(Handle{}));
  ops = std::min(ops, w.sizes.size());
  auto t0 = clock_type::now();
  for (size_t i = 0; i < ops; ++i) {
    auto& slot = slots[w.victims[i]];
    free(slot);
    auto h = alloc(w.sizes[i]);
    slot = h ? *h : Handle{};
  }
  double rate = static_cast<double>(ops) / seconds_since(t0);
  for (auto& h : slots)
    free(h);
  return rate;
}

struct shm_name_guard {
  std::string name;
  ~shm_name_guard() { bip::shared_memory_object::remove(name.c_str()); }
};

} // namespace

std::vector<alloc_rate> local_alloc_rates(const workload& w, int runs) {
  std::vector<alloc_rate> out;
  const size_t ops = w.sizes.size();
  // tlsf_allocator directly: state in private memory, no arena touched.
  {
    const uint32_t pages = 1u << (rate_order - min_order);
    std::vector<uint64_t> state(cafshm::tlsf_allocator::state_bytes(pages) / 8 + 1);
    std::vector<double> rates;
    for (int r = 0; r < runs; ++r) {
      auto b = cafshm::tlsf_allocator::create(
        {reinterpret_cast<std::byte*>(state.data()), state.size() * 8}, min_order, pages, pages);
      rates.push_back(replay<uint64_t>(
        w, ops,
        [&](uint32_t size) -> std::optional<uint64_t> {
          auto off = b.allocate(size);
          return off ? std::optional<uint64_t>{*off + 1} : std::nullopt;
        },
        [&](uint64_t h) {
          if (h != 0)
            b.free(h - 1);
        }));
    }
    out.push_back({"tlsf_allocator, direct",
                   "256 MiB arena, 4 KiB min block, state in private memory", summarize(rates)});
  }
  // memory_manager in-process: the engine's work per request (checks, block table, accounting)
  // without messages; with and without scrubbing.
  for (auto scrub : {cafshm::scrub_policy::off, cafshm::scrub_policy::on_free}) {
    std::vector<double> rates;
    cafshm::engine_settings s;
    s.name = unique_name("cafshm-bench-mm");
    s.arena_bytes = 1ull << rate_order;
    s.min_block_bytes = 1u << min_order;
    s.max_blocks = 8192;
    s.scrub = scrub;
    auto mm = cafshm::memory_manager::create(s);
    if (!mm)
      continue;
    auto reg = (*mm)->register_process("bench", ::getpid(), 0);
    if (!reg)
      continue;
    auto sess = reg->session;
    for (int r = 0; r < runs; ++r)
      rates.push_back(replay<cafshm::block_ref>(
        w, std::min<size_t>(ops, 500'000),
        [&](uint32_t size) -> std::optional<cafshm::block_ref> {
          auto ref = (*mm)->allocate(sess, size);
          return ref ? std::optional<cafshm::block_ref>{*ref} : std::nullopt;
        },
        [&](const cafshm::block_ref& ref) {
          if (ref.valid())
            (void) (*mm)->free(sess, ref);
        }));
    out.push_back({scrub == cafshm::scrub_policy::off ? "memory_manager, scrub off"
                                                      : "memory_manager, scrub on-free",
                   "the engine's work per request, in-process, no messages", summarize(rates)});
  }
  // Boost.Interprocess managed_shared_memory, default allocator (rbtree_best_fit + mutex).
  {
    shm_name_guard g{unique_name("cafshm-bench-boost")};
    std::vector<double> rates;
    bip::shared_memory_object::remove(g.name.c_str());
    bip::managed_shared_memory seg{bip::create_only, g.name.c_str(), size_t{1} << rate_order};
    for (int r = 0; r < runs; ++r)
      rates.push_back(replay<void*>(
        w, std::min<size_t>(ops, 1'000'000),
        [&](uint32_t size) -> std::optional<void*> {
          void* p = seg.allocate(size, std::nothrow);
          return p ? std::optional<void*>{p} : std::nullopt;
        },
        [&](void* p) {
          if (p)
            seg.deallocate(p);
        }));
    out.push_back({"Boost.Interprocess managed_shared_memory",
                   "default allocator (rbtree_best_fit, interprocess mutex), 256 MiB segment",
                   summarize(rates)});
  }
  // malloc
  {
    std::vector<double> rates;
    for (int r = 0; r < runs; ++r)
      rates.push_back(replay<void*>(
        w, ops,
        [](uint32_t size) -> std::optional<void*> {
          void* p = std::malloc(size);
          return p ? std::optional<void*>{p} : std::nullopt;
        },
        [](void* p) { std::free(p); }));
    out.push_back({"malloc (glibc)", "private memory, one thread", summarize(rates)});
  }
  return out;
}

// -- fragmentation ----------------------------------------------------------------------------------

namespace {

struct frag_op {
  bool alloc;
  uint32_t id;
  uint32_t size;
};

// A random walk of live requested bytes around fill * arena: below it allocations are more likely
// (60 %), above it frees. Sizes log-uniform from 4 KiB to 4 MiB. The same sequence for every
// allocator; an allocation that fails leaves its id empty, its later free is skipped.
std::vector<frag_op> frag_sequence(uint64_t arena, double fill, size_t ops, uint64_t seed,
                                   bool pow2) {
  std::mt19937_64 rng{seed};
  std::uniform_real_distribution<double> logsize{std::log(4096.0), std::log(4.0 * 1024 * 1024)};
  std::uniform_real_distribution<double> coin{0, 1};
  std::vector<frag_op> seq;
  std::vector<std::pair<uint32_t, uint32_t>> live; // id, size
  uint64_t live_bytes = 0;
  uint32_t next_id = 0;
  double target = fill * static_cast<double>(arena);
  for (size_t i = 0; i < ops; ++i) {
    double p_alloc = static_cast<double>(live_bytes) < target ? 0.6 : 0.4;
    if (live.empty() || coin(rng) < p_alloc) {
      auto size = static_cast<uint32_t>(std::exp(logsize(rng)));
      if (pow2)
        size = std::bit_ceil(size);
      seq.push_back({true, next_id, size});
      live.emplace_back(next_id++, size);
      live_bytes += size;
    } else {
      std::uniform_int_distribution<size_t> pick{0, live.size() - 1};
      auto k = pick(rng);
      seq.push_back({false, live[k].first, live[k].second});
      live_bytes -= live[k].second;
      live[k] = live.back();
      live.pop_back();
    }
  }
  return seq;
}

template <class Handle, class Alloc, class Free, class Measure>
frag_row run_frag(const std::string& name, uint64_t arena, double fill,
                  const std::vector<frag_op>& seq, Alloc alloc, Free free, Measure measure) {
  frag_row row;
  row.allocator = name;
  row.fill = fill;
  row.arena = arena;
  row.ops = seq.size();
  std::vector<std::optional<Handle>> handles;
  std::vector<uint32_t> sizes;
  uint64_t live_requested = 0;
  double sum = 0;
  size_t samples = 0;
  row.min_ratio = 1;
  for (size_t i = 0; i < seq.size(); ++i) {
    const auto& op = seq[i];
    if (op.alloc) {
      if (handles.size() <= op.id) {
        handles.resize(op.id + 1);
        sizes.resize(op.id + 1);
      }
      handles[op.id] = alloc(op.size);
      sizes[op.id] = op.size;
      if (handles[op.id])
        live_requested += op.size;
      else
        ++row.failed;
    } else if (handles[op.id]) {
      free(*handles[op.id]);
      handles[op.id].reset();
      live_requested -= sizes[op.id];
    }
    // Sample the ratio over the second half of the run (after the warm-up to the target fill).
    if (i >= seq.size() / 2 && i % 997 == 0) {
      auto [free_b, largest] = measure();
      double ratio = free_b ? double(largest) / double(free_b) : 1.0;
      sum += ratio;
      row.min_ratio = std::min(row.min_ratio, ratio);
      ++samples;
    }
  }
  auto [free_b, largest] = measure();
  row.free_bytes = free_b;
  row.largest_free = largest;
  row.ratio = free_b ? double(largest) / double(free_b) : 1.0;
  row.mean_ratio = samples ? sum / samples : row.ratio;
  row.live_requested = double(live_requested) / double(arena);
  for (auto& h : handles)
    if (h)
      free(*h);
  return row;
}

} // namespace

std::vector<frag_row> fragmentation(uint64_t arena, const std::vector<double>& fills, size_t ops,
                                    uint64_t seed, bool pow2) {
  std::vector<frag_row> out;
  const auto pages = static_cast<uint32_t>(arena >> min_order);
  for (double fill : fills) {
    auto seq = frag_sequence(arena, fill, ops, seed, pow2);
    {
      std::vector<uint64_t> state(cafshm::tlsf_allocator::state_bytes(pages) / 8 + 1);
      auto b = cafshm::tlsf_allocator::create(
        {reinterpret_cast<std::byte*>(state.data()), state.size() * 8}, min_order, pages, pages);
      uint64_t occupied = 0, requested = 0; // over requests of 64 KiB and more that succeeded
      out.push_back(run_frag<uint64_t>(
        "tlsf_allocator", arena, fill, seq,
        [&](uint32_t size) -> std::optional<uint64_t> {
          auto off = b.allocate(size);
          if (off && size >= (64u << 10)) {
            occupied += b.occupied_bytes(size);
            requested += size;
          }
          return off;
        },
        [&](uint64_t off) { b.free(off); },
        [&] { return std::pair<uint64_t, uint64_t>{b.free_bytes(), b.largest_free_block()}; }));
      out.back().occupied_per_requested = requested ? double(occupied) / double(requested) : 0;
    }
    {
      shm_name_guard g{unique_name("cafshm-bench-frag")};
      bip::shared_memory_object::remove(g.name.c_str());
      bip::managed_shared_memory seg{bip::create_only, g.name.c_str(), arena};
      // Largest free block: the largest allocation that succeeds (binary search, 4 KiB steps).
      auto largest = [&]() -> uint64_t {
        uint64_t lo = 0, hi = seg.get_free_memory() / 4096 + 1; // lo works, hi fails
        while (hi - lo > 1) {
          uint64_t mid = (lo + hi) / 2;
          if (void* p = seg.allocate(mid * 4096, std::nothrow)) {
            seg.deallocate(p);
            lo = mid;
          } else {
            hi = mid;
          }
        }
        return lo * 4096;
      };
      out.push_back(run_frag<void*>(
        "Boost managed_shared_memory", arena, fill, seq,
        [&](uint32_t size) -> std::optional<void*> {
          void* p = seg.allocate(size, std::nothrow);
          return p ? std::optional<void*>{p} : std::nullopt;
        },
        [&](void* p) { seg.deallocate(p); },
        [&] { return std::pair<uint64_t, uint64_t>{seg.get_free_memory(), largest()}; }));
    }
  }
  return out;
}

alloc_report run_alloc(const options& opts, const sched& s) {
  alloc_report rep;
  const size_t live = 256;
  const size_t ops = opts.quick ? 500'000 : 4'000'000;
  auto w = make_workload(42, live, ops, 64, 64u << 10);
  rep.workload = "steady state of " + std::to_string(live)
                 + " live blocks; each pair frees a random live block and allocates a new one; "
                   "sizes log-uniform 64 B .. 64 KiB; " + std::to_string(ops)
                 + " pairs per run in-process (memory_manager: up to 500 k, Boost: up to 1 M), time-limited through "
                   "the engine";
  std::cerr << "bench: alloc: in-process\n";
  auto local = local_alloc_rates(w, opts.quick ? 3 : 7);
  std::cerr << "bench: alloc: through the engine\n";
  auto engine = engine_alloc_rates(opts, s, w, opts.quick ? 3 : 5, opts.quick ? 0.6 : 2.0,
                                   rep.request_rtts);
  if (engine.empty())
    rep.error = "the engine rows did not run (cafshmd or connect failed)";
  rep.rates = engine;
  rep.rates.insert(rep.rates.end(), local.begin(), local.end());
  std::cerr << "bench: alloc: fragmentation\n";
  const uint64_t arena = 256ull << 20;
  const size_t frag_ops = opts.quick ? 60'000 : 400'000;
  rep.frag_workload = std::to_string(frag_ops)
                      + " operations on a 256 MiB arena; sizes log-uniform 4 KiB .. 4 MiB; a "
                        "random walk of requested live bytes around the fill target (below: 60 % "
                        "allocations, above: 60 % frees); the same sequence for both allocators";
  rep.frag = fragmentation(arena, {0.35, 0.6}, frag_ops, 7, false);
  // the same with every size rounded up to a power of two
  for (auto& f : fragmentation(arena, {0.6}, frag_ops, 7, true)) {
    f.allocator += ", power-of-two sizes";
    rep.frag.push_back(f);
  }
  return rep;
}

} // namespace bench
