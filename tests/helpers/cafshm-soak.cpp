// The soak test driver (scripts/soak.sh): a cafshmd, CLIENTS cafshm-stress-client processes that
// allocate, write, hand blocks to each other with an XXH3 checksum of every payload (verified by
// the receiver) and free, for MINUTES minutes; meanwhile random clients are killed with SIGKILL
// and restarted. With --engine-kill-every-ms, the engine (cafshmd) is killed with SIGKILL about
// that often too and restarted on its port: the clients (then run with --ride-through) re-attach
// to the engine that adopts the segments; a restart that does not adopt (its predecessor died in
// the middle of a change) must say so, and then every client is started anew.
// At the end every client stops cleanly and the driver verifies:
//   - no checksum mismatch, no request that failed although it must not, no unexpected exit;
//   - exact accounting: the engine holds nothing but the driver's own registration (no block,
//     grant or name; free bytes == arena; the allocator fully merged into one free block), and the admin
//     memory, checked from the outside, holds every invariant;
//   - after cafshmd stops (SIGTERM, exit 0) no segment is left in /dev/shm.
// Prints a summary; exit code 0 only if everything held.
//
// usage: cafshm-soak [--minutes N] [--seconds N] [--clients N] [--seed N] [--arena SIZE]
//                    [--kill-every-ms N] [--engine-kill-every-ms N]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "../support/admin_snapshot.hpp"
#include "testing/child_process.hpp"
#include "testing/daemon_announcement.hpp"
#include "../support/program_options.hpp"
#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using cafshm::test::child_process;
using clock_type = std::chrono::steady_clock;

namespace {

std::filesystem::path bin_dir() {
  return std::filesystem::canonical("/proc/self/exe").parent_path();
}

uint64_t field(const std::string& line, const std::string& key) {
  auto at = line.find(key + "=");
  return at == std::string::npos ? 0 : std::stoull(line.substr(at + key.size() + 1));
}

struct totals {
  uint64_t ops = 0, sent = 0, received = 0, mismatches = 0, errors = 0;
};

// One client slot: the current incarnation and what earlier, killed incarnations reported.
struct slot {
  std::unique_ptr<child_process> process;
  totals done;     // of finished incarnations
  totals current;  // latest report of the running one
  int incarnations = 0;
  bool restarted = false; // said engine-restarted: its engine came back without its session
};

int failures = 0;

void fail(const std::string& what) {
  ++failures;
  std::cout << "soak: FAIL: " << what << std::endl;
}

} // namespace

