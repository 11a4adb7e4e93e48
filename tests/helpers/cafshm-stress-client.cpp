// A client process for fault injection (tests/test_fault_injection.cpp) and the soak test
// (cafshm-soak, scripts/soak.sh): registers as PREFIX-INDEX with a cafshmd and does random work
// until its stdin closes (or it is killed): allocate, write through requests, write through
// read-write views (sometimes left open for a while), copy, share and revoke, free, and hand-offs
// to its peers PREFIX-0 .. PREFIX-(COUNT-1):
//   the sender fills a block with random bytes, binds it to the name
//   "x<receiver>.<XXH3 hex>.<sender>.<seq>" and transfers it to the receiver's process slot;
//   the receiver finds names addressed to it in the engine's statistics, maps the block
//   read-only, compares the XXH3 of its bytes with the one in the name, and frees it.
// Options: --engine HOST:PORT --prefix P --index I --peers COUNT --seed N --max-block BYTES
// --report-ms MS --timeout-ms MS (per request), or --transmit (see transmit_once below).
// --ops KIND does mostly one kind of request (allocate, map, transfer, share, write, copy, name;
// idle: one light request every 20 ms, views held open) instead of the mix.
// --ride-through: when the engine goes away, keep going instead of ending: write new random
// bytes through every open view while the engine is down (and read them back there), wait for
// the client to re-attach, then check through the engine that those bytes are what it holds,
// and forget blocks that are no longer its own (a request in flight when the engine died may
// or may not have been applied).
// Output (stdout, one line each, flushed):
//   "running SLOT"                                  once registered
//   "stats ops=N sent=N received=N mismatches=N errors=N"   every --report-ms and at the end
//   "MISMATCH <name> <hash>"                        a hand-off whose bytes differ
//   "ERROR <what>"                                  a request that failed although it must not
//   "engine-lost"                                   the engine stopped answering (exit code 3)
//   "rode-through views=N"                          re-attached; N views verified (--ride-through)
//   "engine-restarted"                              the engine came back without this session
//                                                   (exit code 4, --ride-through)
// Exit code 0 after a clean stop (stdin closed): views closed, unregistered.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <xxhash.h>

#include "../support/program_options.hpp"
#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"

using namespace cafshm;
using namespace std::chrono_literals;

namespace {

std::string hex(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

std::atomic<bool> stop_requested{false}; // set when stdin closes

struct held {
  block_ref ref;
};

class worker {
public:
  worker(client& me, std::string prefix, int index, int peers, uint64_t seed, uint64_t max_block,
         std::string ops, bool ride_through)
    : me_(me), prefix_(std::move(prefix)), index_(index), peers_(peers), rng_(seed),
      max_block_(max_block), ops_kind_(std::move(ops)), ride_through_(ride_through) {
  }

  int run(const std::atomic<bool>& stop, std::chrono::milliseconds report) {
    auto next_report = std::chrono::steady_clock::now() + report;
    while (!stop.load()) {
      step();
      ++ops_;
      if (down_ && !ride())
        return restarted();
      if (lost_)
        return lost();
      if (std::chrono::steady_clock::now() >= next_report) {
        print_stats();
        next_report += report;
      }
    }
    views_.clear(); // unmaps; the engine counts them closed asynchronously
    print_stats();
    if (auto ok = me_.close(); !ok) {
      if (code_of(ok.error()) == errc::engine_unreachable)
        return lost();
      error("close: " + describe(ok.error()));
    }
    print_stats();
    return errors_ == 0 ? 0 : 1;
  }

private:
  uint64_t pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  void print_stats() {
    std::printf("stats ops=%llu sent=%llu received=%llu mismatches=%llu errors=%llu\n",
                static_cast<unsigned long long>(ops_), static_cast<unsigned long long>(sent_),
                static_cast<unsigned long long>(received_),
                static_cast<unsigned long long>(mismatches_),
                static_cast<unsigned long long>(errors_));
    std::fflush(stdout);
  }

  int lost() {
    std::printf("engine-lost\n");
    std::fflush(stdout);
    return 3;
  }

  int restarted() {
    std::printf("engine-restarted\n");
    std::fflush(stdout);
    return 4;
  }

  // The engine went away: new bytes through the open views while it is down, then wait for the
  // re-attach and check them through the engine. False if the session is lost for good.
  bool ride() {
    std::vector<std::pair<block_ref, uint64_t>> written;
    for (auto& v : views_) // all first: two views may map the same block
      fill(v.data(), v.size());
    for (auto& v : views_)
      written.emplace_back(v.ref(), XXH3_64bits(v.data(), v.size()));
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!me_.engine_up() && std::chrono::steady_clock::now() < deadline) {
      if (auto st = me_.stats(); !st && code_of(st.error()) == errc::engine_restarted)
        return false;
      std::this_thread::sleep_for(5ms); // polls the client's state, bounded by the deadline
    }
    if (!me_.engine_up())
      return false;
    down_ = false;
    for (const auto& [ref, hash] : written) {
      auto bytes = me_.read(ref, 0, ref.size);
      if (!bytes) {
        error("read after re-attach: " + describe(bytes.error()));
        continue;
      }
      if (XXH3_64bits(bytes->data(), bytes->size()) != hash) {
        ++mismatches_;
        std::printf("MISMATCH view-after-restart %s\n", to_string(ref).c_str());
      }
    }
    // Forget blocks a request in flight at the engine's death may have moved or freed.
    std::erase_if(blocks_, [&](const held& h) { return !me_.read(h.ref, 0, 1); });
    std::printf("rode-through views=%zu\n", written.size());
    std::fflush(stdout);
    return true;
  }

  void error(const std::string& what) {
    ++errors_;
    std::printf("ERROR %s\n", what.c_str());
    std::fflush(stdout);
  }

  // Sorts a failed request: engine gone, an expected refusal, or an error.
  void failed(const caf::error& e, const std::string& what, bool own_block) {
    switch (code_of(e)) {
      case errc::engine_unreachable:
        if (ride_through_)
          down_ = true;
        else
          lost_ = true;
        return;
      case errc::engine_restarted:
        if (ride_through_) {
          down_ = true; // ride() finds the session lost
          return;
        }
        break;
      case errc::out_of_memory:
      case errc::quota_exceeded:
      case errc::capacity_exceeded:
      case errc::block_in_use:
        return;
      case errc::access_denied:
      case errc::stale_block:
      case errc::unknown_process:
      case errc::name_not_found:
      case errc::name_taken:
        if (!own_block) // races with other processes: expected
          return;
        [[fallthrough]];
      default:
        error(what + ": " + describe(e));
    }
  }

  void fill(std::byte* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t x = rng_();
      std::memcpy(p + i, &x, 8);
    }
    for (; i < n; ++i)
      p[i] = static_cast<std::byte>(rng_());
  }

