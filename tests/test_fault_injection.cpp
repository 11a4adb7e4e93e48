// Fault injection: many rounds in a row, with random timing, a fault in the middle of real work:
//   - client processes (cafshm-stress-client: allocate, write, views, copy, share, hand-offs with
//     checksums) killed with SIGKILL;
//   - the engine (cafshmd) killed with SIGKILL and restarted over its segments, which it adopts
//     (clients that end with it are reclaimed; test_engine_restart.cpp has clients that live on);
//   - a remote peer engine killed in the middle of a transmit, on either side.
// After every fault: no block lost or leaked (the engine's statistics return exactly to the
// survivors' values, and the admin memory, checked from the outside, holds the allocator's
// invariants and exact accounting), the surviving processes keep working, and once everything is
// stopped no segment is left in /dev/shm. The random seed is printed; CAFSHM_FAULT_SEED repeats it.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "support/admin_snapshot.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"
#include "support/stress_worker.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::check_admin_memory;
using test::child_process;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;
using test::worker;
using test::same_usage;
using test::usage;
using test::stress_bin;
using test::segments_exist;

namespace {

uint64_t seed() {
  static const uint64_t value = [] {
    const char* env = std::getenv("CAFSHM_FAULT_SEED");
    uint64_t s = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    MESSAGE("fault injection seed (CAFSHM_FAULT_SEED): " << s);
    return s;
  }();
  return value;
}

void survivor_works(client& c, const block_ref& kept, uint64_t kept_hash) {
  auto ref = c.allocate(12345);
  REQUIRE(ref);
  std::string text = "still alive";
  REQUIRE(c.write(*ref, 100, text));
  auto back = c.read(*ref, 100, text.size());
  REQUIRE(back);
  CHECK(std::string(back->begin(), back->end()) == text);
  REQUIRE(c.free(*ref));
  auto view = c.map(kept, access_mode::read);
  REQUIRE(view);
  CHECK(XXH3_64bits(view->data(), view->size()) == kept_hash);
  REQUIRE(c.unmap(std::move(*view)));
}

} // namespace

TEST_CASE("fault injection: clients killed with SIGKILL mid-work, 20 rounds: nothing lost") {
  std::mt19937_64 rng{seed()};
  daemon_process d{unique_name("cafshm-test-fi")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "survivor");
  REQUIRE(me);
  // The survivor holds a block of known content through every round.
  auto kept = me->allocate(100000);
  REQUIRE(kept);
  std::string pattern(100000, 'k');
  REQUIRE(me->write(*kept, 0, pattern));
  auto kept_hash = XXH3_64bits(pattern.data(), pattern.size());
  auto baseline = me->stats();
  REQUIRE(baseline);
  int kills = 0;
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    constexpr int n = 3;
    auto prefix = "fi" + std::to_string(round);
    std::vector<std::unique_ptr<worker>> workers;
    for (int i = 0; i < n; ++i)
      workers.push_back(std::make_unique<worker>(d, prefix, i, n, rng()));
    for (auto& w : workers)
      REQUIRE(w->running());
    for (auto& w : workers) // everyone is busy: allocating, writing, handing off
      REQUIRE(w->progressed_beyond(static_cast<uint64_t>(rng() % 200)));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100)); // random moment
    auto victims = 1 + rng() % n; // the first `victims` workers die
    for (uint64_t i = 0; i < victims; ++i) {
      workers[i]->process->kill(SIGKILL);
      REQUIRE(workers[i]->process->wait(20s));
      ++kills;
    }
    for (uint64_t i = victims; i < n; ++i) { // survivors keep working, then stop cleanly
      auto& w = *workers[i];
      REQUIRE(w.progressed_beyond(w.ops + 50));
      auto st = w.stop();
      REQUIRE(st);
      CHECK(WIFEXITED(*st));
      CHECK(WEXITSTATUS(*st) == 0);
    }
    for (auto& w : workers)
      CHECK_MESSAGE(w->problems.empty(), w->report());
    engine_stats last;
    bool back = eventually(*me, 10s, [&](const engine_stats& st) {
      last = st;
      return same_usage(st, *baseline);
    });
    CHECK_MESSAGE(back, "after the kills: " << usage(last) << "; before: " << usage(*baseline));
    CHECK(check_admin_memory(d.name()) == "");
    survivor_works(*me, *kept, kept_hash);
  }
  MESSAGE(kills << " clients killed");
  REQUIRE(me->free(*kept));
  me->close();
  auto st = d.stop();
  REQUIRE(st);
  CHECK(WIFEXITED(*st));
  CHECK(WEXITSTATUS(*st) == 0);
  CHECK_FALSE(segments_exist(d.name()));
}

