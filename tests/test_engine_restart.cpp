// The engine (cafshmd) killed with SIGKILL and restarted over its segments, while its clients
// live: during each kind of request (allocate, map, transfer, share, write, copy, name) and while
// idle. The restarted engine adopts the segments; stress clients running with --ride-through and
// a client of this test process keep their sessions without registering again, their views keep
// working while the engine is down and keep their bytes, requests fail at once while it is down
// and work again after the re-attach; a client killed while the engine was down is reclaimed at
// adoption; accounting is exact afterwards (the admin memory checked from outside). A restarted
// engine that refuses to adopt (its predecessor died in the middle of a change to admin memory,
// or admin memory was corrupted) says why, starts fresh, and nothing old is readable:
// engine_restarted for old sessions, stale_block for old refs.
// The random seed is printed; CAFSHM_FAULT_SEED repeats a run.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <xxhash.h>

#include "admin_layout.hpp"
#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "support/admin_snapshot.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"
#include "support/stress_worker.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::check_admin_memory;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::same_usage;
using test::segments_exist;
using test::unique_name;
using test::usage;
using test::worker;

namespace {

uint64_t seed() {
  static const uint64_t value = [] {
    const char* env = std::getenv("CAFSHM_FAULT_SEED");
    uint64_t s = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    MESSAGE("engine restart seed (CAFSHM_FAULT_SEED): " << s);
    return s;
  }();
  return value;
}

// Waits until `pred` holds, polling the client's own state (no request), up to `limit`.
template <class Pred>
bool within(std::chrono::milliseconds limit, Pred pred) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string mid_change = "its engine died in the middle of a change to admin memory";

// This process's own client: a block it holds through every round, mapped read-write the whole
// time, whose bytes it changes through the view while the engine is down.
struct survivor {
  client me;
  block_ref kept;
  block_view view;
  uint64_t hash = 0;

  static survivor make(caf::actor_system& sys, const daemon_process& d) {
    client_options opts;
    opts.timeout = 2s;
    auto c = client::connect(sys, d.address(), "survivor", opts);
    REQUIRE(c);
    auto kept = c->allocate(100000);
    REQUIRE(kept);
    auto view = c->map(*kept, access_mode::read_write);
    REQUIRE(view);
    std::memset(view->data(), 'k', view->size());
    return {std::move(*c), *kept, std::move(*view), XXH3_64bits(view->data(), view->size())};
  }

  void rewrite(std::mt19937_64& rng) {
    for (size_t i = 0; i < view.size(); ++i)
      view.data()[i] = static_cast<std::byte>(rng());
    hash = XXH3_64bits(view.data(), view.size());
  }

  // The block's bytes as the engine holds them match what the view wrote.
  bool bytes_kept() {
    auto bytes = me.read(kept, 0, kept.size);
    return bytes && XXH3_64bits(bytes->data(), bytes->size()) == hash
           && XXH3_64bits(view.data(), view.size()) == hash;
  }
};

} // namespace