  uint64_t pick_size() {
    switch (pick(4)) {
      case 0: return 1 + pick(4096);
      case 1: return 4096 * (1 + pick(16));
      default: return 1 + pick(max_block_);
    }
  }

  held* pick_block() {
    return blocks_.empty() ? nullptr : &blocks_[pick(blocks_.size())];
  }

  void close_views_of(const block_ref& ref) {
    for (auto i = views_.begin(); i != views_.end();)
      if (i->ref() == ref) {
        if (auto ok = me_.unmap(std::move(*i)); !ok)
          failed(ok.error(), "unmap", true);
        i = views_.erase(i);
      } else {
        ++i;
      }
  }

  void drop(const block_ref& ref) {
    std::erase_if(blocks_, [&](const held& h) { return h.ref == ref; });
  }

  void step() {
    if (!ops_kind_.empty() && !blocks_.empty())
      return step_of(ops_kind_);
    auto op = pick(100);
    if (op < 14 || blocks_.empty())
      return do_allocate();
    if (op < 26)
      return do_write();
    if (op < 38)
      return do_map();
    if (op < 44)
      return do_copy();
    if (op < 50)
      return do_share();
    if (op < 68 && peers_ > 1)
      return do_handoff();
    if (op < 84)
      return do_receive();
    if (op < 96)
      return do_free();
    views_.clear();
  }

  void step_of(const std::string& kind) {
    if (kind == "allocate")
      return pick(2) == 0 ? do_allocate() : do_free();
    if (kind == "map")
      return do_map();
    if (kind == "transfer")
      return pick(2) == 0 ? do_handoff() : do_receive();
    if (kind == "share")
      return do_share();
    if (kind == "write")
      return do_write();
    if (kind == "copy")
      return do_copy();
    if (kind == "name")
      return do_name();
    // idle: views held open, a light request now and then
    if (views_.empty())
      return do_map();
    std::this_thread::sleep_for(20ms);
    if (auto st = me_.find_process(prefix_ + "-" + std::to_string(index_)); !st)
      failed(st.error(), "find_process", false);
  }

  void do_name() {
    auto ref = pick_block()->ref;
    auto name = "n" + std::to_string(index_) + "." + std::to_string(++seq_) + "."
                + std::to_string(::getpid());
    if (auto ok = me_.name(ref, name); !ok)
      return failed(ok.error(), "name", true);
    if (auto found = me_.lookup(name); !found)
      failed(found.error(), "lookup", true);
    else if (*found != ref)
      error("lookup of " + name + " found another block");
  }

