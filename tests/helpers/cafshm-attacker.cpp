// A hostile (or just buggy) process for tests/test_access.cpp. Registers with a cafshmd as
// "attacker" (or --name NAME), requests over --transport shm|basp (default shm), prints
// "ready SLOT ENGINE_ID TRANSPORT" (the transport its requests really take), then answers one
// line per command
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
//   forge SLOT N       N rounds of hostile records written straight into the engine's request
//                      inbox: random bytes, a bare header, a header with garbage, a register
//                      message, an unregister and an allocate with the session {SLOT, random
//                      token} in a record claiming SLOT as its sender, and an allocate naming
//                      SLOT's session in a record of the attacker's own slot; answers
//                      "forge sent=M" (M records the inbox took)
//   reattach H:P       over a new connection to the engine at H:P, allocates and frees a block
//                      with this process's session: "reattach ok" or "reattach <errc>"
//   session            "session SLOT TOKEN ENGINE_ID" (its session, decimal)
//   handoff H:P        asks the engine at H:P where its door is, gets a ticket there, prints
//                      "handoff SLOT TOKEN ENGINE_ID TICKET_LINE" and exits at once (status 0,
//                      without unregistering): whoever re-attaches with them does so for a
//                      process that has exited
// With --no-register it does not register (prints "ready unregistered") and talks to the
// engine's port directly, as anything that reaches it can:
//   impersonate ID     tries to link as peer engine ID without a proof, from an impostor actor
//                      that answers every offer with a forged receipt and every chunk with done:
//                      a hello to the engine actor itself, a challenge and hello with an empty
//                      proof at the engine's peer gateway, and a hello forwarded to the engine
//                      with a guessed gateway key: "impersonate engine=R gateway=R forward=R"
//                      (R = "ok", the errc, or "refused" for a message the engine does not take)
//   impostor           "impostor offers=N chunks=M commits=K" (what reached the impostor)
//   peerlink ID none | key FILE | cert CERT KEY
//                      links as peer engine ID at the engine's peer gateway with a proof made
//                      with nothing, the key in FILE, or the PEM certificate CERT signed with the
//                      PEM private key KEY (which need not belong to CERT): "peerlink ok" or
//                      "peerlink <errc>"
//   offer              offers the linked engine a block of 4096 bytes for the engine itself,
//                      sealed with the link of the last peerlink: "offer ok" or "offer <errc>"
//   forge TOKEN ID E B G S
//                      knows link token TOKEN but not its key: sends an offer, a chunk, a
//                      commit and an abort of transfer ID and a version and a pull of the ref
//                      {E, B, G, S} under it, sealed with a key of its own:
//                      "forge offer=R chunk=R commit=R version=R pull=R"
//   dial HOST:PORT     (registered) asks the engine to link to HOST:PORT: "dial ok" or
//                      "dial <errc>"
//   hold S             (registered) allocates S bytes and keeps them: "hold ok" or "hold <errc>"
//   register           registers without a door ticket: "register ok" or "register <errc>"
//   stats              anonymous stats: "stats processes=N listed=M names=K"
// A registration that fails prints "refused <errc>" and exits with 1.
// With --door PATH (instead of --engine) it only knocks at the local door at PATH, one line per
// command on stdin, and exits at the end of its input:
//   knock              "knock <the door's answer line>" ("ticket <hex>" or "denied <reason>")
//   orphan             a child process connects to the door and exits; once it is reaped, this
//                      process sends the request over the connection the child made:
//                      "orphan <the door's answer line>"
//   zombie             the same, but the request goes out while the child has exited and is
//                      not yet reaped: "zombie <the door's answer line>"
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <iostream>
#include <random>
#include <set>
#include <vector>
#include <sstream>
#include <string>
#include <type_traits>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include <fstream>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstring>

#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"
#include "link_seal.hpp"
#include "peer_auth.hpp"
#include "support/fake_peer.hpp"
#include "admin_layout.hpp"
#include "door_protocol.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_writer.hpp"
#include "fastpath/request_record.hpp"
#include <caf/binary_serializer.hpp>

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
  out << " share=" << outcome(me.share(ref, me.id(), access_mode::read_write));
  out << " transfer=" << outcome(me.transfer(ref, me.id()));
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