TEST_CASE("engine restart: SIGKILL during each kind of request and idle, 24 rounds: adopted, "
          "clients ride through") {
  std::mt19937_64 rng{seed()};
  daemon_process d{unique_name("cafshm-test-restart"), "32MiB"};
  REQUIRE(d.ready());
  auto port = d.port();
  client_system cs;
  auto s = std::make_unique<survivor>(survivor::make(cs.sys, d));
  // Observes the survivor's engine state: every down is followed by an up (or a gone).
  std::vector<std::string> events;
  std::mutex events_mtx;
  auto observer = cs.sys.spawn([&](caf::event_based_actor*) -> caf::behavior {
    auto note = [&](const char* what) {
      std::lock_guard<std::mutex> guard{events_mtx};
      events.emplace_back(what);
    };
    return {[=](engine_down_atom, process_id) { note("down"); },
            [=](engine_up_atom, process_id) { note("up"); },
            [=](engine_gone_atom, process_id) { note("gone"); }};
  });
  s->me.on_engine_state(observer);
  auto baseline = s->me.stats();
  REQUIRE(baseline);
  const std::vector<std::string> kinds{"allocate", "map",  "transfer", "share",
                                       "write",    "copy", "name",     "idle"};
  int adopted = 0, fresh = 0, rides = 0;
  for (int round = 0; round < 24; ++round) {
    const auto& kind = kinds[static_cast<size_t>(round) % kinds.size()];
    CAPTURE(round);
    CAPTURE(kind);
    auto prefix = "rs" + std::to_string(round);
    std::vector<std::unique_ptr<worker>> workers;
    for (int i = 0; i < 2; ++i)
      workers.push_back(std::make_unique<worker>(
        d, prefix, i, 3, rng(), "2000", std::vector<std::string>{"--ops", kind, "--ride-through"}));
    // A third one dies while the engine is down: the adopting engine reclaims it.
    auto doomed = std::make_unique<worker>(d, prefix, 2, 3, rng(), "2000",
                                           std::vector<std::string>{"--ride-through"});
    for (auto& w : workers)
      REQUIRE(w->running());
    REQUIRE(doomed->running());
    for (auto& w : workers)
      REQUIRE(w->progressed_beyond(static_cast<uint64_t>(rng() % 100)));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50)); // random moment
    d.kill_hard();
    // Down: requests fail at once, the view keeps working.
    REQUIRE(within(10s, [&] { return !s->me.engine_up(); }));
    auto r = s->me.allocate(4096);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::engine_unreachable);
    CHECK(contains(describe(r.error()), "reconnects in the background"));
    s->rewrite(rng);
    doomed->process->kill(SIGKILL);
    REQUIRE(doomed->process->wait(20s));
    REQUIRE(d.start(port)); // over the segments of the dead engine, on the same port
    if (contains(d.start_report(), "adopted the segments of a dead engine")) {
      ++adopted;
      REQUIRE(within(20s, [&] { return s->me.engine_up(); }));
      auto now = s->me.stats();
      REQUIRE(now);
      CHECK(now->engine_id == s->kept.engine); // the same engine id: refs from before stay valid
      CHECK(s->bytes_kept());
      for (auto& w : workers) { // they continue, then stop cleanly
        REQUIRE(w->progressed_beyond(w->ops + 30, 30s));
        auto st = w->stop();
        REQUIRE(st);
        CHECK(WIFEXITED(*st));
        CHECK(WEXITSTATUS(*st) == 0);
        CHECK_MESSAGE(w->problems.empty(), w->report());
        CHECK_FALSE(w->restarted);
        rides += w->rides;
      }
      engine_stats last;
      bool back = eventually(s->me, 10s, [&](const engine_stats& st) {
        last = st;
        return same_usage(st, *baseline);
      });
      CHECK_MESSAGE(back, "after the restart: " << usage(last) << "; before: " << usage(*baseline));
    } else {
      // Refused only for the one reason a kill can cause; then nothing old survives.
      ++fresh;
      CHECK_MESSAGE(contains(d.start_report(), mid_change), d.start_report());
      REQUIRE(within(20s, [&] { return !s->me.engine_up(); }));
      auto gone = s->me.stats();
      REQUIRE(within(20s, [&] {
        gone = s->me.stats();
        return !gone && code_of(gone.error()) == errc::engine_restarted;
      }));
      for (auto& w : workers) {
        auto st = w->stop();
        REQUIRE(st);
        CHECK(WEXITSTATUS(*st) == 4);
        CHECK(w->restarted);
      }
      auto old = s->kept;
      s.reset();
      s = std::make_unique<survivor>(survivor::make(cs.sys, d));
      s->me.on_engine_state(observer);
      auto stale = s->me.read(old, 0, 1);
      REQUIRE_FALSE(stale);
      CHECK(code_of(stale.error()) == errc::stale_block);
      baseline = s->me.stats();
      REQUIRE(baseline);
    }
    CHECK(check_admin_memory(d.name()) == "");
  }
  MESSAGE(adopted << " restarts adopted the segments, " << fresh
                  << " found the engine dead in the middle of a change and started fresh; "
                  << rides << " re-attaches of stress clients");
  CHECK(adopted > 0);
  {
    std::lock_guard<std::mutex> guard{events_mtx};
    CHECK(std::count(events.begin(), events.end(), "down") >= 1);
    CHECK(std::count(events.begin(), events.end(), "up") >= 1);
  }
  caf::anon_send_exit(observer, caf::exit_reason::user_shutdown);
  s->view.close();
  REQUIRE(s->me.free(s->kept));
  REQUIRE(s->me.close());
  auto st = d.stop();
  REQUIRE(st);
  CHECK(WIFEXITED(*st));
  CHECK(WEXITSTATUS(*st) == 0);
  CHECK_FALSE(segments_exist(d.name()));
}

