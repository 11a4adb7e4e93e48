// Row 7: an arena that grows. An engine with a 64 MiB arena and max_arena 4 GiB: the time to add
// (and remove) a data segment in-process (memory_manager, no messages), a 1 GiB block served
// through cafshmd and mapped by a client, and the pipeline example at 3840x2160 through the same
// cafshmd. A /dev/shm too small for the 1 GiB block scales it down, and the report says so.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "bench.hpp"
#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "memory_manager.hpp"
#include "processes.hpp"
#include "shm_segment.hpp"

namespace bench {

namespace {

using clock_type = std::chrono::steady_clock;
constexpr uint64_t mib = uint64_t{1} << 20;
constexpr uint64_t gib = mib << 10;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// The in-process part: one memory_manager (scrub on_free, the default), timed around the
// requests that add or remove a segment. A block whose free removes its segment is not scrubbed
// (its pages leave with the segment), so the removals time munmap and shm_unlink.
void measure_in_process(growth_report& g, int runs) {
  cafshm::engine_settings s;
  s.name = unique_name("cafshm-bench-g");
  s.arena_bytes = g.arena;
  s.max_arena_bytes = g.max_arena;
  auto mm = cafshm::memory_manager::create(s);
  if (!mm) {
    g.error = "memory_manager: " + cafshm::describe(mm.error());
    return;
  }
  auto& m = **mm;
  auto p = m.register_process("bench-growth", ::getpid(), 0);
  if (!p) {
    g.error = "register: " + cafshm::describe(p.error());
    return;
  }
  auto me = p->session;
  std::vector<double> add_big, remove_big, add_step, remove_step, plain;
  for (int i = 0; i < 1000; ++i) { // allocate+free that fit: the reference
    auto t0 = clock_type::now();
    auto r = m.allocate(me, 4096);
    if (!r || !m.free(me, *r))
      break;
    plain.push_back(ms_since(t0) * 1000);
  }
  for (int i = 0; i < runs; ++i) {
    auto t0 = clock_type::now();
    auto big = m.allocate(me, g.big_block);
    if (!big) {
      g.error = "in-process allocate of the large block: " + cafshm::describe(big.error());
      return;
    }
    add_big.push_back(ms_since(t0));
    t0 = clock_type::now();
    if (!m.free(me, *big))
      break;
    remove_big.push_back(ms_since(t0));
  }
  for (int i = 0; i < runs * 4; ++i) {
    auto fill = m.allocate(me, g.arena); // the initial segment, full
    if (!fill) {
      g.error = "in-process fill: " + cafshm::describe(fill.error());
      return;
    }
    auto t0 = clock_type::now();
    auto small = m.allocate(me, 4096); // nothing fits: a segment of `arena` bytes
    if (!small) {
      g.error = "in-process allocate past the full arena: " + cafshm::describe(small.error());
      return;
    }
    add_step.push_back(ms_since(t0));
    (void) m.free(me, *fill); // scrubbed; the added segment still holds `small`
    t0 = clock_type::now();
    (void) m.free(me, *small); // empties the added segment, the rest has room: it goes
    remove_step.push_back(ms_since(t0));
  }
  if (m.live_segments() != 1)
    g.error = "in-process: " + std::to_string(m.live_segments()) + " segments left at the end";
  g.add_big_ms = summarize(add_big);
  g.remove_big_ms = summarize(remove_big);
  g.add_step_ms = summarize(add_step);
  g.remove_step_ms = summarize(remove_step);
  g.plain_alloc_us = summarize(plain);
}

// Through cafshmd: the large block allocated, mapped, touched at both ends, freed.
void measure_engine(growth_report& g, const daemon_process& d, int runs) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cafshm::settings st;
  st.role = cafshm::role::client;
  cafshm::module::configure(cfg, st);
  caf::actor_system sys{cfg};
  auto c = cafshm::client::connect(sys, cafshm::endpoint{"127.0.0.1", d.port()}, "bench-growth");
  if (!c) {
    g.error = "connect: " + cafshm::describe(c.error());
    return;
  }
  std::vector<double> alloc_ms, map_ms;
  g.big_bytes_ok = true;
  for (int i = 0; i < runs; ++i) {
    auto t0 = clock_type::now();
    auto big = c->allocate(g.big_block);
    if (!big) {
      g.error = "client::allocate of the large block: " + cafshm::describe(big.error());
      return;
    }
    alloc_ms.push_back(ms_since(t0));
    if (auto now = c->stats())
      g.segments_with_big = static_cast<uint32_t>(now->data_segments.size());
    t0 = clock_type::now();
    auto view = c->map(*big, cafshm::access_mode::read_write);
    if (!view) {
      g.error = "client::map of the large block: " + cafshm::describe(view.error());
      return;
    }
    map_ms.push_back(ms_since(t0));
    auto* bytes = reinterpret_cast<char*>(view->data());
    bytes[0] = 'a';
    bytes[g.big_block - 1] = 'z';
    (void) c->unmap(std::move(*view));
    auto first = c->read(*big, 0, 1);
    auto last = c->read(*big, g.big_block - 1, 1);
    g.big_bytes_ok = g.big_bytes_ok && first && last && (*first)[0] == 'a' && (*last)[0] == 'z';
    (void) c->free(*big);
  }
  if (auto now = c->stats())
    g.segments_after = static_cast<uint32_t>(now->data_segments.size());
  g.engine_big_alloc_ms = summarize(alloc_ms);
  g.engine_map_ms = summarize(map_ms);
  (void) c->close();
}

// The pipeline example at 3840x2160 (24.9 MB frames, two fit the initial arena).
void measure_pipeline(growth_report& g, const options& opts, const daemon_process& d, int runs) {
  g.frames = opts.quick ? 40 : 120;
  std::vector<double> fps;
  for (int r = 0; r < runs; ++r) {
    child_process p{{opts.bin_dir + "/cafshm-pipeline", "--transport", "shm", "--frames",
             std::to_string(g.frames), "--width", "3840", "--height", "2160", "--engine",
             d.address_text(), "--deadline", "120"}};
    auto rest = p.wait_for_line("pipeline transport=", std::chrono::seconds(150));
    auto status = p.wait(std::chrono::seconds(30));
    if (!rest) {
      g.error = "pipeline: no result line (exit status "
                + (status ? std::to_string(*status) : std::string{"?"}) + ")";
      return;
    }
    char t[16] = {0};
    unsigned n = 0;
    double x = 0, y = 0;
    if (std::sscanf(rest->c_str(), "%15s frames=%u fps=%lf GBps=%lf", t, &n, &x, &y) != 4) {
      g.error = "pipeline: cannot parse '" + *rest + "'";
      return;
    }
    fps.push_back(x);
  }
  g.fps = summarize(fps);
}

} // namespace

