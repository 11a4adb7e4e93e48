// Fuzz target: the receiving side of engine-to-engine transfers (plugin/src/engine/remote_link.cpp: offer,
// chunk, commit, abort, delivery, the content cache), as a peer engine would drive it. An engine
// actor runs in this process (cafshm::module, engine role, remote.unauthenticated_peers); a
// scoped actor plays one or more sending engines, links through the engine's peer gateway
// (challenge, hello, link keys) and sends the gateway random sealed transmit_offer /
// transmit_chunk / commit / abort messages, also under another peer's link token with a key of
// its own (a forger) and under no valid token:
// malformed and duplicate offers, chunks of unknown transfers, chunks past the end, chunks whose
// bytes do not match their checksum, wrong whole-block checksums, unknown target processes,
// invalid names, cache fills, repeated content (cache hits).
// Properties, after every message (nothing of the forger or of an unlinked sender is ever
// accepted or changes anything):
//   - memory_manager::check() is "" (invariants and exact accounting);
//   - the engine counts exactly the transfers the model says are open;
//   - a block is delivered only with exactly the offered bytes: XXH3 of what it holds equals
//     the offered checksum, and when the sender sent the real content, it is that content;
// and after each input (open transfers aborted, delivered blocks freed): only the cache's blocks
// are left, no name, nothing held by the target process.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/engine.hpp"
#include "memory_manager.hpp"
#include "cafshm/module.hpp"
#include "fuzz_input.hpp"
#include "link_seal.hpp"
#include "support/fake_peer.hpp"
#include "support/stale_segments.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using cafshm::fuzz::input;
using cafshm::fuzz::violation;