  void do_allocate() {
    if (blocks_.size() >= 8)
      return do_free();
    auto r = me_.allocate(pick_size());
    if (!r)
      return failed(r.error(), "allocate", true);
    blocks_.push_back({*r});
  }

  void do_write() {
    auto* b = pick_block();
    uint64_t off = pick(b->ref.size);
    std::vector<char> data(std::min<uint64_t>(1 + pick(65536), b->ref.size - off));
    fill(reinterpret_cast<std::byte*>(data.data()), data.size());
    if (auto ok = me_.write(b->ref, off, data); !ok)
      failed(ok.error(), "write", true);
  }

  void do_map() {
    auto* b = pick_block();
    auto view = me_.map(b->ref, access_mode::read_write);
    if (!view)
      return failed(view.error(), "map", true);
    fill(view->data(), view->size());
    if (views_.size() < 2 && pick(3) == 0) {
      views_.push_back(std::move(*view)); // stays open for a while
      return;
    }
    if (auto ok = me_.unmap(std::move(*view)); !ok)
      failed(ok.error(), "unmap", true);
  }

  void do_copy() {
    auto src = pick_block()->ref;
    auto dst = pick_block()->ref;
    uint64_t n = std::min(src.size, dst.size);
    uint64_t len = 1 + pick(n);
    std::vector<copy_range> ranges{{pick(src.size - len + 1), pick(dst.size - len + 1), len}};
    if (auto ok = me_.copy(src, dst, ranges); !ok)
      failed(ok.error(), "copy", true);
  }

  void do_share() {
    if (peers_ < 2)
      return;
    auto slot = me_.find_process(peer_name(pick_peer()));
    if (!slot)
      return failed(slot.error(), "find_process", false);
    auto ref = pick_block()->ref;
    if (auto ok = me_.share(ref, *slot, access_mode::read); !ok)
      return failed(ok.error(), "share", false);
    if (pick(2) == 0)
      if (auto ok = me_.revoke(ref, *slot); !ok)
        failed(ok.error(), "revoke", false);
  }

  int pick_peer() {
    int j = static_cast<int>(pick(static_cast<uint64_t>(peers_ - 1)));
    return j >= index_ ? j + 1 : j;
  }

  std::string peer_name(int j) const { return prefix_ + "-" + std::to_string(j); }

  void do_handoff() {
    int j = pick_peer();
    auto slot = me_.find_process(peer_name(j));
    if (!slot)
      return failed(slot.error(), "find_process", false);
    auto ref = me_.allocate(pick_size());
    if (!ref)
      return failed(ref.error(), "allocate", true);
    auto view = me_.map(*ref, access_mode::read_write);
    if (!view) {
      failed(view.error(), "map", true);
      me_.free(*ref);
      return;
    }
    fill(view->data(), view->size());
    auto hash = XXH3_64bits(view->data(), view->size());
    auto name = "x" + std::to_string(j) + "." + hex(hash) + "." + std::to_string(index_) + "."
                + std::to_string(++seq_);
    if (auto ok = me_.unmap(std::move(*view)); !ok) {
      failed(ok.error(), "unmap", true);
      me_.free(*ref);
      return;
    }
    if (auto ok = me_.name(*ref, name); !ok) {
      failed(ok.error(), "name", true);
      me_.free(*ref);
      return;
    }
    auto moved = me_.transfer(*ref, *slot);
    if (!moved) {
      // A refused transfer leaves the block ours. One that met the engine's death may have
      // landed before the engine died (an adopting engine keeps it): then the receiver owns
      // the block, finds it by its name and frees it, and our free is refused.
      auto code = code_of(moved.error());
      bool outcome_unknown = code == errc::engine_unreachable || code == errc::engine_restarted;
      failed(moved.error(), "transfer", false);
      if (auto ok = me_.free(*ref); !ok)
        failed(ok.error(), "free after a failed transfer (" + describe(moved.error()) + ")",
               !outcome_unknown);
      return;
    }
    ++sent_;
  }

  void do_receive() {
    auto st = me_.stats();
    if (!st)
      return failed(st.error(), "stats", false);
    auto prefix = "x" + std::to_string(index_) + ".";
    int taken = 0;
    for (const auto& nb : st->name_list) {
      if (nb.name.rfind(prefix, 0) != 0 || nb.owner != me_.id() || taken++ >= 4)
        continue;
      auto view = me_.map(nb.ref, access_mode::read);
      if (!view) { // not handed to this incarnation of the receiver, or gone meanwhile
        failed(view.error(), "map of a hand-off", false);
        continue;
      }
      auto hash = hex(XXH3_64bits(view->data(), view->size()));
      auto expected = nb.name.substr(prefix.size(), 16);
      if (hash != expected) {
        ++mismatches_;
        std::printf("MISMATCH %s %s\n", nb.name.c_str(), hash.c_str());
        std::fflush(stdout);
      }
      if (auto ok = me_.unmap(std::move(*view)); !ok)
        failed(ok.error(), "unmap", true);
      if (auto ok = me_.free(nb.ref); !ok)
        failed(ok.error(), "free of a hand-off", true);
      ++received_;
    }
  }

