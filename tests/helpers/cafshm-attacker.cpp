// A hostile (or just buggy) process for tests/test_access.cpp. Registers with a cafshmd as
// "attacker" (or --name NAME), prints "ready SLOT ENGINE_ID", then answers one line per command
// on stdin:
//   probe E B G S      tries every request on the ref {E, B, G, S}: read, map read, map
//                      read_write, write, copy out of it, free, share with itself, transfer to
//                      itself, name it, export it; answers "probe read=C map=C map_rw=C write=C
//                      copy=C free=C share=C transfer=C name=C export=C" (C = "ok" or the errc)
//   brute E S B G      every block index < B with every generation < G, size S, engine E: a read
//                      through the engine and a mapping; answers
//                      "brute tried=N allowed=<B:G,... or none> codes=<errc,...>"
//   sessions SLOT N    N requests with the session {SLOT, random token}: unregister, allocate,
//                      stats of the process; answers "sessions tried=N accepted=M"
//   hash E B G S       maps the block read-only: "hash <XXH3 hex>" or "denied <errc>"
//   fresh S            allocates S bytes, maps them, counts bytes that are not zero, frees:
//                      "fresh nonzero=N" or "failed <errc>"
//   fill               the same over every free byte of the arena (blocks of halving sizes):
//                      "fill nonzero=N bytes=M"
//   copyflood N L      allocates a block of L bytes and sends one copy request of N ranges of
//                      L bytes within it: "copyflood C" (C = "ok" or the errc)
//   quota Q            registers a second process asking for a quota of Q bytes:
//                      "quota C QUOTA" (QUOTA = the quota the engine lists for it, or 0)
#include <cstdio>
#include <optional>
#include <iostream>
#include <random>
#include <set>
#include <vector>
#include <sstream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"

using namespace cafshm;
using namespace std::chrono_literals;