// Processes that end when their engine goes away (stress clients without --ride-through) are
// reclaimed by the engine that adopts the segments; tests/test_engine_restart.cpp has clients
// that ride through.
TEST_CASE("fault injection: the engine killed with SIGKILL mid-work and restarted, 6 rounds") {
  std::mt19937_64 rng{seed() + 1};
  daemon_process d{unique_name("cafshm-test-fi"), "32MiB"};
  REQUIRE(d.ready());
  auto port = d.port();
  client_system cs;
  client_options opts;
  opts.timeout = 1s;
  for (int round = 0; round < 6; ++round) {
    CAPTURE(round);
    auto me = client::connect(cs.sys, d.address(), "survivor", opts);
    REQUIRE(me);
    engine_stats fresh;
    CHECK_MESSAGE(eventually(*me, 20s,
                             [&](const engine_stats& st) {
                               fresh = st;
                               return st.free_bytes == st.arena_bytes && st.blocks == 0
                                      && st.processes == 1;
                             }),
                  usage(fresh));
    CHECK(check_admin_memory(d.name()) == "");
    std::vector<std::unique_ptr<worker>> workers;
    for (int i = 0; i < 2; ++i)
      workers.push_back(
        std::make_unique<worker>(d, "fe" + std::to_string(round), i, 2, rng(), "1500"));
    for (auto& w : workers) {
      REQUIRE(w->running());
      REQUIRE(w->progressed_beyond(static_cast<uint64_t>(rng() % 200)));
    }
    auto ref = me->allocate(4096);
    REQUIRE(ref);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100)); // random moment
    d.kill_hard();
    CHECK(segments_exist(d.name())); // a killed engine cannot remove its segments
    auto r = me->allocate(4096);     // clients see the engine gone within their timeout
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::engine_unreachable);
    for (auto& w : workers) { // and so do the other processes: they report it and end
      auto st = w->stop();
      REQUIRE(st);
      CHECK(WIFEXITED(*st));
      CHECK(WEXITSTATUS(*st) == 3);
      CHECK_MESSAGE(w->problems.empty(), w->report());
    }
    REQUIRE(d.start(port)); // over the segments of the dead engine, on the same port
    MESSAGE(d.start_report());
    CHECK((d.start_report().rfind("adopted", 0) == 0
           || d.start_report().find("died in the middle of a change") != std::string::npos));
    // This round's client re-attaches (or learns its engine started fresh) before it closes:
    // a client closed while its engine is down keeps its slot until its process ends.
    auto settled = std::chrono::steady_clock::now() + 20s;
    while (!me->engine_up() && std::chrono::steady_clock::now() < settled) {
      if (auto st = me->stats(); !st && code_of(st.error()) == errc::engine_restarted)
        break;
      std::this_thread::sleep_for(2ms);
    }
  }
  auto me = client::connect(cs.sys, d.address(), "last", opts);
  REQUIRE(me);
  auto ref = me->allocate(4096);
  REQUIRE(ref);
  REQUIRE(me->close());
  auto st = d.stop();
  REQUIRE(st);
  CHECK(WIFEXITED(*st));
  CHECK(WEXITSTATUS(*st) == 0);
  CHECK_FALSE(segments_exist(d.name()));
}