std::string sessions(caf::actor_system& sys, client& me, process_id slot, int n) {
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
      .receive([&](process_id) { ++accepted; }, refused);
  }
  return "sessions tried=" + std::to_string(3 * n) + " accepted=" + std::to_string(accepted);
}

// Takes every free byte of the arena (blocks of halving sizes) and counts bytes not zero.
// One record of (header, message) into `out`; whether the inbox took it.
bool send_request(fastpath::inbox_writer& out, caf::actor_system& sys, uint64_t id,
                  caf::message msg) {
  std::vector<char> buf(fastpath::request_header_bytes, 0);
  fastpath::store_u64(reinterpret_cast<std::byte*>(buf.data()), id);
  caf::binary_serializer sink{sys, buf};
  if (sink(msg))
    return false;
  return static_cast<bool>(out.send({reinterpret_cast<const std::byte*>(buf.data()), buf.size()},
                                    1s));
}

// Records claim a sender slot as a raw uint32_t (inbox_layout.hpp): here another process's.
std::string forge(caf::actor_system& sys, client& me, process_id victim, int n) {
  auto slot = to_slot(victim);
  auto name = fastpath::inbox::segment_name(me.info().inbox_engine, admin::engine_slot);
  auto as_victim = fastpath::inbox_writer::open(name, slot);
  auto as_me = fastpath::inbox_writer::open(name, to_slot(me.id()));
  if (!as_victim || !as_me)
    return "forge no-inbox";
  std::mt19937_64 rng{std::random_device{}()};
  int sent = 0;
  auto bytes = [&](size_t len) {
    std::vector<std::byte> v(len);
    for (auto& b : v)
      b = static_cast<std::byte>(rng());
    return v;
  };
  for (int i = 0; i < n; ++i) {
    sent += static_cast<bool>(as_victim->send(bytes(rng() % 200), 1s));
    sent += static_cast<bool>(as_victim->send(bytes(fastpath::request_header_bytes), 1s));
    auto garbage = bytes(fastpath::request_header_bytes + 1 + rng() % 64);
    sent += static_cast<bool>(as_victim->send(garbage, 1s));
    session forged{victim, rng()};
    sent += send_request(*as_victim, sys, rng() | 1,
                         caf::make_message(register_atom::value, std::string{"x"}, uint64_t{0},
                                           door_ticket{rng(), rng()}, protocol_version));
    sent += send_request(*as_victim, sys, rng() | 1,
                         caf::make_message(unregister_atom::value, forged));
    sent += send_request(*as_victim, sys, rng() | 1,
                         caf::make_message(allocate_atom::value, forged, uint64_t{4096}));
    sent += send_request(*as_me, sys, rng() | 1,
                         caf::make_message(allocate_atom::value, forged, uint64_t{4096}));
  }
  return "forge sent=" + std::to_string(sent);
}

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

struct impostor_counts {
  std::atomic<int> offers{0};
  std::atomic<int> chunks{0};
  std::atomic<int> commits{0};
};

// What an engine hands its peer gateway's messages on with; the attacker does not know the key.
using forward_atom = caf::atom_constant<caf::atom("shm_fwd")>;

std::string outcome_of(const caf::error& e) {
  return e.category() == error_category ? code(e) : std::string{"refused"};
}

std::vector<char> random_nonce() {
  std::vector<char> nonce(link_nonce_bytes);
  std::random_device rd;
  for (auto& c : nonce)
    c = static_cast<char>(rd());
  return nonce;
}

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return std::nullopt;
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

// Pretends to be a peer engine (the gateway it names in its hellos): accepts everything and
// forges receipts.
caf::behavior impostor(caf::event_based_actor*, std::shared_ptr<impostor_counts> n) {
  return {
    [n](offer_atom, const peer_seal&, transmit_offer& o) {
      ++n->offers;
      return transmit_receipt{block_ref{o.sender, 1, 1, o.size}, o.size, 0, o.hash, true, 0, 0, {}};
    },
    [n](chunk_atom, const peer_seal&, transmit_chunk&) {
      ++n->chunks;
      return done_atom::value;
    },
    [n](commit_atom, const peer_seal&, uint64_t, uint64_t) {
      ++n->commits;
      return transmit_receipt{block_ref{1, 1, 1, 1}, 1, 0, 0, false, 0, 0, {}};
    },
    [](abort_atom, const peer_seal&, uint64_t) {},
  };
}