namespace {

std::string code(const caf::error& e) {
  return to_string(code_of(e));
}

template <class T>
std::string outcome(const caf::expected<T>& x) {
  return x ? std::string{"ok"} : code(x.error());
}

block_ref read_ref(std::istream& in) {
  block_ref r;
  in >> r.engine >> r.block >> r.generation >> r.size;
  return r;
}

std::string hex(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

std::string probe(client& me, const block_ref& ref, const block_ref& scratch) {
  std::ostringstream out;
  out << "probe read=" << outcome(me.read(ref, 0, 1));
  auto view = me.map(ref, access_mode::read);
  out << " map=" << outcome(view);
  if (view)
    me.unmap(std::move(*view));
  auto wview = me.map(ref, access_mode::read_write);
  out << " map_rw=" << outcome(wview);
  if (wview)
    me.unmap(std::move(*wview));
  out << " write=" << outcome(me.write(ref, 0, std::string("x")));
  out << " copy=" << outcome(me.copy(ref, scratch, {{0, 0, 1}}));
  out << " free=" << outcome(me.free(ref));
  out << " share=" << outcome(me.share(ref, me.slot(), access_mode::read_write));
  out << " transfer=" << outcome(me.transfer(ref, me.slot()));
  out << " name=" << outcome(me.name(ref, "stolen"));
  out << " export=" << outcome(me.export_block(ref));
  return out.str();
}

std::string brute(client& me, uint64_t engine, uint64_t size, uint32_t blocks,
                  uint32_t generations) {
  uint64_t tried = 0;
  std::string allowed;
  std::set<std::string> codes;
  for (uint32_t b = 0; b < blocks; ++b)
    for (uint32_t g = 0; g < generations; ++g) {
      block_ref ref{engine, b, g, size};
      auto r = me.read(ref, 0, 1);
      auto v = me.map(ref, access_mode::read);
      tried += 2;
      if (r || v)
        allowed += (allowed.empty() ? "" : ",") + std::to_string(b) + ":" + std::to_string(g);
      if (!r)
        codes.insert(code(r.error()));
      if (!v)
        codes.insert(code(v.error()));
      else
        me.unmap(std::move(*v));
    }
  std::string list;
  for (const auto& c : codes)
    list += (list.empty() ? "" : ",") + c;
  return "brute tried=" + std::to_string(tried) + " allowed=" + (allowed.empty() ? "none" : allowed)
         + " codes=" + list;
}

std::string sessions(caf::actor_system& sys, client& me, uint32_t slot, int n) {
  std::mt19937_64 rng{std::random_device{}()};
  caf::scoped_actor self{sys, true};
  int accepted = 0;
  for (int i = 0; i < n; ++i) {
    session forged{slot, rng()};
    auto refused = [](caf::error&) {};
    self->request(me.engine(), 5s, unregister_atom::value, forged)
      .receive([&](done_atom) { ++accepted; }, refused);
    self->request(me.engine(), 5s, allocate_atom::value, forged, uint64_t{4096})
      .receive([&](block_ref&) { ++accepted; }, refused);
    self->request(me.engine(), 5s, process_atom::value, forged, std::string{"victim"})
      .receive([&](uint32_t) { ++accepted; }, refused);
  }
  return "sessions tried=" + std::to_string(3 * n) + " accepted=" + std::to_string(accepted);
}

// Takes every free byte of the arena (blocks of halving sizes) and counts bytes not zero.
std::string fill(client& me, uint64_t arena) {
  std::vector<block_ref> taken;
  uint64_t nonzero = 0, bytes = 0;
  for (uint64_t size = arena; size >= 4096; size /= 2)
    while (auto ref = me.allocate(size)) {
      taken.push_back(*ref);
      auto view = me.map(*ref, access_mode::read);
      if (!view)
        return "failed " + code(view.error());
      for (auto b : view->bytes())
        nonzero += b != std::byte{0};
      bytes += view->size();
      me.unmap(std::move(*view));
    }
  for (auto& r : taken)
    me.free(r);
  return "fill nonzero=" + std::to_string(nonzero) + " bytes=" + std::to_string(bytes);
}

std::string fresh(client& me, uint64_t size) {
  auto ref = me.allocate(size);
  if (!ref)
    return "failed " + code(ref.error());
  auto view = me.map(*ref, access_mode::read);
  if (!view)
    return "failed " + code(view.error());
  uint64_t nonzero = 0;
  for (auto b : view->bytes())
    nonzero += b != std::byte{0};
  me.unmap(std::move(*view));
  me.free(*ref);
  return "fresh nonzero=" + std::to_string(nonzero);
}

} // namespace

std::string copy_flood(client& me, uint64_t ranges, uint64_t length) {
  auto block = me.allocate(length);
  if (!block)
    return "copyflood " + code(block.error());
  std::vector<copy_range> flood(ranges, copy_range{0, 0, length});
  auto r = me.copy(*block, *block, std::move(flood));
  me.free(*block);
  return "copyflood " + outcome(r);
}

std::string ask_quota(caf::actor_system& sys, client& me, uint64_t quota) {
  client_options opts;
  opts.quota_bytes = quota;
  static int n = 0;
  auto other = client::connect(sys, me.engine(), "attacker-q" + std::to_string(++n), opts);
  if (!other)
    return "quota " + code(other.error()) + " 0";
  auto st = other->stats();
  uint64_t granted = 0;
  if (st)
    for (const auto& p : st->process_list)
      if (p.slot == other->slot())
        granted = p.quota_bytes;
  return "quota ok " + std::to_string(granted);
}

int main(int argc, char** argv) {
  auto ep = argc < 3 || std::string{argv[1]} != "--engine" ? std::nullopt
                                                            : parse_endpoint(argv[2]);
  std::string name = "attacker";
  if (argc == 5 && std::string{argv[3]} == "--name")
    name = argv[4];
  if (!ep || (argc != 3 && argc != 5)) {
    std::cerr << "usage: cafshm-attacker --engine HOST:PORT [--name NAME]\n";
    return 2;
  }
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  settings s;
  s.role = role::client;
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto me = client::connect(sys, *ep, name);
  if (!me) {
    std::cerr << "attacker: " << describe(me.error()) << "\n";
    return 1;
  }
  auto scratch = me->allocate(4096 + 7); // a block of its own, for copies
  if (!scratch) {
    std::cerr << "attacker: " << describe(scratch.error()) << "\n";
    return 1;
  }
  std::cout << "ready " << me->slot() << " " << me->info().engine_id << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd;
    in >> cmd;
    std::string answer;
    if (cmd == "probe") {
      answer = probe(*me, read_ref(in), *scratch);
    } else if (cmd == "brute") {
      uint64_t engine = 0, size = 0;
      uint32_t blocks = 0, gens = 0;
      in >> engine >> size >> blocks >> gens;
      answer = brute(*me, engine, size, blocks, gens);
    } else if (cmd == "sessions") {
      uint32_t slot = 0;
      int n = 0;
      in >> slot >> n;
      answer = sessions(sys, *me, slot, n);
    } else if (cmd == "hash") {
      auto view = me->map(read_ref(in), access_mode::read);
      if (view) {
        answer = "hash " + hex(XXH3_64bits(view->data(), view->size()));
        me->unmap(std::move(*view));
      } else {
        answer = "denied " + code(view.error());
      }
    } else if (cmd == "fill") {
      auto st = me->stats();
      answer = st ? fill(*me, st->arena_bytes) : "failed " + code(st.error());
    } else if (cmd == "copyflood") {
      uint64_t ranges = 0, length = 0;
      in >> ranges >> length;
      answer = copy_flood(*me, ranges, length);
    } else if (cmd == "quota") {
      uint64_t quota = 0;
      in >> quota;
      answer = ask_quota(sys, *me, quota);
    } else if (cmd == "fresh") {
      uint64_t size = 0;
      in >> size;
      answer = fresh(*me, size);
    } else {
      answer = "unknown command";
    }
    std::cout << answer << std::endl;
  }
  me->free(*scratch);
  return 0;
}