growth_report run_growth(const options& opts) {
  growth_report g;
  g.arena = 64 * mib;
  g.max_arena = 4 * gib;
  g.big_block = 1 * gib;
  g.shm_free = cafshm::query_shm_space().free_bytes;
  // Room for the initial arena, the large block twice (engine and in-process parts run one after
  // the other, never at once) and the pipeline's frames in flight, with a margin for others.
  uint64_t need = g.arena + g.big_block + 512 * mib;
  if (g.shm_free < need) {
    uint64_t fits = g.shm_free > g.arena + 512 * mib ? g.shm_free - g.arena - 512 * mib : 0;
    g.big_block = fits / (64 * mib) * (64 * mib);
    g.scaled_note = "/dev/shm had " + human_size(g.shm_free / mib * mib)
                    + " free: the large block is " + human_size(g.big_block)
                    + " instead of 1GiB";
    if (g.big_block == 0) {
      g.error = g.scaled_note + ": too little to run the row";
      return g;
    }
  }
  {
    cafshm::engine_settings s;
    s.arena_bytes = g.arena;
    s.max_arena_bytes = g.max_arena;
    g.admin_bytes = cafshm::memory_manager::admin_bytes(s);
  }
  const int runs = opts.quick ? 3 : 7;
  std::cerr << "bench: growth: in-process\n";
  measure_in_process(g, runs);
  if (!g.error.empty())
    return g;
  std::cerr << "bench: growth: through cafshmd\n";
  auto engine = engine_options(opts.bin_dir, "64MiB");
  engine.engine_yaml += "  max_arena: 4GiB\n";
  daemon_process d{unique_name("cafshm-bench-g"), engine};
  if (!d.ready()) {
    g.error = "cafshmd did not start";
    return g;
  }
  measure_engine(g, d, runs);
  if (!g.error.empty())
    return g;
  std::cerr << "bench: growth: pipeline 3840x2160\n";
  measure_pipeline(g, opts, d, opts.quick ? 2 : 3);
  // The engine's own figures over the whole row.
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cafshm::settings st;
  st.role = cafshm::role::client;
  cafshm::module::configure(cfg, st);
  caf::actor_system sys{cfg};
  if (auto c = cafshm::client::connect(sys, cafshm::endpoint{"127.0.0.1", d.port()},
                                       "bench-growth-stats")) {
    if (auto now = c->stats()) {
      g.segments_added = now->segments_added;
      for (const auto& cap : now->capacities)
        if (cap.name == "arena bytes")
          g.peak_arena = cap.peak;
    }
    (void) c->close();
  }
  return g;
}

} // namespace bench