namespace {

constexpr uint64_t arena_bytes = 4 << 20;

// Content of a transfer: a pattern chosen by `seed`.
char content_byte(uint8_t seed, uint64_t i) {
  return static_cast<char>(seed * 131u + i * 7u + (i >> 9));
}

std::vector<char> content(uint8_t seed, uint64_t offset, uint64_t n) {
  std::vector<char> out(n);
  for (uint64_t i = 0; i < n; ++i)
    out[i] = content_byte(seed, offset + i);
  return out;
}

uint64_t hash_of(const std::vector<char>& bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

// XXH3 of content(seed, 0, size), remembered: whole-arena contents cost milliseconds each.
uint64_t content_hash(uint8_t seed, uint64_t size) {
  static std::map<std::pair<uint8_t, uint64_t>, uint64_t> known;
  auto key = std::make_pair(seed, size);
  if (auto i = known.find(key); i != known.end())
    return i->second;
  if (known.size() > 4096)
    known.clear();
  return known[key] = hash_of(content(seed, 0, size));
}

// One engine in this process, created for the first input and kept (creating an actor system
// per input would cost milliseconds). Never destroyed: the fuzzer ends with exit().
struct world {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  engine_actor engine;
  peer_actor gateway;
  std::shared_ptr<memory_manager> mm;
  std::optional<client> sink;
  std::unique_ptr<caf::scoped_actor> self;

  world() {
    cfg.load<cafshm::module>();
    cfg.set("scheduler.policy", caf::atom("sharing")); // wakes at once: ~10x more inputs/s
    cfg.set("scheduler.max-threads", size_t{1});
    settings s;
    s.engine.name = "cafshm-fuzz-remote-" + std::to_string(::getpid());
    s.engine.arena_bytes = arena_bytes;
    s.engine.max_blocks = 128;
    s.engine.liveness_interval = std::chrono::hours(1); // nothing runs between messages
    s.remote.cache_bytes = 256 << 10;
    s.remote.unauthenticated_peers = true;
    module::configure(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto e = local_engine(*sys);
    if (!e)
      violation("no engine: " + describe(e.error()));
    engine = *e;
    mm = module::of(*sys)->memory();
    auto c = client::connect(*sys, "sink");
    if (!c)
      violation("cannot register the sink: " + describe(c.error()));
    sink.emplace(std::move(*c));
    self = std::make_unique<caf::scoped_actor>(*sys, true);
    auto gw = ask<caf::actor>(gateway_atom::value);
    if (!gw)
      violation("no peer gateway: " + describe(gw.error()));
    gateway = caf::actor_cast<peer_actor>(*gw);
  }

  // Peer messages go to the gateway, everything else to the engine.
  template <class Atom, class... Ts>
  caf::actor destination(const Atom&, const Ts&...) {
    constexpr bool peer_message
      = std::is_same_v<Atom, offer_atom> || std::is_same_v<Atom, chunk_atom>
        || std::is_same_v<Atom, commit_atom> || std::is_same_v<Atom, abort_atom>
        || std::is_same_v<Atom, hello_atom> || std::is_same_v<Atom, challenge_atom>;
    if constexpr (peer_message)
      return caf::actor_cast<caf::actor>(gateway);
    else
      return caf::actor_cast<caf::actor>(engine);
  }

  template <class R, class... Ts>
  caf::expected<R> ask(Ts&&... xs) {
    caf::expected<R> result{caf::error{}};
    (*self)->request(destination(xs...), 10s, std::forward<Ts>(xs)...)
      .receive([&](R& r) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  // The link of fake peer `sender` (challenge and hello once).
  test::fake_peer_link& link_of(uint64_t sender) {
    if (auto i = links.find(sender); i != links.end())
      return i->second;
    caf::error err;
    auto link = test::handshake_as(
      *self, gateway, caf::actor_cast<caf::actor>(*self), sender,
      [](const std::vector<unsigned char>&) { return peer_proof{}; }, err, sender ^ 0x7e7e);
    if (link.token == 0)
      violation("the handshake failed: " + describe(err));
    return links[sender] = std::move(link);
  }

  // The seal of a message of fake peer `sender`: sender 0 never said hello (its token is one
  // the engine never issued); sender `forger` knows the link token of `victim` but not its key.
  template <class... Ts>
  peer_seal seal_of(uint64_t sender, caf::atom_value type, const Ts&... fields) {
    if (sender == 0)
      return link_sealer{0x0dd5eed, std::vector<unsigned char>(link_mac_key_bytes, 'u')}.seal(
        type, fields...);
    if (sender == forger) {
      link_sealer guessed{link_of(victim).token,
                          std::vector<unsigned char>(link_mac_key_bytes, 'g'), ++forged};
      return guessed.seal(type, fields...);
    }
    return link_of(sender).seal(type, fields...);
  }

  static constexpr uint64_t victim = 0x5e17de5;
  static constexpr uint64_t forger = 0xf0f0;
  uint64_t forged = uint64_t{1} << 40; // sequences above any the victim reaches

  // A peer message's answer, without its seal (checked by the engine's peers, not here).
  template <class R, class... Ts>
  caf::expected<R> ask_peer(Ts&&... xs) {
    caf::expected<R> result{caf::error{}};
    (*self)->request(destination(xs...), 10s, std::forward<Ts>(xs)...)
      .receive([&](R& r, peer_seal&) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  template <class R1, class R2, class... Ts>
  caf::expected<std::pair<R1, R2>> ask(Ts&&... xs) {
    caf::expected<std::pair<R1, R2>> result{caf::error{}};
    (*self)->request(destination(xs...), 10s, std::forward<Ts>(xs)...)
      .receive([&](R1& a, R2& b) { result = std::make_pair(std::move(a), std::move(b)); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  std::map<uint64_t, test::fake_peer_link> links;

  // Returns once the engine handled everything sent to the gateway before: a request the
  // gateway hands on (refused for its token, which is all it is for).
  void sync() {
    (*self)->request(gateway, 10s, version_atom::value, peer_seal{}, block_ref{})
      .receive([](uint64_t, peer_seal&) {}, [](caf::error&) {});
  }

  engine_stats stats() {
    auto st = ask<engine_stats>(stats_atom::value);
    if (!st)
      violation("stats failed: " + describe(st.error()));
    return std::move(*st);
  }
};

world& the_world() {
  static world* w = new world;
  return *w;
}

struct offered {
  transmit_offer offer;
  uint8_t seed = 0;        // the real content
  bool open = false;       // the engine is receiving it
  bool clean = true;       // every chunk sent so far carried the real content
  // the receiver's in-order digest: bytes [0, verified) are in it and never rewritten; chunks
  // beyond a gap wait in `ahead` (offset -> length), at most 1024 of them
  uint64_t verified = 0;
  std::map<uint64_t, uint64_t> ahead;
};

class harness {
public:
  harness(input& in, world& w) : in_(in), w_(w) {}

  void run() {
    for (int steps = 0; !in_.empty() && steps < 200; ++steps) {
      step();
      verify();
    }
    cleanup();
  }

private:
  uint64_t pick_sender() {
    static const uint64_t senders[] = {world::victim, 0xbadc0ffee, 0, world::forger};
    return senders[in_.below(4)];
  }

  uint64_t pick_size() {
    switch (in_.byte() % 6) {
      case 0: return 0;
      case 1: return 1 + in_.below(4096);
      case 2: return 4096 * (1 + in_.below(16));
      case 3: return 1 + in_.below(96 << 10);
      case 4: return in_.flag() ? arena_bytes : arena_bytes + 1;
      default: return in_.u64();
    }
  }

  std::string pick_name() {
    switch (in_.byte() % 8) {
      case 0: case 1: case 2: return "";
      case 3: case 4: return "n" + std::to_string(in_.below(3));
      case 5: return std::string(60, 'x'); // too long
      default: return in_.text(12);
    }
  }

  offered* pick_transfer(uint64_t& sender, uint64_t& id) {
    if (!transfers_.empty() && in_.byte() < 220) {
      auto i = transfers_.begin();
      std::advance(i, static_cast<ptrdiff_t>(in_.below(transfers_.size())));
      sender = i->first.first;
      id = i->first.second;
      return &i->second;
    }
    sender = pick_sender();
    id = 1 + in_.below(6);
    auto i = transfers_.find({sender, id});
    return i == transfers_.end() ? nullptr : &i->second;
  }

  void step() {
    switch (in_.byte() % 7) {
      case 0: case 1: do_offer(); break;
      case 2: case 3: do_chunk(); break;
      case 4: do_fill(); break;
      case 5: do_commit(); break;
      default: do_abort(); break;
    }
  }

  void do_offer() {
    offered o;
    o.seed = in_.byte();
    auto& of = o.offer;
    of.sender = pick_sender();
    of.id = 1 + in_.below(6);
    of.size = pick_size();
    if (in_.byte() < 200 && of.size <= arena_bytes)
      of.hash = content_hash(o.seed, of.size);
    else
      of.hash = in_.u64();
    static const uint64_t chunks[] = {0, 1, 4096, 65536, 1 << 20};
    of.chunk_bytes = chunks[in_.below(5)];
    if (of.chunk_bytes == 1) // keep the number of chunks small
      of.chunk_bytes = std::max<uint64_t>(1, of.size);
    switch (in_.byte() % 6) {
      case 0: case 1: of.target.process = "sink"; break;
      case 2: of.target.process = "nobody"; break;
      case 3: of.target.process = in_.text(8); break;
      default: break;
    }
    of.target.name = pick_name();
    of.cache_fill = in_.byte() > 230;
    of.source = block_ref{in_.u64(), in_.u32(), in_.u32(), of.size};
    of.source_version = in_.below(4);
    auto key = std::make_pair(of.sender, of.id);
    bool duplicate = transfers_.count(key) != 0 && transfers_[key].open;
    auto r = w_.ask_peer<transmit_receipt>(offer_atom::value,
                                           w_.seal_of(of.sender, offer_atom::value, of), of);
    if (r && of.sender == 0)
      violation("an offer without a valid link token was accepted");
    if (r && of.sender == world::forger)
      violation("an offer sealed without the link's key was accepted");
    if (r && of.cache_fill)
      violation("a cache fill nobody asked for was accepted");
    if (!r) {
      if (transfers_.count(key) != 0 && !duplicate)
        transfers_.erase(key);
      return;
    }
    if (duplicate || of.size == 0 || of.chunk_bytes == 0)
      violation("a malformed or duplicate offer was accepted");
    if (r->remote.valid()) { // the cache had this content: delivered at once
      check_delivered(*r, of, true, o.seed);
      transfers_.erase(key);
      return;
    }
    if (r->cache_hit) { // an offer without a digest: the cache asks for it, nothing opened
      if (of.hash != 0 || of.cache_fill)
        violation("an offer with a digest was asked for one");
      transfers_.erase(key);
      return;
    }
    o.open = true;
    transfers_[key] = o;
  }

  void send_chunk(uint64_t sender, uint64_t id, offered* t, uint64_t offset, uint64_t n,
                  bool garbage, bool bad_hash) {
    transmit_chunk c;
    c.sender = sender;
    c.id = id;
    c.offset = offset;
    uint8_t seed = t != nullptr ? t->seed : 0;
    c.data = content(garbage ? static_cast<uint8_t>(seed + 1) : seed, offset, n);
    c.hash = hash_of(c.data) ^ (bad_hash ? 1 : 0);
    auto r = w_.ask_peer<done_atom>(chunk_atom::value, w_.seal_of(sender, chunk_atom::value, c),
                                    c);
    bool open = t != nullptr && t->open;
    bool fits = t != nullptr && offset <= t->offer.size && n <= t->offer.size - offset;
    bool rewrites = open && fits && !bad_hash && offset < t->verified;
    bool too_far = open && fits && !bad_hash && !rewrites && offset > t->verified && n != 0
                   && t->ahead.size() >= 1024;
    if (r && (!open || !fits || bad_hash || rewrites || too_far))
      violation("a chunk was accepted: unknown transfer, past the end, bad checksum, rewriting "
                "verified bytes or too far ahead");
    if (!r && open && fits && !bad_hash && !rewrites && !too_far)
      violation("a good chunk was refused: " + describe(r.error()));
    if (open && (!fits || too_far)) // aborts the transfer
      t->open = false;
    if (r && garbage)
      t->clean = false;
    if (r && offset == t->verified) {
      t->verified += n;
      for (auto a = t->ahead.begin(); a != t->ahead.end() && a->first <= t->verified;
           a = t->ahead.erase(a))
        t->verified = std::max(t->verified, a->first + a->second);
    } else if (r && offset > t->verified && n != 0) {
      t->ahead[offset] = std::max(t->ahead[offset], n);
    }
  }

  void do_chunk() {
    uint64_t sender = 0, id = 0;
    auto* t = pick_transfer(sender, id);
    uint64_t size = t != nullptr ? t->offer.size : 4096;
    uint64_t cb = t != nullptr && t->offer.chunk_bytes != 0 ? t->offer.chunk_bytes : 4096;
    uint64_t offset = 0, n = 0;
    switch (in_.byte() % 4) {
      case 0: // a random aligned chunk
        offset = size == 0 ? 0 : in_.below((size + cb - 1) / cb) * cb;
        n = std::min(cb, size - std::min(size, offset));
        break;
      case 1: // past the end
        offset = size - std::min<uint64_t>(size, in_.below(16));
        n = 1 + in_.below(64);
        break;
      case 2:
        offset = in_.u64();
        n = in_.below(32);
        break;
      default: // anywhere inside
        offset = size == 0 ? 0 : in_.below(size);
        n = in_.below(std::min<uint64_t>(size - offset, 8192) + 1);
    }
    n = std::min<uint64_t>(n, 1 << 20);
    auto how = in_.byte();
    send_chunk(sender, id, t, offset, n, how > 230, how < 25);
  }

  // Sends every chunk of a transfer with the real content.
  void do_fill() {
    uint64_t sender = 0, id = 0;
    auto* t = pick_transfer(sender, id);
    if (t == nullptr || !t->open || t->offer.size > (1 << 20))
      return;
    uint64_t cb = std::max<uint64_t>(t->offer.chunk_bytes, 4096);
    for (uint64_t off = 0; off < t->offer.size && t->open; off += cb)
      send_chunk(sender, id, t, off, std::min(cb, t->offer.size - off), false, false);
  }

  void do_commit() {
    uint64_t sender = 0, id = 0;
    auto* t = pick_transfer(sender, id);
    // the whole-block checksum the offer announced (a clean sender's commit claims the same)
    uint64_t claimed = t != nullptr ? t->offer.hash : 0;
    auto r = w_.ask_peer<transmit_receipt>(
      commit_atom::value, w_.seal_of(sender, commit_atom::value, id, claimed), id, claimed);
    bool open = t != nullptr && t->open;
    if (r && !open)
      violation("commit of an unknown transfer accepted");
    if (open) {
      if (r)
        check_delivered(*r, t->offer, t->clean, t->seed);
      transfers_.erase({sender, id});
    }
  }

  void do_abort() {
    uint64_t sender = 0, id = 0;
    pick_transfer(sender, id);
    (*w_.self)->send(w_.gateway, abort_atom::value, w_.seal_of(sender, abort_atom::value, id), id);
    transfers_.erase({sender, id});
  }

  // The delivered block holds exactly the offered bytes.
  void check_delivered(const transmit_receipt& r, const transmit_offer& of, bool clean,
                       uint8_t seed) {
    if (r.hash != of.hash || r.bytes != of.size)
      violation("a receipt for other bytes than offered");
    auto bytes = w_.mm->engine_bytes(r.remote);
    if (!bytes)
      violation("a receipt for a block that is not there: " + describe(bytes.error()));
    if (bytes->size() != of.size || XXH3_64bits(bytes->data(), bytes->size()) != of.hash)
      violation("a delivered block does not match the offered checksum");
    if (clean && of.size <= (256 << 10) && of.hash == content_hash(seed, of.size)) {
      auto real = content(seed, 0, of.size);
      if (std::memcmp(bytes->data(), real.data(), real.size()) != 0)
        violation("a delivered block differs from the sent content");
    }
    if (!of.cache_fill)
      delivered_.push_back(r.remote);
  }

  void verify() {
    // A round trip through the gateway first: aborts are one-way messages that the gateway
    // hands on to the engine, and the engine must have handled them (both keep the order)
    // before this thread looks at its memory.
    w_.sync();
    auto st = w_.stats();
    if (auto err = w_.mm->check(); !err.empty())
      violation("check(): " + err);
    auto open = std::count_if(transfers_.begin(), transfers_.end(),
                              [](const auto& kv) { return kv.second.open; });
    if (st.transmits_in != static_cast<uint32_t>(open))
      violation("the engine receives " + std::to_string(st.transmits_in)
                + " transfers, the model " + std::to_string(open));
  }

  void cleanup() {
    for (const auto& [key, t] : transfers_)
      (*w_.self)->send(w_.gateway, abort_atom::value,
                       w_.seal_of(key.first, abort_atom::value, key.second), key.second);
    transfers_.clear();
    auto engine = w_.mm->engine_session(); // may free every block, the sink's too
    for (const auto& ref : delivered_)
      if (auto done = w_.ask<done_atom>(free_atom::value, engine, ref); !done)
        violation("cannot free a delivered block: " + describe(done.error()));
    delivered_.clear();
    verify();
    auto st = w_.stats();
    if (st.blocks != st.cache_entries || st.names != 0 || st.transmits_in != 0
        || st.cache_bytes > st.cache_capacity)
      violation("blocks left after the input: " + std::to_string(st.blocks) + " blocks, "
                + std::to_string(st.cache_entries) + " cached, " + std::to_string(st.names)
                + " names");
    for (const auto& p : st.process_list)
      if (p.name == "sink" && (p.blocks != 0 || p.bytes_in_use != 0))
        violation("the sink still holds blocks");
  }

  input& in_;
  world& w_;
  std::map<std::pair<uint64_t, uint64_t>, offered> transfers_;
  std::vector<block_ref> delivered_;
};

} // namespace

// Before the first input: segments of earlier runs of this target that were stopped (timeout,
// Ctrl-C, a crash) before they could remove them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cafshm::test::remove_stale_test_segments();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input in{data, size};
  harness{in, the_world()}.run();
  return 0;
}