TEST_CASE("engine restart: corrupted admin memory is not adopted: the reason, a fresh engine, old "
          "sessions and refs rejected") {
  daemon_process d{unique_name("cafshm-test-restart"), "16MiB"};
  REQUIRE(d.ready());
  auto port = d.port();
  client_system cs;
  auto s = survivor::make(cs.sys, d);
  auto old_engine = s.me.info().engine_id;
  d.kill_hard();
  REQUIRE(within(10s, [&] { return !s.me.engine_up(); }));
  { // flip bytes of the survivor's block entry in the dead engine's admin memory
    auto seg = shm_segment::open(memory_manager::admin_segment_name(d.name()), true);
    REQUIRE(seg);
    admin::admin_header h;
    std::memcpy(&h, seg->data(), sizeof(h));
    auto* blocks = reinterpret_cast<admin::block_entry*>(seg->data() + h.block_offset);
    blocks[s.kept.block].refcount ^= 0x5a;
  }
  REQUIRE(d.start(port));
  MESSAGE(d.start_report());
  CHECK(contains(d.start_report(), "not adopting the segments of a dead engine: admin memory is "
                                   "inconsistent: block "
                                     + std::to_string(s.kept.block)
                                     + ": refcount differs from the open views; started fresh"));
  // The survivor's session is gone for good: engine_restarted, also for its view's block.
  caf::expected<engine_stats> gone{caf::error{}};
  REQUIRE(within(20s, [&] {
    gone = s.me.stats();
    return !gone && code_of(gone.error()) == errc::engine_restarted;
  }));
  auto r = s.me.read(s.kept, 0, 1);
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::engine_restarted);
  // A new client of the fresh engine: another engine id, the old ref is stale, nothing named.
  auto c = client::connect(cs.sys, d.address(), "after");
  REQUIRE(c);
  CHECK(c->info().engine_id != old_engine);
  auto old = c->read(s.kept, 0, 1);
  REQUIRE_FALSE(old);
  CHECK(code_of(old.error()) == errc::stale_block);
  auto st = c->stats();
  REQUIRE(st);
  CHECK(st->blocks == 0);
  CHECK(st->processes == 1);
  CHECK(check_admin_memory(d.name()) == "");
  REQUIRE(c->close());
  s.view.close();
  auto stopped = d.stop();
  REQUIRE(stopped);
  CHECK(WEXITSTATUS(*stopped) == 0);
  CHECK_FALSE(segments_exist(d.name()));
}

// An engine whose arena had grown is killed: the restarted engine reopens every data segment it
// added (named in the segment table of admin memory), the client's views of blocks in them keep
// working while it is down and after, its bytes are kept, and the segments go once emptied.
TEST_CASE("engine restart after growth: every added data segment is adopted with its blocks") {
  // arena 16 MiB growing to 64 MiB (the arena argument is the rest of that line of the config)
  daemon_process d{unique_name("cafshm-test-restart-grown"), "16MiB\n  max_arena: 64MiB"};
  REQUIRE(d.ready());
  auto port = d.port();
  client_system cs;
  client_options opts;
  opts.timeout = 30s; // reads of 10 MiB through the engine, also under sanitizers and load
  auto c = client::connect(cs.sys, d.address(), "grown", opts);
  REQUIRE(c);
  std::vector<block_ref> blocks;
  std::vector<block_view> views;
  std::vector<uint64_t> hashes;
  std::mt19937_64 rng{seed()};
  for (int i = 0; i < 3; ++i) { // 10 MiB each: one per segment
    auto b = c->allocate(10 << 20);
    REQUIRE(b);
    auto v = c->map(*b, access_mode::read_write);
    REQUIRE(v);
    for (size_t k = 0; k < v->size(); k += 4096)
      v->data()[k] = static_cast<std::byte>(rng());
    blocks.push_back(*b);
    views.push_back(std::move(*v));
  }
  auto st = c->stats();
  REQUIRE(st);
  REQUIRE(st->data_segments.size() == 3);
  CHECK(st->arena_bytes == 48 << 20);
  CHECK(st->max_arena_bytes == 64 << 20);
  d.kill_hard();
  REQUIRE(within(10s, [&] { return !c->engine_up(); }));
  for (auto& v : views) { // written while the engine is down
    for (size_t k = 1; k < v.size(); k += 4096)
      v.data()[k] = static_cast<std::byte>(rng());
    hashes.push_back(XXH3_64bits(v.data(), v.size()));
  }
  REQUIRE(d.start(port));
  MESSAGE(d.start_report());
  REQUIRE(contains(d.start_report(), "adopted the segments of a dead engine"));
  REQUIRE(within(20s, [&] { return c->engine_up(); }));
  CHECK(check_admin_memory(d.name()) == "");
  st = c->stats();
  REQUIRE(st);
  CHECK(st->data_segments.size() == 3);
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto bytes = c->read(blocks[i], 0, blocks[i].size);
    REQUIRE_MESSAGE(bytes, (bytes ? std::string{} : describe(bytes.error())));
    CHECK(XXH3_64bits(bytes->data(), bytes->size()) == hashes[i]);
  }
  // it grows further after the adoption, and shrinks again
  auto more = c->allocate(10 << 20);
  REQUIRE(more);
  CHECK(c->stats()->data_segments.size() == 4);
  REQUIRE(c->free(*more));
  for (size_t i = 0; i < blocks.size(); ++i) {
    REQUIRE(c->unmap(std::move(views[i])));
    REQUIRE(c->free(blocks[i]));
  }
  st = c->stats();
  REQUIRE(st);
  CHECK(st->data_segments.size() == 1);
  CHECK(st->arena_bytes == 16 << 20);
  CHECK(check_admin_memory(d.name()) == "");
  REQUIRE(c->close());
  auto stopped = d.stop();
  REQUIRE(stopped);
  CHECK(WEXITSTATUS(*stopped) == 0);
  CHECK_FALSE(segments_exist(d.name()));
  for (uint32_t i = 1; i < admin::max_segments; ++i)
    CHECK_FALSE(shm_segment::exists(memory_manager::added_segment_name(d.name(), i)));
}