// Tries to link as engine `id` without a proof, in every way open to a caller at the client
// port; `fake` is the gateway it names.
std::string impersonate(caf::actor_system& sys, engine_actor engine, peer_actor gateway,
                        caf::actor fake, uint64_t id) {
  caf::scoped_actor self{sys, true};
  std::string direct = "?", through_gateway = "?", forwarded = "?";
  // 1. the hello that engines used to take at the client port
  self->request(caf::actor_cast<caf::actor>(engine), 5s, hello_atom::value, id, uint64_t{0x1717})
    .receive([&](const caf::message&) { direct = "ok"; },
             [&](caf::error& e) { direct = outcome_of(e); });
  // 2. the gateway, with a challenge and an empty proof
  std::vector<char> nonce;
  auto exchange = link_key_exchange::generate();
  if (!exchange)
    return "cannot-make-a-key";
  self->request(gateway, 5s, challenge_atom::value, protocol_version, id, random_nonce(),
                exchange->public_key())
    .receive([&](uint32_t, uint64_t, std::vector<char>& n, std::vector<char>&,
                 peer_proof&) { nonce = std::move(n); },
             [&](caf::error& e) { through_gateway = outcome_of(e); });
  if (!nonce.empty())
    self->request(gateway, 5s, hello_atom::value, id, uint64_t{0x1717}, fake, nonce, peer_proof{})
      .receive([&](uint64_t, uint64_t) { through_gateway = "ok"; },
               [&](caf::error& e) { through_gateway = outcome_of(e); });
  // 3. straight to the engine, as if its gateway handed the hello on (with a guessed key)
  self->request(caf::actor_cast<caf::actor>(engine), 5s, forward_atom::value, uint64_t{0x1234},
                hello_atom::value, id, uint64_t{0x1717}, fake, std::string{"forged"},
                std::vector<char>(2 * link_mac_key_bytes, 'k'))
    .receive([&](uint64_t, uint64_t) { forwarded = "ok"; },
             [&](caf::error& e) { forwarded = outcome_of(e); });
  return "engine=" + direct + " gateway=" + through_gateway + " forward=" + forwarded;
}

// Links as engine `id` at `gateway` with a proof made as `how` says; answers "ok" or the errc.
// `fake` is the gateway it names (it must outlive the link: the engine watches it).
std::string peer_link_as(caf::actor_system& sys, peer_actor gateway, caf::actor fake, uint64_t id,
                         std::istream& how, test::fake_peer_link& link) {
  std::string mode;
  how >> mode;
  std::optional<std::string> key, cert, cert_key;
  if (mode == "key") {
    std::string file;
    how >> file;
    if (!(key = slurp(file)))
      return "no-such-file";
  } else if (mode == "cert") {
    std::string cert_file, key_file;
    how >> cert_file >> key_file;
    cert = slurp(cert_file);
    cert_key = slurp(key_file);
    if (!cert || !cert_key)
      return "no-such-file";
  }
  caf::scoped_actor self{sys, true};
  caf::error err;
  bool signed_ok = true;
  link = test::handshake_as(
    self, gateway, fake, id,
    [&](const std::vector<unsigned char>& transcript) {
      if (key)
        return peer_authenticator::hmac_with({key->begin(), key->end()}, transcript);
      if (cert) {
        auto proof = peer_authenticator::sign_with(*cert, *cert_key, transcript);
        if (proof)
          return std::move(*proof);
        signed_ok = false;
      }
      return peer_proof{};
    },
    err, uint64_t{0x1717});
  if (!signed_ok)
    return "cannot-sign";
  return link.token != 0 ? "ok" : outcome_of(err);
}