int main(int argc, char** argv) {
  double minutes = std::stod(test::option(argc, argv, "--minutes", "1"));
  if (auto s = test::option(argc, argv, "--seconds", ""); !s.empty())
    minutes = std::stod(s) / 60;
  int clients = std::stoi(test::option(argc, argv, "--clients", "8"));
  uint64_t seed = std::stoull(test::option(argc, argv, "--seed", std::to_string(std::random_device{}())));
  auto arena = test::option(argc, argv, "--arena", "256MiB");
  auto kill_every = std::chrono::milliseconds{std::stoi(test::option(argc, argv, "--kill-every-ms", "3000"))};
  auto engine_kill_every =
    std::chrono::milliseconds{std::stoi(test::option(argc, argv, "--engine-kill-every-ms", "0"))};
  std::mt19937_64 rng{seed};
  std::cout << "soak: " << minutes << " min, " << clients << " clients, seed " << seed
            << ", a client killed about every " << kill_every.count() << " ms";
  if (engine_kill_every.count() > 0)
    std::cout << ", the engine about every " << engine_kill_every.count() << " ms";
  std::cout << std::endl;

  // The engine.
  auto name = "cafshm-soak-" + std::to_string(::getpid());
  auto config = std::filesystem::temp_directory_path() / (name + ".yaml");
  {
    std::ofstream out{config};
    out << "engine:\n  name: " << name << "\n  arena: " << arena
        << "\n  max_blocks: 4096\n  max_grants: 2048\n  max_names: 1024\n"
        << "  liveness_interval: 100ms\n  listen: {host: 127.0.0.1, port: 0}\n";
  }
  auto bins = bin_dir();
  // Starts cafshmd on `port` (0: any); its listening line, and what it said about the segments
  // it found (the line before, "cafshmd: adopted ..." or "cafshmd: not adopting ...").
  std::unique_ptr<child_process> daemon_ptr;
  std::string start_report;
  auto start_daemon = [&](uint16_t port) -> std::optional<std::string> {
    daemon_ptr = std::make_unique<child_process>(std::vector<std::string>{
      (bins / "cafshmd").string(), "--config", config.string(), "--port", std::to_string(port)});
    start_report.clear();
    auto deadline = clock_type::now() + 30s;
    while (clock_type::now() < deadline) {
      auto line = daemon_ptr->read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - clock_type::now()));
      if (!line)
        break;
      if (line->rfind("cafshmd listening on ", 0) == 0)
        return line->substr(21);
      if (line->rfind("cafshmd: ", 0) == 0)
        start_report = line->substr(9);
    }
    return std::nullopt;
  };
  auto listening = start_daemon(0);
  if (!listening) {
    std::cout << "soak: FAIL: cafshmd did not start" << std::endl;
    return 1;
  }
  auto announced = test::parse_announcement(*listening);

  // The driver's own connection, for statistics.
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cfg.set("middleman.attach-utility-actors", true); // the observer reconnects (client::connect)
  settings s;
  s.role = role::client;
  module::configure(cfg, s);
  auto sys = std::make_unique<caf::actor_system>(cfg);
  if (!announced) {
    std::cout << "soak: FAIL: cafshmd announced '" << *listening << "'" << std::endl;
    return 1;
  }
  auto address = announced->listen.host + ":" + std::to_string(announced->listen.port);
  auto observer = client::connect(*sys, announced->listen, "soak-observer");
  if (!observer) {
    std::cout << "soak: FAIL: " << describe(observer.error()) << std::endl;
    return 1;
  }

  std::vector<slot> slots(static_cast<size_t>(clients));
  auto start_client = [&](int i) {
    auto& sl = slots[static_cast<size_t>(i)];
    std::vector<std::string> argv{
      (bins / "cafshm-stress-client").string(), "--engine", address, "--prefix", "soak",
      "--index", std::to_string(i), "--peers", std::to_string(clients), "--seed",
      std::to_string(rng()), "--report-ms", "250"};
    if (engine_kill_every.count() > 0)
      argv.push_back("--ride-through");
    sl.process = std::make_unique<child_process>(std::move(argv));
    sl.current = {};
    sl.restarted = false;
    ++sl.incarnations;
    if (!sl.process->wait_for_line("running ", 30s))
      fail("client " + std::to_string(i) + " did not start");
  };
  auto take = [&](slot& sl, const std::string& line, int i) {
    if (line.rfind("stats ", 0) == 0) {
      sl.current = {field(line, "ops"), field(line, "sent"), field(line, "received"),
                    field(line, "mismatches"), field(line, "errors")};
    } else if (line.rfind("MISMATCH", 0) == 0 || line.rfind("ERROR", 0) == 0) {
      std::cout << "soak: client " << i << ": " << line << std::endl;
    } else if (line == "engine-lost") {
      fail("client " + std::to_string(i) + " lost the engine");
    } else if (line == "engine-restarted") {
      sl.restarted = true;
    }
  };
  auto retire = [](slot& sl) {
    sl.done.ops += sl.current.ops;
    sl.done.sent += sl.current.sent;
    sl.done.received += sl.current.received;
    sl.done.mismatches += sl.current.mismatches;
    sl.done.errors += sl.current.errors;
    sl.current = {};
  };
  for (int i = 0; i < clients; ++i)
    start_client(i);

  // The run: read every client's reports; kill and restart one now and then.
  uint64_t kills = 0, engine_kills = 0, adoptions = 0, fresh_starts = 0;
  auto begin = clock_type::now();
  auto end = begin + std::chrono::milliseconds(static_cast<int64_t>(minutes * 60000));
  std::exponential_distribution<double> gap{1.0 / static_cast<double>(kill_every.count())};
  auto next_kill = begin + std::chrono::milliseconds(static_cast<int64_t>(gap(rng)));
  auto next_status = begin + 10s;
  auto next_engine_kill =
    engine_kill_every.count() > 0
      ? begin + std::chrono::milliseconds(static_cast<int64_t>(
          std::exponential_distribution<double>{1.0 / static_cast<double>(engine_kill_every.count())}(rng)))
      : clock_type::time_point::max();
  while (clock_type::now() < end && failures == 0) {
    for (int i = 0; i < clients; ++i) {
      auto& sl = slots[static_cast<size_t>(i)];
      while (auto line = sl.process->read_line(2ms))
        take(sl, *line, i);
      if (!sl.process->running() || sl.process->wait(0ms)) {
        while (auto line = sl.process->read_line(0ms))
          take(sl, *line, i);
        if (sl.restarted) { // its engine started fresh: a new incarnation registers anew
          retire(sl);
          start_client(i);
          continue;
        }
        fail("client " + std::to_string(i) + " ended unexpectedly");
        break;
      }
    }
    if (clock_type::now() >= next_engine_kill && failures == 0) {
      daemon_ptr->kill(SIGKILL);
      daemon_ptr->wait(10s);
      ++engine_kills;
      if (!start_daemon(announced->listen.port)) {
        fail("cafshmd did not start again");
        break;
      }
      if (start_report.rfind("adopted the segments of a dead engine", 0) == 0) {
        ++adoptions;
      } else if (start_report.find("died in the middle of a change") != std::string::npos) {
        ++fresh_starts; // the clients end with engine-restarted and are started anew
        observer = caf::error{};
        for (int tries = 0; tries < 100 && !observer; ++tries)
          observer = client::connect(*sys, announced->listen, "soak-observer");
        if (!observer) {
          fail("the observer cannot register with the fresh engine");
          break;
        }
      } else {
        fail("the restarted engine said: " + start_report);
        break;
      }
      next_engine_kill = clock_type::now() + std::chrono::milliseconds(static_cast<int64_t>(
        std::exponential_distribution<double>{1.0 / static_cast<double>(engine_kill_every.count())}(rng)));
    }
    if (!daemon_ptr->running() || daemon_ptr->wait(0ms)) {
      fail("cafshmd ended unexpectedly");
      break;
    }
    auto now = clock_type::now();
    if (now >= next_kill) {
      int victim = static_cast<int>(rng() % static_cast<uint64_t>(clients));
      auto& sl = slots[static_cast<size_t>(victim)];
      sl.process->kill(SIGKILL);
      sl.process->wait(10s);
      while (auto line = sl.process->read_line(0ms))
        take(sl, *line, victim);
      retire(sl);
      ++kills;
      start_client(victim);
      next_kill = now + std::chrono::milliseconds(static_cast<int64_t>(gap(rng)));
    }
    if (now >= next_status) {
      totals t;
      for (auto& sl : slots) {
        t.ops += sl.done.ops + sl.current.ops;
        t.received += sl.done.received + sl.current.received;
      }
      auto st = observer->stats();
      std::cout << "soak: " << std::chrono::duration_cast<std::chrono::seconds>(now - begin).count()
                << " s: " << t.ops << " ops, " << t.received << " hand-offs verified, " << kills
                << " kills";
      if (st)
        std::cout << "; engine: " << st->processes << " processes, " << st->blocks
                  << " blocks, " << (st->used_bytes >> 20) << " MiB used";
      std::cout << std::endl;
      next_status += 10s;
    }
  }

  // Clean stop of every client: each unregisters, the engine reclaims what it still held.
  for (auto& sl : slots)
    sl.process->close_stdin();
  for (int i = 0; i < clients; ++i) {
    auto& sl = slots[static_cast<size_t>(i)];
    while (auto line = sl.process->read_line(30s))
      take(sl, *line, i);
    auto st = sl.process->wait(30s);
    if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      fail("client " + std::to_string(i) + " did not stop cleanly (status "
           + (st ? std::to_string(*st) : std::string{"none"}) + ")");
    retire(sl);
  }
  totals t;
  int incarnations = 0;
  for (auto& sl : slots) {
    t.ops += sl.done.ops;
    t.sent += sl.done.sent;
    t.received += sl.done.received;
    t.mismatches += sl.done.mismatches;
    t.errors += sl.done.errors;
    incarnations += sl.incarnations;
  }
  if (t.mismatches != 0)
    fail(std::to_string(t.mismatches) + " checksum mismatches");
  if (t.errors != 0)
    fail(std::to_string(t.errors) + " requests failed that must not");
  if (t.received == 0)
    fail("no hand-off was verified");

  // Exact accounting: only the observer is left, holding nothing.
  auto deadline = clock_type::now() + 10s;
  engine_stats last;
  bool exact = false;
  while (!exact && clock_type::now() < deadline) {
    auto st = observer->stats();
    if (!st) { // re-attaching after an engine restart
      std::this_thread::sleep_for(10ms);
      continue;
    }
    last = *st;
    exact = st->processes == 1 && st->blocks == 0 && st->grants == 0 && st->names == 0
            && st->draining_blocks == 0 && st->used_bytes == 0
            && st->free_bytes == st->arena_bytes && st->largest_free_block == st->arena_bytes;
    if (!exact)
      std::this_thread::sleep_for(10ms);
  }
  if (!exact)
    fail("accounting not back to empty: " + std::to_string(last.processes) + " processes, "
         + std::to_string(last.blocks) + " blocks, " + std::to_string(last.grants) + " grants, "
         + std::to_string(last.names) + " names, " + std::to_string(last.free_bytes) + " of "
         + std::to_string(last.arena_bytes) + " bytes free");
  if (auto why = test::check_admin_memory(name); !why.empty())
    fail("admin memory: " + why);
  observer->close();
  observer = caf::error{};
  sys.reset();

  daemon_ptr->kill(SIGTERM);
  auto st = daemon_ptr->wait(30s);
  if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    fail("cafshmd did not stop cleanly");
  bool stale = shm_segment::exists(memory_manager::data_segment_name(name))
               || shm_segment::exists(memory_manager::admin_segment_name(name));
  if (stale) {
    fail("segments left in /dev/shm");
    shm_segment::remove(memory_manager::data_segment_name(name));
    shm_segment::remove(memory_manager::admin_segment_name(name));
    ::unlink(("/dev/shm/" + name + ".sock").c_str()); // the door of a killed engine
  }
  std::filesystem::remove(config);

  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(clock_type::now() - begin);
  std::cout << "soak: " << seconds.count() << " s, " << t.ops << " operations, " << t.sent
            << " hand-offs sent, " << t.received << " received and verified, " << kills
            << " faults injected (client SIGKILLs, " << incarnations
            << " client processes in all), " << engine_kills << " engine SIGKILLs (" << adoptions
            << " restarts adopted the segments, " << fresh_starts
            << " started fresh after an engine died mid-change), " << t.mismatches << " checksum mismatches, "
            << t.errors << " errors; accounting " << (exact ? "exact" : "WRONG")
            << "; stale segments: " << (stale ? "YES" : "none") << std::endl;
  std::cout << (failures == 0 ? "soak: PASS" : "soak: FAIL") << std::endl;
  return failures == 0 ? 0 : 1;
}