  void do_free() {
    if (blocks_.empty())
      return;
    auto ref = pick_block()->ref;
    close_views_of(ref);
    if (auto ok = me_.free(ref); !ok)
      failed(ok.error(), "free", true);
    drop(ref);
  }

  client& me_;
  std::string prefix_;
  int index_;
  int peers_;
  std::mt19937_64 rng_;
  uint64_t max_block_;
  std::vector<held> blocks_;
  std::vector<block_view> views_;
  std::string ops_kind_;
  bool ride_through_ = false;
  uint64_t ops_ = 0, sent_ = 0, received_ = 0, mismatches_ = 0, errors_ = 0, seq_ = 0;
  bool lost_ = false;
  bool down_ = false; // the engine went away (--ride-through)
};

// --transmit HOST:PORT --size N [--as NAME]: allocates a block of N random bytes, prints
// "transmitting HASH", sends it to that engine (held there under NAME) and prints
// "transmitted" or "transmit-failed CODE"; then waits for stdin to close and unregisters.
int transmit_once(client& me, const std::string& peer, uint64_t size, const std::string& as) {
  auto ref = me.allocate(size);
  if (!ref) {
    std::printf("ERROR allocate: %s\n", describe(ref.error()).c_str());
    return 1;
  }
  auto view = me.map(*ref, access_mode::read_write);
  if (!view) {
    std::printf("ERROR map: %s\n", describe(view.error()).c_str());
    return 1;
  }
  std::mt19937_64 rng{size};
  for (size_t i = 0; i + 8 <= view->size(); i += 8) {
    uint64_t x = rng();
    std::memcpy(view->data() + i, &x, 8);
  }
  auto hash = XXH3_64bits(view->data(), view->size());
  if (auto ok = me.unmap(std::move(*view)); !ok) {
    std::printf("ERROR unmap: %s\n", describe(ok.error()).c_str());
    return 1;
  }
  std::printf("transmitting %s\n", hex(hash).c_str());
  std::fflush(stdout);
  transmit_target target;
  target.name = as;
  auto r = me.transmit(*ref, peer, target, std::chrono::seconds(60));
  if (r)
    std::printf("transmitted %s\n", hex(r->hash).c_str());
  else
    std::printf("transmit-failed %s\n", to_string(code_of(r.error())));
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  me.close();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto prefix = test::option(argc, argv, "--prefix", "stress");
  int index = std::stoi(test::option(argc, argv, "--index", "0"));
  int peers = std::stoi(test::option(argc, argv, "--peers", "1"));
  uint64_t seed = std::stoull(test::option(argc, argv, "--seed", std::to_string(::getpid())));
  uint64_t max_block = std::stoull(test::option(argc, argv, "--max-block", std::to_string(1 << 20)));
  auto report = std::chrono::milliseconds{std::stoi(test::option(argc, argv, "--report-ms", "500"))};
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cfg.set("scheduler.max-threads", size_t{2});
  // Reconnecting after the engine went away may end a connect attempt by its timeout while the
  // middleman still connects (see client::connect).
  cfg.set("middleman.attach-utility-actors", true);
  settings s;
  s.role = role::client;
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  client_options opts;
  opts.timeout = std::chrono::milliseconds{std::stoi(test::option(argc, argv, "--timeout-ms", "5000"))};
  auto engine = parse_endpoint(test::option(argc, argv, "--engine"));
  if (!engine) {
    std::fprintf(stderr, "stress-client: --engine HOST:PORT expected\n");
    return 2;
  }
  auto me = client::connect(sys, *engine,
                            prefix + "-" + std::to_string(index), opts);
  if (!me) {
    std::printf("engine-lost\n");
    std::fprintf(stderr, "stress-client: %s\n", describe(me.error()).c_str());
    return 3;
  }
  std::printf("running %u\n", to_slot(me->id()));
  std::fflush(stdout);
  if (auto peer = test::option(argc, argv, "--transmit"); !peer.empty())
    return transmit_once(*me, peer, std::stoull(test::option(argc, argv, "--size", "1048576")),
                         test::option(argc, argv, "--as"));
  std::thread stdin_watch{[] {
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    stop_requested = true;
  }};
  stdin_watch.detach(); // blocked in read() until stdin closes; the process may end first
  worker w{*me, prefix, index, peers, seed, max_block, test::option(argc, argv, "--ops"),
           test::flag(argc, argv, "--ride-through")};
  return w.run(stop_requested, report);
}