// Knows link token `token` (told by the test) but not the link's key: sends every peer message
// under it, sealed with a key of its own, for transfer `id` and the block `ref`. Answers
// "forge offer=R chunk=R commit=R version=R pull=R" (R = "ok" or the errc; the abort it also
// sends has no answer).
std::string forge_under(caf::actor_system& sys, peer_actor gateway, uint64_t token, uint64_t id,
                        const block_ref& ref) {
  caf::scoped_actor self{sys, true};
  std::vector<unsigned char> guessed(link_mac_key_bytes);
  std::random_device rd;
  for (auto& b : guessed)
    b = static_cast<unsigned char>(rd());
  link_sealer mine{token, guessed, uint64_t{1} << 40}; // far above any sequence of the link
  auto ask = [&](auto answer, auto&&... xs) {
    using answer_type = typename decltype(answer)::type;
    std::string r = "?";
    self->request(gateway, 5s, std::forward<decltype(xs)>(xs)...)
      .receive([&](answer_type&, peer_seal&) { r = "ok"; },
               [&](caf::error& e) { r = outcome_of(e); });
    return r;
  };
  std::type_identity<transmit_receipt> receipt;
  std::type_identity<done_atom> done;
  std::type_identity<uint64_t> version;
  std::vector<char> data(4096, 'f');
  transmit_offer o{0, id ^ 0x77, data.size(), XXH3_64bits(data.data(), data.size()), data.size(),
                   {}, {}, 0, false};
  transmit_chunk c{0, id, 0, XXH3_64bits(data.data(), data.size()), data};
  std::string answer = "forge";
  answer += " offer=" + ask(receipt, offer_atom::value, mine.seal(offer_atom::value, o), o);
  answer += " chunk=" + ask(done, chunk_atom::value, mine.seal(chunk_atom::value, c), c);
  answer += " commit=" + ask(receipt, commit_atom::value,
                             mine.seal(commit_atom::value, id, c.hash), id, c.hash);
  self->send(gateway, abort_atom::value, mine.seal(abort_atom::value, id), id);
  answer += " version=" + ask(version, version_atom::value, mine.seal(version_atom::value, ref),
                              ref);
  answer += " pull=" + ask(version, pull_atom::value, mine.seal(pull_atom::value, ref), ref);
  return answer;
}

engine_actor dial(caf::actor_system& sys, const endpoint& ep) {
  engine_actor handle;
  caf::scoped_actor self{sys, true};
  self->request(sys.middleman().actor_handle(), 5s, caf::connect_atom::value, ep.host, ep.port)
    .receive(
      [&](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
        handle = caf::actor_cast<engine_actor>(ptr);
      },
      [&](caf::error&) {});
  return handle;
}

int unregistered(caf::actor_system& sys, const endpoint& ep) {
  auto engine = dial(sys, ep);
  if (!engine) {
    std::cerr << "attacker: no engine at the port\n";
    return 1;
  }
  auto counts = std::make_shared<impostor_counts>();
  auto fake = sys.spawn<caf::hidden>(impostor, counts);
  peer_actor gateway;
  {
    caf::scoped_actor self{sys, true};
    self->request(engine, 5s, gateway_atom::value)
      .receive([&](caf::actor& gw) { gateway = caf::actor_cast<peer_actor>(gw); },
               [&](caf::error&) {});
  }
  if (!gateway) {
    std::cerr << "attacker: the engine names no peer gateway\n";
    return 1;
  }
  test::fake_peer_link link;
  std::cout << "ready unregistered" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd;
    in >> cmd;
    std::string answer;
    caf::scoped_actor self{sys, true};
    if (cmd == "impersonate") {
      uint64_t id = 0;
      in >> id;
      answer = "impersonate " + impersonate(sys, engine, gateway, fake, id);
    } else if (cmd == "peerlink") {
      uint64_t id = 0;
      in >> id;
      answer = "peerlink " + peer_link_as(sys, gateway, fake, id, in, link);
    } else if (cmd == "offer") {
      std::vector<char> data(4096, 'o');
      transmit_offer o;
      o.id = link.token ^ 0x5a5a;
      o.size = data.size();
      o.hash = XXH3_64bits(data.data(), data.size());
      o.chunk_bytes = data.size();
      answer = "offer ?";
      self->request(gateway, 5s, offer_atom::value, link.seal(offer_atom::value, o), o)
        .receive([&](transmit_receipt&, peer_seal&) { answer = "offer ok"; },
                 [&](caf::error& e) { answer = "offer " + outcome_of(e); });
    } else if (cmd == "forge") {
      uint64_t token = 0, id = 0;
      in >> token >> id;
      answer = forge_under(sys, gateway, token, id, read_ref(in));
    } else if (cmd == "impostor") {
      answer = "impostor offers=" + std::to_string(counts->offers.load())
               + " chunks=" + std::to_string(counts->chunks.load())
               + " commits=" + std::to_string(counts->commits.load());
    } else if (cmd == "register") {
      answer = "register ?";
      self->request(engine, 5s, register_atom::value, std::string("intruder"), uint64_t{0},
                    door_ticket{}, protocol_version)
        .receive([&](registration&) { answer = "register ok"; },
                 [&](caf::error& e) { answer = "register " + code(e); });
    } else if (cmd == "stats") {
      self->request(engine, 5s, stats_atom::value)
        .receive(
          [&](engine_stats& st) {
            answer = "stats processes=" + std::to_string(st.processes) + " listed="
                     + std::to_string(st.process_list.size())
                     + " names=" + std::to_string(st.name_list.size());
          },
          [&](caf::error& e) { answer = "stats " + code(e); });
    } else {
      answer = "unknown command";
    }
    std::cout << answer << std::endl;
  }
  return 0;
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
      if (p.id == other->id())
        granted = p.quota_bytes;
  return "quota ok " + std::to_string(granted);
}