TEST_CASE("fault injection: a peer engine killed mid-transmit, 8 rounds on either side") {
  std::mt19937_64 rng{seed() + 2};
  std::string yaml = "remote:\n  chunk: 64KiB\n  window: 1\n  cache: 0\n";
  std::unique_ptr<daemon_process> a, b;
  auto start = [&](std::unique_ptr<daemon_process>& d, const char* what) {
    d = std::make_unique<daemon_process>(unique_name(std::string{"cafshm-test-fi"} + what),
                                         "128MiB", 0, yaml);
    REQUIRE(d->ready());
  };
  start(a, "a");
  start(b, "b");
  client_system cs;
  client_options opts;
  opts.timeout = 2s;
  constexpr uint64_t size = 64 << 20; // 1024 chunks, one in flight: long enough to be cut
  int sender_kills = 0, receiver_kills = 0;
  for (int round = 0; round < 8; ++round) {
    CAPTURE(round);
    bool kill_receiver = rng() % 2 == 0;
    auto watch_a = client::connect(cs.sys, a->address(), "watch-a", opts);
    auto watch_b = client::connect(cs.sys, b->address(), "watch-b", opts);
    REQUIRE(watch_a);
    REQUIRE(watch_b);
    auto before_a = watch_a->stats();
    auto before_b = watch_b->stats();
    REQUIRE(before_a);
    REQUIRE(before_b);
    auto name = "fi-copy-" + std::to_string(round);
    worker sender{{stress_bin(), "--engine", a->address_text(), "--prefix", "tx", "--transmit",
                   b->address_text(), "--size", std::to_string(size), "--as", name}};
    REQUIRE(sender.process->wait_for_line("transmitting ", 30s));
    REQUIRE(eventually(*watch_b, 20s, [](const engine_stats& st) { return st.transmits_in == 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 30)); // random moment
    if (kill_receiver) {
      ++receiver_kills;
      b->kill_hard();
      // The sender's engine fails the transmit and holds nothing for it any more.
      auto outcome = sender.process->read_line(30s);
      REQUIRE(outcome);
      bool failed = outcome->rfind("transmit-failed", 0) == 0;
      CHECK_MESSAGE((failed || outcome->rfind("transmitted", 0) == 0), *outcome);
      if (failed)
        CHECK(*outcome == "transmit-failed peer_failure");
      auto st = sender.stop(); // unregisters: its block is reclaimed
      REQUIRE(st);
      CHECK(WEXITSTATUS(*st) == 0);
      engine_stats last;
      CHECK_MESSAGE(eventually(*watch_a, 10s,
                               [&](const engine_stats& s) {
                                 last = s;
                                 return same_usage(s, *before_a) && s.peers.empty();
                               }),
                    usage(last));
      CHECK(check_admin_memory(a->name()) == "");
      watch_b = caf::error{}; // its engine is gone
      b.reset();
      start(b, "b");
    } else {
      ++sender_kills;
      a->kill_hard();
      sender.process->kill(SIGKILL); // its engine is gone: its transmit can only time out
      sender.process->wait(10s);
      // The receiving engine drops the partial block (or keeps the complete copy, if the
      // transfer won the race; it is then removed here).
      if (auto copy = watch_b->lookup(name))
        REQUIRE(watch_b->remove(name));
      engine_stats last;
      CHECK_MESSAGE(eventually(*watch_b, 10s,
                               [&](const engine_stats& s) {
                                 last = s;
                                 return same_usage(s, *before_b);
                               }),
                    usage(last));
      CHECK(check_admin_memory(b->name()) == "");
      watch_a = caf::error{};
      a.reset();
      start(a, "a");
    }
  }
  MESSAGE(sender_kills << " senders and " << receiver_kills << " receivers killed");
  for (auto* d : {a.get(), b.get()}) {
    auto name = d->name();
    auto st = d->stop();
    REQUIRE(st);
    CHECK(WEXITSTATUS(*st) == 0);
    CHECK_FALSE(segments_exist(name));
  }
}