// The door's answer to a request line sent over the connected socket `fd`, without its
// newline; "(no answer)" if none comes within 5 s.
std::string exchange_at_door(int fd) {
  auto request = door::format_request();
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL)
      != static_cast<ssize_t>(request.size()))
    return "(send failed)";
  std::string line;
  char c = 0;
  pollfd p{fd, POLLIN, 0};
  while (line.size() < 4 * door::max_line && ::poll(&p, 1, 5000) > 0 && ::recv(fd, &c, 1, 0) == 1
         && c != '\n')
    line += c;
  return line.empty() ? "(no answer)" : line;
}

std::optional<sockaddr_un> door_address(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path))
    return std::nullopt;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Knocks at the door at `path` as told on stdin (see the top of this file).
int door_only(const std::string& path) {
  auto addr = door_address(path);
  if (!addr) {
    std::cerr << "attacker: door path too long\n";
    return 2;
  }
  auto* where = reinterpret_cast<const sockaddr*>(&*addr);
  std::cout << "ready door" << std::endl;
  for (std::string cmd; std::getline(std::cin, cmd);) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return 1;
    std::string answer;
    if (cmd == "knock") {
      answer = "knock " + (::connect(fd, where, sizeof(*addr)) == 0 ? exchange_at_door(fd)
                                                                      : "(cannot connect)");
    } else if (cmd == "orphan" || cmd == "zombie") {
      pid_t child = ::fork();
      if (child == 0) // the kernel records the child as the connecting process
        ::_exit(::connect(fd, where, sizeof(*addr)) == 0 ? 0 : 1);
      siginfo_t info{};
      // exited; reaped unless a zombie is asked for
      int options = WEXITED | (cmd == "zombie" ? WNOWAIT : 0);
      bool connected = child > 0 && ::waitid(P_PID, static_cast<id_t>(child), &info, options) == 0
                       && info.si_code == CLD_EXITED && info.si_status == 0;
      answer = cmd + " " + (connected ? exchange_at_door(fd) : "(child could not connect)");
      if (cmd == "zombie" && child > 0)
        ::waitpid(child, nullptr, 0);
    } else {
      answer = "unknown command";
    }
    ::close(fd);
    std::cout << answer << std::endl;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string{argv[1]} == "--door")
    return door_only(argv[2]); // no actor system: a plain process at the door
  // "--transport shm|basp" anywhere: how its requests travel (local.transport).
  auto transport = local_transport::shm;
  std::vector<char*> args{argv, argv + argc};
  for (size_t i = 1; i + 1 < args.size(); ++i)
    if (std::string{args[i]} == "--transport") {
      transport = std::string{args[i + 1]} == "basp" ? local_transport::basp : local_transport::shm;
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      break;
    }
  argc = static_cast<int>(args.size());
  argv = args.data();
  auto ep = argc < 3 || std::string{argv[1]} != "--engine" ? std::nullopt
                                                            : parse_endpoint(argv[2]);
  std::string name = "attacker";
  if (argc == 5 && std::string{argv[3]} == "--name")
    name = argv[4];
  bool no_register = argc == 4 && std::string{argv[3]} == "--no-register";
  if (!ep || (argc != 3 && argc != 5 && !no_register)) {
    std::cerr << "usage: cafshm-attacker --engine HOST:PORT [--name NAME | --no-register]\n"
                 "       cafshm-attacker --door PATH\n";
    return 2;
  }
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  settings s;
  s.role = role::client;
  s.local.transport = transport;
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  if (no_register)
    return unregistered(sys, *ep);
  auto me = client::connect(sys, *ep, name);
  if (!me) {
    std::cout << "refused " << code(me.error()) << std::endl;
    std::cerr << "attacker: " << describe(me.error()) << "\n";
    return 1;
  }
  auto scratch = me->allocate(4096 + 7); // a block of its own, for copies
  if (!scratch) {
    std::cerr << "attacker: " << describe(scratch.error()) << "\n";
    return 1;
  }
  std::cout << "ready " << me->id() << " " << me->info().engine_id << " "
            << (me->transport() == local_transport::shm ? "shm" : "basp") << std::endl;
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
      answer = sessions(sys, *me, process_id{slot}, n);
    } else if (cmd == "forge") {
      uint32_t slot = 0;
      int n = 0;
      in >> slot >> n;
      answer = forge(sys, *me, process_id{slot}, n);
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
    } else if (cmd == "reattach") {
      std::string where;
      in >> where;
      auto target = parse_endpoint(where);
      auto engine = target ? dial(sys, *target) : engine_actor{};
      answer = "reattach ?";
      if (!engine) {
        answer = "reattach engine_unreachable";
      } else {
        caf::scoped_actor self{sys, true};
        self->request(engine, 5s, allocate_atom::value, me->session(), uint64_t{4096})
          .receive(
            [&](block_ref& r) {
              answer = "reattach ok";
              self->request(engine, 5s, free_atom::value, me->session(), r)
                .receive([](done_atom) {}, [&](caf::error& e) { answer = "reattach " + code(e); });
            },
            [&](caf::error& e) { answer = "reattach " + code(e); });
      }
    } else if (cmd == "session") {
      answer = "session " + to_string(me->session().process) + " "
               + std::to_string(me->session().token) + " " + std::to_string(me->info().engine_id);
    } else if (cmd == "handoff") {
      std::string where;
      in >> where;
      auto target = parse_endpoint(where);
      auto engine = target ? dial(sys, *target) : engine_actor{};
      std::string path;
      if (engine) {
        caf::scoped_actor self{sys, true};
        self->request(engine, 5s, door_atom::value)
          .receive([&](std::string& p) { path = std::move(p); }, [](caf::error&) {});
      }
      auto ticket = path.empty() ? caf::expected<door_ticket>{make_error(errc::engine_unreachable,
                                                                         "no door")}
                                 : door::ask(path, 5s);
      if (!ticket) {
        answer = "handoff " + code(ticket.error());
      } else {
        auto line = door::format_ticket(*ticket);
        while (!line.empty() && line.back() == '\n')
          line.pop_back();
        std::cout << "handoff " << me->session().process << " " << me->session().token << " "
                  << me->info().engine_id << " " << line << std::endl;
        std::_Exit(0);
      }
    } else if (cmd == "copyflood") {
      uint64_t ranges = 0, length = 0;
      in >> ranges >> length;
      answer = copy_flood(*me, ranges, length);
    } else if (cmd == "quota") {
      uint64_t quota = 0;
      in >> quota;
      answer = ask_quota(sys, *me, quota);
    } else if (cmd == "dial") {
      std::string where;
      in >> where;
      auto target = parse_endpoint(where);
      if (!target) {
        answer = "dial invalid_argument";
      } else {
        auto linked = me->link(target->host, target->port);
        answer = "dial " + outcome(linked);
      }
    } else if (cmd == "hold") {
      uint64_t size = 0;
      in >> size;
      auto ref = me->allocate(size);
      answer = "hold " + outcome(ref);
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
