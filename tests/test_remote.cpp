// Two engines (two cafshmd processes) exchanging blocks: transmit in chunks, the content cache,
// remote reads, failures on both sides, a peer sending garbage.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "memory_manager.hpp"
#include "support/client_system.hpp"
#include "support/command.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"
#include "support/fake_peer.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;

namespace {

std::string remote_yaml(const std::string& chunk, int window, const std::string& cache) {
  return "remote:\n  chunk: " + chunk + "\n  window: " + std::to_string(window)
         + "\n  cache: " + cache + "\n";
}

// Engines a and b (two cafshmd) and a process registered at each.
struct two_engines {
  daemon_process a;
  daemon_process b;
  client_system cs;
  std::optional<client> at_a;
  std::optional<client> at_b;

  two_engines(const std::string& arena_a, const std::string& yaml_a, const std::string& arena_b,
              const std::string& yaml_b, const std::string& name_a = "sender",
              const std::string& name_b = "sink")
    : a(unique_name("cafshm-test-ra"), arena_a, 0, yaml_a),
      b(unique_name("cafshm-test-rb"), arena_b, 0, yaml_b) {
    REQUIRE(a.ready());
    REQUIRE(b.ready());
    auto ca = client::connect(cs.sys, a.address(), name_a);
    auto cb = client::connect(cs.sys, b.address(), name_b);
    REQUIRE(ca);
    REQUIRE(cb);
    at_a.emplace(std::move(*ca));
    at_b.emplace(std::move(*cb));
  }
};

// A block of `size` random bytes owned by `c`; returns its ref and the XXH3 of its bytes.
std::pair<block_ref, uint64_t> random_block(client& c, uint64_t size, uint64_t seed) {
  auto ref = c.allocate(size);
  REQUIRE(ref);
  auto view = c.map(*ref, access_mode::read_write);
  REQUIRE(view);
  std::mt19937_64 rng{seed};
  auto* p = view->data();
  for (uint64_t i = 0; i < size; i += 8) {
    uint64_t x = rng();
    std::memcpy(p + i, &x, std::min<uint64_t>(8, size - i));
  }
  auto hash = XXH3_64bits(view->data(), size);
  REQUIRE(c.unmap(std::move(*view)));
  return {*ref, hash};
}

uint64_t hash_in_place(client& c, const block_ref& ref) {
  auto view = c.map(ref, access_mode::read);
  REQUIRE(view);
  auto h = XXH3_64bits(view->data(), view->size());
  REQUIRE(c.unmap(std::move(*view)));
  return h;
}

} // namespace

TEST_CASE("transmit moves identical bytes between engines: 1 byte, 4 MiB +-1, 256 MiB") {
  two_engines e{"512MiB", remote_yaml("4MiB", 4, "0"), "1GiB",
                remote_yaml("4MiB", 4, "0"), "sender", "sink"};
  auto& b = e.b;
  auto& sender = e.at_a;
  auto& sink = e.at_b;
  auto before_b = sink->stats();
  for (uint64_t size : {uint64_t{1}, (uint64_t{4} << 20) - 1, uint64_t{4} << 20,
                        (uint64_t{4} << 20) + 1, uint64_t{256} << 20}) {
    CAPTURE(size);
    auto [ref, hash] = random_block(*sender, size, size);
    transmit_target target;
    target.process = "sink";
    auto receipt = sender->transmit(ref, b.address_text(), target);
    REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
    CHECK(receipt->hash == hash);
    CHECK(receipt->bytes == size);
    CHECK(receipt->payload_bytes == size);
    CHECK_FALSE(receipt->cache_hit);
    CHECK(receipt->remote.engine == sink->info().engine_id);
    CHECK(hash_in_place(*sink, receipt->remote) == hash); // the sink owns it, reads in place
    REQUIRE(sink->free(receipt->remote));
    REQUIRE(sender->free(ref));
  }
  CHECK(eventually(*sink, 2s, [&](const engine_stats& st) {
    return st.free_bytes == before_b->free_bytes && st.blocks == before_b->blocks
           && st.transmits_in == 0;
  }));
  CHECK(eventually(*sender, 2s, [](const engine_stats& st) {
    return st.blocks == 0 && st.transmits_out == 0 && st.free_bytes == st.arena_bytes;
  }));
}

TEST_CASE("a second transmit of unchanged content moves no payload and counts a cache hit") {
  two_engines e{"64MiB", remote_yaml("1MiB", 4, "0"), "64MiB",
                remote_yaml("1MiB", 4, "32MiB"), "sender", "sink"};
  auto& b = e.b;
  auto& sender = e.at_a;
  auto& sink = e.at_b;
  auto [ref, hash] = random_block(*sender, 3 << 20, 7);
  transmit_target target;
  target.process = "sink";
  auto first = sender->transmit(ref, b.address_text(), target);
  REQUIRE(first);
  CHECK_FALSE(first->cache_hit);
  CHECK(first->payload_bytes == 3u << 20);
  auto second = sender->transmit(ref, b.address_text(), target);
  REQUIRE(second);
  CHECK(second->cache_hit);
  CHECK(second->payload_bytes == 0);
  CHECK(second->remote != first->remote); // a block of its own, with the same bytes
  CHECK(hash_in_place(*sink, second->remote) == hash);
  auto st = sink->stats();
  REQUIRE(st);
  CHECK(st->cache_hits == 1);
  CHECK(st->cache_misses == 1);
  CHECK(st->cache_bytes_saved == 3u << 20);
  CHECK(st->cache_entries == 1);
  // Named, engine-held destination: stored under a name at the other engine.
  transmit_target named;
  named.name = "copied";
  auto third = sender->transmit(ref, b.address_text(), named);
  REQUIRE(third);
  auto found = sink->lookup("copied");
  REQUIRE(found);
  CHECK(*found == third->remote);
  CHECK(hash_in_place(*sink, *found) == hash);
  REQUIRE(sink->remove("copied"));
  REQUIRE(sink->free(first->remote));
  REQUIRE(sink->free(second->remote));
  REQUIRE(sender->free(ref));
}

TEST_CASE("with remote.cache_hit hand_over a cache hit delivers the cached block itself, with "
          "no copy, and the content leaves the cache") {
  two_engines e{"64MiB", remote_yaml("1MiB", 4, "0"), "64MiB",
                remote_yaml("1MiB", 4, "32MiB") + "  cache_hit: hand_over\n", "sender", "sink"};
  auto& sender = e.at_a;
  auto& sink = e.at_b;
  auto [ref, hash] = random_block(*sender, 3 << 20, 11);
  transmit_target target;
  target.process = "sink";
  auto first = sender->transmit(ref, e.b.address_text(), target);
  REQUIRE(first);
  CHECK_FALSE(first->cache_hit);
  auto cached = sink->stats();
  REQUIRE(cached);
  CHECK(cached->cache_entries == 1);
  CHECK(cached->cache_bytes == 3u << 20);
  auto second = sender->transmit(ref, e.b.address_text(), target);
  REQUIRE(second);
  CHECK(second->cache_hit);
  CHECK(second->payload_bytes == 0);
  CHECK(hash_in_place(*sink, second->remote) == hash);
  auto handed = sink->stats();
  REQUIRE(handed);
  CHECK(handed->cache_hits == 1);
  CHECK(handed->cache_entries == 0);
  CHECK(handed->cache_bytes == 0);
  // The arena holds the two delivered blocks and nothing else: the second is the former cache
  // block, not a third copy.
  CHECK(handed->used_bytes == cached->used_bytes);
  CHECK(handed->requested_bytes == cached->requested_bytes);
  // The sink owns it like any delivered block: it writes it, frees it, and the bytes return.
  auto view = sink->map(second->remote, access_mode::read_write);
  REQUIRE(view);
  view->data()[0] = std::byte{0x5a};
  REQUIRE(sink->unmap(std::move(*view)));
  // The content left the cache: the next transmit of it moves its payload and is cached again.
  auto third = sender->transmit(ref, e.b.address_text(), target);
  REQUIRE(third);
  CHECK_FALSE(third->cache_hit);
  CHECK(third->payload_bytes == 3u << 20);
  CHECK(hash_in_place(*sink, third->remote) == hash);
  REQUIRE(sink->free(first->remote));
  REQUIRE(sink->free(second->remote));
  REQUIRE(sink->free(third->remote));
  REQUIRE(sender->free(ref));
  CHECK(eventually(*sink, 5s, [](const engine_stats& st) { // only the cache's block is left
    return st.cache_entries == 1 && st.used_bytes == st.cache_bytes;
  }));
}

TEST_CASE("a remote read is served from the cache until the block changes") {
  two_engines e{"64MiB", remote_yaml("1MiB", 4, "0"), "64MiB",
                remote_yaml("1MiB", 4, "16MiB"), "owner", "reader"};
  auto& a = e.a;
  auto& owner = e.at_a;
  auto& reader = e.at_b;
  REQUIRE(reader->link("127.0.0.1", a.port()));
  std::string text(100000, 'a');
  auto ref = owner->allocate(text.size());
  REQUIRE(ref);
  REQUIRE(owner->write(*ref, 0, text));
  // Not exported yet: the owning engine refuses peers.
  auto denied = reader->read(*ref, 0, 10);
  REQUIRE_FALSE(denied);
  CHECK(code_of(denied.error()) == errc::access_denied);
  REQUIRE(owner->export_block(*ref));
  auto r1 = reader->read(*ref, 10, 20);
  REQUIRE_MESSAGE(r1, (r1 ? std::string{} : describe(r1.error())));
  CHECK(std::string(r1->begin(), r1->end()) == std::string(20, 'a'));
  auto r2 = reader->read(*ref, 0, text.size());
  REQUIRE(r2);
  auto st = reader->stats();
  CHECK(st->cache_misses == 1);
  CHECK(st->cache_hits == 1);
  // A write bumps the version: the next read fetches again and sees the new bytes.
  REQUIRE(owner->write(*ref, 0, std::string("changed")));
  auto r3 = reader->read(*ref, 0, 7);
  REQUIRE(r3);
  CHECK(std::string(r3->begin(), r3->end()) == "changed");
  st = reader->stats();
  CHECK(st->cache_misses == 2);
  CHECK(st->cache_entries == 1); // the stale copy was dropped
  // A write through a view (no request reports it) is never hidden by the cached copy, neither
  // after the view is closed nor while it is open.
  auto view = owner->map(*ref, access_mode::read_write);
  REQUIRE(view);
  std::memcpy(view->data(), "viewed", 6);
  REQUIRE(owner->unmap(std::move(*view)));
  auto r4 = reader->read(*ref, 0, 7);
  REQUIRE(r4);
  CHECK(std::string(r4->begin(), r4->end()) == "viewedd");
  auto open = owner->map(*ref, access_mode::read_write);
  REQUIRE(open);
  auto r5 = reader->read(*ref, 0, 7);
  REQUIRE(r5);
  CHECK(std::string(r5->begin(), r5->end()) == "viewedd");
  std::memcpy(open->data(), "opened", 6);
  auto r6 = reader->read(*ref, 0, 7);
  REQUIRE(r6);
  CHECK(std::string(r6->begin(), r6->end()) == "openedd");
  REQUIRE(owner->unmap(std::move(*open)));
  st = reader->stats();
  CHECK(st->cache_misses == 5);
  auto oob = reader->read(*ref, text.size() - 1, 2);
  REQUIRE_FALSE(oob);
  CHECK(code_of(oob.error()) == errc::out_of_range);
  REQUIRE(owner->free(*ref));
  auto gone = reader->read(*ref, 0, 1);
  REQUIRE_FALSE(gone);
  CHECK(code_of(gone.error()) == errc::stale_block);
}

TEST_CASE("a block sent again unchanged is not hashed again, and a changed one is never sent stale") {
  two_engines e{"64MiB", remote_yaml("1MiB", 4, "0"), "64MiB",
                remote_yaml("1MiB", 4, "32MiB"), "sender", "sink"};
  auto to = e.b.address_text();
  auto& sender = e.at_a;
  auto& sink = e.at_b;
  auto [ref, hash] = random_block(*sender, (2 << 20) + 3, 21);
  transmit_target target;
  target.process = "sink";
  std::vector<block_ref> received;
  // Sends the block; checks that the sink got exactly `expected`, and whether from its cache.
  auto send = [&](uint64_t expected, bool from_cache) {
    auto r = sender->transmit(ref, to, target);
    REQUIRE_MESSAGE(r, (r ? std::string{} : describe(r.error())));
    CHECK(r->hash == expected);
    CHECK(r->cache_hit == from_cache);
    CHECK(r->payload_bytes == (from_cache ? 0 : ref.size));
    CHECK(hash_in_place(*sink, r->remote) == expected);
    received.push_back(r->remote);
  };
  auto reused = [&] { return sender->stats()->digests_reused; };
  // A sink with a cache asks for the block's digest up front: the first two transmits hash the
  // block, the second one is a cache hit at the sink without a hash at the sender.
  send(hash, false);
  CHECK(reused() == 0);
  send(hash, true);
  CHECK(reused() == 1);

  // Written through a view (no request tells the engine what changed): hashed anew.
  auto view = sender->map(ref, access_mode::read_write);
  REQUIRE(view);
  view->data()[100] ^= std::byte{0xff};
  auto through_view = XXH3_64bits(view->data(), view->size());
  REQUIRE(sender->unmap(std::move(*view)));
  send(through_view, false);
  CHECK(reused() == 1);
  send(through_view, true);
  CHECK(reused() == 2);

  // Written by a request: hashed anew.
  REQUIRE(sender->write(ref, 0, std::string("written")));
  auto by_request = hash_in_place(*sender, ref);
  send(by_request, false);
  CHECK(reused() == 2);

  // While a view that may write stays open, the digest is computed for every transmit.
  auto open = sender->map(ref, access_mode::read_write);
  REQUIRE(open);
  send(by_request, true); // cached at the sink by the transmit before
  CHECK(reused() == 2);
  std::memcpy(open->data(), "changed", 7);
  auto while_open = XXH3_64bits(open->data(), open->size());
  send(while_open, false);
  CHECK(reused() == 2);
  REQUIRE(sender->unmap(std::move(*open)));

  for (const auto& r : received)
    REQUIRE(sink->free(r));
  REQUIRE(sender->free(ref));
}

TEST_CASE("a destination without room refuses a transmit up front with out_of_memory") {
  two_engines e{"64MiB", remote_yaml("1MiB", 2, "0"), "16MiB",
                remote_yaml("1MiB", 2, "0"), "sender", "sink"};
  auto& b = e.b;
  auto& sender = e.at_a;
  auto& sink = e.at_b;
  auto [ref, hash] = random_block(*sender, 32 << 20, 1);
  auto r = sender->transmit(ref, b.address_text());
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::out_of_memory);
  auto st = sink->stats();
  CHECK(st->blocks == 0);
  CHECK(st->free_bytes == st->arena_bytes);
  CHECK(sender->stats()->transmits_out == 0);
  auto unknown = sender->transmit(ref, b.address_text(), transmit_target{"nobody", "", {}});
  REQUIRE_FALSE(unknown);
  CHECK(code_of(unknown.error()) == errc::unknown_process);
  REQUIRE(sender->free(ref));
}

TEST_CASE("a peer killed mid-transfer fails the sender and loses nothing on either side") {
  SUBCASE("the destination dies") {
    daemon_process a{unique_name("cafshm-test-ra"), "512MiB", 0, remote_yaml("64KiB", 1, "0")};
    daemon_process b{unique_name("cafshm-test-rb"), "512MiB", 0, remote_yaml("64KiB", 1, "0")};
    REQUIRE(a.ready());
    REQUIRE(b.ready());
    client_system cs;
    client_options opts;
    opts.timeout = 30s; // the engines hash and scrub 256 MiB, also under sanitizers and load
    auto sender = client::connect(cs.sys, a.address(), "sender", opts);
    auto watcher = client::connect(cs.sys, b.address(), "watcher", opts);
    REQUIRE(sender);
    REQUIRE(watcher);
    auto [ref, hash] = random_block(*sender, 256 << 20, 3);
    auto pending = std::async(std::launch::async,
                              [&] { return sender->transmit(ref, b.address_text()); });
    REQUIRE(eventually(*watcher, 20s, [](const engine_stats& st) { return st.transmits_in == 1; }));
    b.kill_hard();
    REQUIRE(pending.wait_for(30s) == std::future_status::ready);
    auto r = pending.get();
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::peer_failure);
    CHECK(eventually(*sender, 20s, [](const engine_stats& st) {
      return st.transmits_out == 0 && st.blocks == 1 && st.peers.empty();
    }));
    auto freed = sender->free(ref); // the pin was released with the failure: frees at once
    REQUIRE_MESSAGE(freed, (freed ? std::string{} : describe(freed.error())));
    auto st = sender->stats();
    CHECK(st->free_bytes == st->arena_bytes);
  }
  SUBCASE("the sender dies") {
    daemon_process a{unique_name("cafshm-test-ra"), "512MiB", 0, remote_yaml("64KiB", 1, "0")};
    daemon_process b{unique_name("cafshm-test-rb"), "512MiB", 0, remote_yaml("64KiB", 1, "0")};
    REQUIRE(a.ready());
    REQUIRE(b.ready());
    client_system cs;
    client_options opts;
    opts.timeout = 30s; // the engines hash and scrub 256 MiB, also under sanitizers and load
    auto sender = client::connect(cs.sys, a.address(), "sender", opts);
    auto watcher = client::connect(cs.sys, b.address(), "watcher", opts);
    REQUIRE(sender);
    REQUIRE(watcher);
    auto before = watcher->stats();
    auto [ref, hash] = random_block(*sender, 256 << 20, 4);
    auto pending = std::async(std::launch::async,
                              [&] { return sender->transmit(ref, b.address_text(), {}, 5s); });
    REQUIRE(eventually(*watcher, 20s, [](const engine_stats& st) { return st.transmits_in == 1; }));
    a.kill_hard();
    CHECK(eventually(*watcher, 20s, [&](const engine_stats& st) {
      return st.transmits_in == 0 && st.blocks == before->blocks
             && st.free_bytes == before->free_bytes;
    }));
    REQUIRE(pending.wait_for(30s) == std::future_status::ready);
    CHECK_FALSE(pending.get());
  }
}

TEST_CASE("a peer sending garbage is detected: corrupted chunk, wrong block checksum") {
  daemon_process b{unique_name("cafshm-test-rb"), "64MiB", 0, remote_yaml("1MiB", 2, "0")};
  REQUIRE(b.ready());
  client_system cs;
  auto watcher = client::connect(cs.sys, b.address(), "watcher");
  REQUIRE(watcher);
  auto before = watcher->stats();
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::error link_error;
  auto link = test::link_fake_peer(self, *engine, 4242, link_error);
  REQUIRE_MESSAGE(link.token != 0, describe(link_error));
  auto ask_offer = [&](transmit_offer o) {
    caf::error err;
    self->request(link.gateway, 10s, offer_atom::value, link.seal(offer_atom::value, o), o)
      .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  };
  auto ask_chunk = [&](transmit_chunk c) {
    caf::error err;
    self->request(link.gateway, 10s, chunk_atom::value, link.seal(chunk_atom::value, c), c)
      .receive([](done_atom, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  };
  auto ask_commit = [&](uint64_t id, uint64_t hash) {
    caf::error err;
    self->request(link.gateway, 10s, commit_atom::value, link.seal(commit_atom::value, id, hash),
                  id, hash)
      .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  };
  std::vector<char> data(8192, 'x');
  data[5000] = 'y';
  auto good_hash = XXH3_64bits(data.data(), data.size());
  std::vector<char> first(data.begin(), data.begin() + 4096);
  std::vector<char> second(data.begin() + 4096, data.end());
  auto first_hash = XXH3_64bits(first.data(), first.size());
  auto second_hash = XXH3_64bits(second.data(), second.size());
  transmit_offer offer{4242, 1, data.size(), 0, 4096, {}, {}, 0, false};
  CHECK_FALSE(ask_offer(offer));
  CHECK(watcher->stats()->transmits_in == 1);
  // A chunk whose bytes do not match its checksum is refused (the sender may resend it).
  auto bad = ask_chunk(transmit_chunk{4242, 1, 0, first_hash ^ 1, first});
  CHECK(code_of(bad) == errc::checksum_mismatch);
  CHECK_FALSE(ask_chunk(transmit_chunk{4242, 1, 0, first_hash, first}));
  CHECK_FALSE(ask_chunk(transmit_chunk{4242, 1, 4096, second_hash, second}));
  // The commit's whole-block checksum does not match what arrived: refused, the block is freed.
  auto commit = ask_commit(1, good_hash ^ 1);
  CHECK(code_of(commit) == errc::checksum_mismatch);
  CHECK(watcher->stats()->transmits_in == 0);
  // A chunk past the end aborts the transfer.
  transmit_offer offer2{4242, 2, 4096, 0, 4096, {}, {}, 0, false};
  CHECK_FALSE(ask_offer(offer2));
  auto oob = ask_chunk(transmit_chunk{4242, 2, 2048, first_hash, first});
  CHECK(code_of(oob) == errc::out_of_range);
  CHECK(code_of(ask_commit(2, good_hash)) == errc::stale_block);
  // A commit before every byte arrived is refused.
  transmit_offer offer3{4242, 3, data.size(), 0, 4096, {}, {}, 0, false};
  CHECK_FALSE(ask_offer(offer3));
  CHECK_FALSE(ask_chunk(transmit_chunk{4242, 3, 4096, second_hash, second}));
  CHECK(code_of(ask_commit(3, good_hash)) == errc::invalid_argument);
  CHECK(watcher->stats()->transmits_in == 0);
  // Chunks out of order (the first resent after a checksum failure) still verify as a whole.
  transmit_offer offer4{4242, 4, data.size(), 0, 4096, {"", "reordered", {}}, {}, 0, false};
  CHECK_FALSE(ask_offer(offer4));
  CHECK(code_of(ask_chunk(transmit_chunk{4242, 4, 0, first_hash ^ 1, first}))
        == errc::checksum_mismatch);
  CHECK_FALSE(ask_chunk(transmit_chunk{4242, 4, 4096, second_hash, second}));
  CHECK_FALSE(ask_chunk(transmit_chunk{4242, 4, 0, first_hash, first}));
  CHECK_FALSE(ask_commit(4, good_hash));
  auto delivered = watcher->lookup("reordered");
  REQUIRE(delivered);
  CHECK(hash_in_place(*watcher, *delivered) == good_hash);
  REQUIRE(watcher->remove("reordered"));
  auto after = watcher->stats();
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);
  CHECK(after->transmits_in == 0);
}

TEST_CASE("a destination refuses a taken name or a full quota at the offer, before any payload") {
  daemon_process b{unique_name("cafshm-test-rb"), "64MiB", 0, remote_yaml("1MiB", 2, "0")};
  REQUIRE(b.ready());
  client_system cs;
  auto holder = client::connect(cs.sys, b.address(), "holder");
  REQUIRE(holder);
  auto small = client::connect(cs.sys, b.address(), "small", client_options{.quota_bytes = 1 << 20});
  REQUIRE(small);
  auto taken = holder->allocate(4096);
  REQUIRE(taken);
  REQUIRE(holder->name(*taken, "x"));
  auto before = holder->stats();
  REQUIRE(before);
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::error link_error;
  auto link = test::link_fake_peer(self, *engine, 4243, link_error);
  REQUIRE_MESSAGE(link.token != 0, describe(link_error));
  auto ask_offer = [&](transmit_offer o) {
    caf::error err;
    self->request(link.gateway, 10s, offer_atom::value, link.seal(offer_atom::value, o), o)
      .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  };
  // The offer alone is refused: no chunk was ever sent, nothing was allocated.
  transmit_offer named{4243, 1, 8 << 20, 0, 1 << 20, {"", "x", {}}, {}, 0, false};
  CHECK(code_of(ask_offer(named)) == errc::name_taken);
  transmit_offer over_quota{4243, 2, 8 << 20, 0, 1 << 20, {"small", "", {}}, {}, 0, false};
  CHECK(code_of(ask_offer(over_quota)) == errc::quota_exceeded);
  auto after = holder->stats();
  REQUIRE(after);
  CHECK(after->transmits_in == 0);
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);

  // Through an engine: the transmit fails with the destination's reason.
  daemon_process a{unique_name("cafshm-test-ra"), "64MiB", 0, remote_yaml("1MiB", 2, "0")};
  REQUIRE(a.ready());
  auto sender = client::connect(cs.sys, a.address(), "sender");
  REQUIRE(sender);
  auto [ref, hash] = random_block(*sender, 8 << 20, 9);
  auto r = sender->transmit(ref, b.address_text(), transmit_target{"", "x", {}});
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::name_taken);
  auto q = sender->transmit(ref, b.address_text(), transmit_target{"small", "", {}});
  REQUIRE_FALSE(q);
  CHECK(code_of(q.error()) == errc::quota_exceeded);
  CHECK(sender->stats()->transmits_out == 0);
  REQUIRE(sender->free(ref));
  REQUIRE(holder->remove("x"));
}

TEST_CASE("a transmit to a stopped destination fails after remote.stall_timeout, not before") {
  // The sender's request timeout is far below the stall timeout: only a destination that says
  // nothing at all for stall_timeout ends a transmit.
  auto yaml = remote_yaml("64KiB", 1, "0") + "  stall_timeout: 3s\n"
              + "client:\n  request_timeout: 2s\n";
  daemon_process a{unique_name("cafshm-test-ra"), "512MiB", 0, yaml};
  daemon_process b{unique_name("cafshm-test-rb"), "512MiB", 0, yaml};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs;
  auto sender = client::connect(cs.sys, a.address(), "sender", client_options{.timeout = 5s});
  auto watcher = client::connect(cs.sys, b.address(), "watcher", client_options{.timeout = 5s});
  REQUIRE(sender);
  REQUIRE(watcher);
  auto before = watcher->stats();
  auto [ref, hash] = random_block(*sender, 256 << 20, 5);
  auto pending = std::async(std::launch::async,
                            [&] { return sender->transmit(ref, b.address_text()); });
  REQUIRE(eventually(*watcher, 20s, [](const engine_stats& st) { return st.transmits_in == 1; }));
  b.process().kill(SIGSTOP);
  // Until the stall ends it, the sender shows the transmit in progress toward b.
  auto sending = sender->stats();
  REQUIRE(sending);
  REQUIRE(sending->outgoing.size() == 1);
  CHECK(sending->outgoing[0].peer == b.address_text());
  CHECK(sending->outgoing[0].bytes == uint64_t{256} << 20);
  CHECK(sending->outgoing[0].acked < sending->outgoing[0].bytes);
  CHECK_FALSE(sending->outgoing[0].cache_fill);
  CHECK(sending->incoming.empty());
  REQUIRE(pending.wait_for(60s) == std::future_status::ready);
  auto r = pending.get();
  b.process().kill(SIGCONT);
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::peer_failure);
  CHECK_MESSAGE(describe(r.error()).find("remote.stall_timeout") != std::string::npos,
                describe(r.error()));
  CHECK(eventually(*sender, 5s, [](const engine_stats& st) {
    return st.transmits_out == 0 && st.peers.size() == 1;
  }));
  // The destination, running again, drops the partial block (the sender's abort).
  CHECK(eventually(*watcher, 10s, [&](const engine_stats& st) {
    return st.transmits_in == 0 && st.blocks == before->blocks
           && st.free_bytes == before->free_bytes;
  }));
  // The link itself is fine: the next transmit succeeds.
  auto again = sender->transmit(ref, b.address_text());
  REQUIRE_MESSAGE(again, (again ? std::string{} : describe(again.error())));
  CHECK(again->hash == hash);
  REQUIRE(watcher->stats());
  REQUIRE(sender->free(ref));
}

TEST_CASE("a transmit ends promptly with engine_unreachable when its own engine is killed") {
  daemon_process a{unique_name("cafshm-test-ra"), "512MiB", 0, remote_yaml("64KiB", 1, "0")};
  daemon_process b{unique_name("cafshm-test-rb"), "512MiB", 0, remote_yaml("64KiB", 1, "0")};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs;
  auto sender = client::connect(cs.sys, a.address(), "sender");
  auto watcher = client::connect(cs.sys, b.address(), "watcher");
  REQUIRE(sender);
  REQUIRE(watcher);
  auto [ref, hash] = random_block(*sender, 256 << 20, 6);
  // The default limit of a transmit is 10 minutes; the engine's death must end it instead.
  auto pending = std::async(std::launch::async,
                            [&] { return sender->transmit(ref, b.address_text()); });
  REQUIRE(eventually(*watcher, 20s, [](const engine_stats& st) { return st.transmits_in == 1; }));
  a.kill_hard();
  REQUIRE(pending.wait_for(30s) == std::future_status::ready);
  auto r = pending.get();
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::engine_unreachable);
  CHECK(eventually(*watcher, 10s, [](const engine_stats& st) { return st.transmits_in == 0; }));
}

TEST_CASE("a remote read of a block larger than remote.cache, or without a cache, works") {
  for (std::string cache : {"1MiB", "0"}) {
    CAPTURE(cache);
    two_engines e{"64MiB", remote_yaml("1MiB", 4, "0"), "64MiB",
                  remote_yaml("1MiB", 4, cache), "owner", "reader"};
    auto& owner = e.at_a;
    auto& reader = e.at_b;
    REQUIRE(reader->link("127.0.0.1", e.a.port()));
    auto before = reader->stats();
    auto [ref, hash] = random_block(*owner, (3 << 20) + 5, 11);
    REQUIRE(owner->export_block(ref));
    auto whole = reader->read(ref, 0, ref.size);
    REQUIRE_MESSAGE(whole, (whole ? std::string{} : describe(whole.error())));
    CHECK(XXH3_64bits(whole->data(), whole->size()) == hash);
    auto tail = reader->read(ref, ref.size - 7, 7);
    REQUIRE(tail);
    CHECK(std::equal(tail->begin(), tail->end(), whole->end() - 7));
    // Nothing is kept: the fetched block was freed after each read.
    auto after = reader->stats();
    REQUIRE(after);
    CHECK(after->cache_entries == 0);
    CHECK(after->blocks == before->blocks);
    CHECK(after->free_bytes == before->free_bytes);
    CHECK(after->transmits_in == 0);
    REQUIRE(owner->free(ref));
  }
}

// -- protocol versions --------------------------------------------------------------------------

namespace {

// A cafshmd whose stderr the test reads (its log), started with `remote_section` as its
// remote: keys; removes its configuration and segments at the end, also after a failure.
struct logged_daemon {
  std::filesystem::path config;
  std::string engine;
  std::optional<test::command> process;
  uint16_t port = 0;

  explicit logged_daemon(const std::string& remote_section)
    : config(std::filesystem::temp_directory_path() / (unique_name("cafshm-test-rv") + ".yaml")),
      engine(unique_name("cafshm-test-rv")) {
    {
      std::ofstream out{config};
      out << "engine:\n  name: " << engine << "\n  arena: 16MiB\nremote:\n" << remote_section;
    }
    process.emplace(std::vector<std::string>{std::string{CAFSHM_BIN_DIR} + "/cafshmd", "--config",
                                             config.string(), "--port", "0"});
    if (auto line = process->wait_for_line("cafshmd listening on ", 30s)) {
      auto colon = line->find(':');
      auto space = line->find(' ', colon);
      if (colon != std::string::npos)
        port = static_cast<uint16_t>(std::stoi(line->substr(colon + 1, space - colon - 1)));
    }
  }
  ~logged_daemon() {
    process.reset(); // SIGTERM: cafshmd removes its segments
    memory_manager::remove_segments(engine);
    ::unlink(("/dev/shm/" + engine + ".sock").c_str());
    ::unlink(("/dev/shm/" + engine + ".inbox-0").c_str());
    std::error_code ec;
    std::filesystem::remove(config, ec);
  }

  // Pumps its output until its stderr holds `text` or `limit` passes.
  bool logged(const std::string& text, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (process->err().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      process->wait(100ms);
    }
    return true;
  }
};

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
    ++n;
  return n;
}

// A listener that plays an engine of another protocol version: it names itself as its gateway
// and answers a challenge with `version` (or, with `old_shape`, in a shape of no version).
caf::behavior foreign_listener(caf::event_based_actor* self, uint32_t version, bool old_shape) {
  return {
    [self](gateway_atom) { return caf::actor_cast<caf::actor>(self); },
    [version, old_shape](challenge_atom, uint32_t, uint64_t, const std::vector<char>&,
                         const std::vector<char>&) -> caf::message {
      std::vector<char> nonce(link_nonce_bytes, 'l');
      std::vector<char> key(link_public_key_bytes, 'k');
      if (old_shape)
        return caf::make_message(uint64_t{0x77}, nonce, peer_proof{});
      return caf::make_message(version, uint64_t{0x77}, nonce, key, peer_proof{});
    },
  };
}

} // namespace

TEST_CASE("an engine of another protocol version is refused at the handshake, on both sides") {
  logged_daemon b{"  unauthenticated_peers: true\n  allow_dial: [127.0.0.1]\n"};
  REQUIRE_MESSAGE(b.port != 0, b.process->err());
  client_system cs;
  auto watcher = client::connect(cs.sys, endpoint{"127.0.0.1", b.port}, "watcher");
  REQUIRE_MESSAGE(watcher, (watcher ? std::string{} : describe(watcher.error())));
  auto before = watcher->stats();
  REQUIRE(before);
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port);
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::actor gateway;
  self->request(*engine, 10s, gateway_atom::value)
    .receive([&](caf::actor& gw) { gateway = gw; }, [](caf::error&) {});
  REQUIRE(gateway);
  auto ask = [&](auto... xs) {
    caf::error err;
    bool answered = false;
    self->request(gateway, 10s, xs...)
      .receive([&](const caf::message&) { answered = true; },
               [&](caf::error& e) { err = std::move(e); });
    CHECK_FALSE(answered);
    return err;
  };
  std::vector<char> nonce(link_nonce_bytes, 'd');
  auto newer = protocol_version + 1;
  auto versions_named = [&](const caf::error& e) {
    auto text = describe(e);
    return text.find("protocol version " + std::to_string(newer)) != std::string::npos
           && text.find("protocol version " + std::to_string(protocol_version))
                != std::string::npos;
  };

  // The listening side: a challenge of another version, twice, is refused naming both versions
  // and logged once.
  for (int i = 0; i < 2; ++i) {
    auto e = ask(challenge_atom::value, newer, uint64_t{4250}, nonce);
    CHECK(code_of(e) == errc::version_mismatch);
    CHECK_MESSAGE(versions_named(e), describe(e));
  }
  // Garbage and the challenge of an engine without versions: refused the same way.
  CHECK(code_of(ask(challenge_atom::value, std::string{"garbage"})) == errc::version_mismatch);
  CHECK(code_of(ask(hello_atom::value, uint64_t{4250}, std::string{"garbage"}))
        == errc::version_mismatch);
  auto unversioned = ask(challenge_atom::value, uint64_t{4250}, nonce);
  CHECK(code_of(unversioned) == errc::version_mismatch);
  CHECK_MESSAGE(describe(unversioned).find(std::to_string(protocol_version)) != std::string::npos,
                describe(unversioned));
  // Nothing of such a peer is taken: it holds no link token, a hello without an accepted
  // challenge is refused, so are its offers.
  CHECK(code_of(ask(hello_atom::value, uint64_t{4250}, uint64_t{1},
                    caf::actor_cast<caf::actor>(self), nonce, peer_proof{}))
        == errc::access_denied);
  for (uint64_t token : {uint64_t{0}, uint64_t{1}, uint64_t{0x4250}})
    CHECK(code_of(ask(offer_atom::value, peer_seal{token, 1, std::vector<char>(32, 'm')},
                      transmit_offer{4250, 1, 4096, 0, 4096, {}, {}, 0, false}))
          == errc::access_denied);
  REQUIRE(b.logged("a message of no protocol version it can read", 10s)); // logged after them
  CHECK_MESSAGE(count_of(b.process->err(), "sent protocol version " + std::to_string(newer)) == 1,
                b.process->err());
  auto after = watcher->stats();
  REQUIRE(after);
  CHECK(after->peers.empty());
  CHECK(after->transmits_in == 0);
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);

  // The dialing side: a listener that answers with another version, or in a shape of no
  // version, is refused naming both versions; logged once per address.
  auto newer_listener = cs.sys.spawn<caf::hidden>(foreign_listener, newer, false);
  auto old_listener = cs.sys.spawn<caf::hidden>(foreign_listener, uint32_t{0}, true);
  auto newer_port = cs.sys.middleman().publish(newer_listener, 0, "127.0.0.1");
  auto old_port = cs.sys.middleman().publish(old_listener, 0, "127.0.0.1");
  REQUIRE(newer_port);
  REQUIRE(old_port);
  for (int i = 0; i < 2; ++i) {
    auto linked = watcher->link("127.0.0.1", *newer_port);
    REQUIRE_FALSE(linked);
    CHECK(code_of(linked.error()) == errc::version_mismatch);
    CHECK_MESSAGE(versions_named(linked.error()), describe(linked.error()));
  }
  auto old = watcher->link("127.0.0.1", *old_port);
  REQUIRE_FALSE(old);
  CHECK(code_of(old.error()) == errc::version_mismatch);
  CHECK_MESSAGE(describe(old.error()).find(std::to_string(protocol_version)) != std::string::npos,
                describe(old.error()));
  auto old_address = "127.0.0.1:" + std::to_string(*old_port);
  REQUIRE(b.logged("not linked to " + old_address, 10s)); // logged after the two above
  CHECK_MESSAGE(count_of(b.process->err(),
                         "not linked to 127.0.0.1:" + std::to_string(*newer_port) + ": ")
                  == 1,
                b.process->err());
  CHECK(watcher->stats()->peers.empty());
  caf::anon_send_exit(newer_listener, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(old_listener, caf::exit_reason::user_shutdown);
}

// -- remote reads over a slow or stalled link ---------------------------------------------------

namespace {

// A fake peer engine that owns blocks and answers a reading engine's version and pull requests
// itself, sending each pulled block as a cache fill in chunks of `chunk` bytes.
struct block_owner {
  caf::scoped_actor& self;
  test::fake_peer_link link;
  uint64_t id;
  uint64_t chunk;

  // Answers the next version request with `version`, takes the pull that follows and offers
  // the block; returns the pull's promise (delivered when the test is done with it).
  caf::typed_response_promise<uint64_t, peer_seal> take_pull(const block_ref& ref,
                                                             uint64_t version,
                                                  uint64_t transfer) {
    self->receive(
      [&](version_atom, const peer_seal& seal, const block_ref& asked) {
        CHECK(asked == ref);
        // the engine seals its own messages with the link's key of its direction
        CHECK_FALSE(link.in.open(seal, version_atom::value, asked));
        return caf::result<uint64_t, peer_seal>{version,
                                                link.answer(version_atom::value, version)};
      },
      caf::after(20s) >> [] { FAIL("no version request"); });
    caf::typed_response_promise<uint64_t, peer_seal> pulled;
    self->receive(
      [&](pull_atom, const peer_seal& seal, const block_ref& asked) {
        CHECK(asked == ref);
        CHECK_FALSE(link.in.open(seal, pull_atom::value, asked));
        pulled = self->make_response_promise<uint64_t, peer_seal>();
      },
      caf::after(20s) >> [] { FAIL("no pull request"); });
    transmit_offer o{id, transfer, ref.size, 0, chunk, {}, ref, version, true};
    caf::error err;
    self->request(link.gateway, 10s, offer_atom::value, link.seal(offer_atom::value, o), o)
      .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    CHECK_MESSAGE(!err, describe(err));
    return pulled;
  }

  caf::error send_chunk(uint64_t transfer, uint64_t offset, const std::vector<char>& block) {
    auto n = std::min<uint64_t>(chunk, block.size() - offset);
    std::vector<char> data(block.begin() + static_cast<ptrdiff_t>(offset),
                           block.begin() + static_cast<ptrdiff_t>(offset + n));
    auto hash = XXH3_64bits(data.data(), data.size());
    caf::error err;
    transmit_chunk c{id, transfer, offset, hash, std::move(data)};
    self->request(link.gateway, 10s, chunk_atom::value, link.seal(chunk_atom::value, c), c)
      .receive([](done_atom, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  }

  caf::error commit(uint64_t transfer, const std::vector<char>& block) {
    caf::error err;
    uint64_t hash = XXH3_64bits(block.data(), block.size());
    self->request(link.gateway, 10s, commit_atom::value,
                  link.seal(commit_atom::value, transfer, hash), transfer, hash)
      .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  }
};

std::vector<char> patterned(size_t n, uint64_t seed) {
  std::vector<char> v(n);
  std::mt19937_64 rng{seed};
  for (auto& c : v)
    c = static_cast<char>(rng());
  return v;
}

} // namespace

TEST_CASE("a remote read over a slow link succeeds while bytes move, and fails when they stop") {
  // Requests of the reading engine time out after 200 ms; its remote reads must not: they end
  // only when the block's engine sends nothing for remote.stall_timeout (2 s).
  daemon_process b{unique_name("cafshm-test-rb"), "64MiB", 0,
                   remote_yaml("1MiB", 4, "0") + "  stall_timeout: 2s\n"
                     + "client:\n  request_timeout: 200ms\n"};
  REQUIRE(b.ready());
  client_system cs;
  auto reader = client::connect(cs.sys, b.address(), "reader", client_options{.timeout = 30s});
  REQUIRE(reader);
  auto before = reader->stats();
  REQUIRE(before);
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::error link_error;
  block_owner owner{self, test::link_fake_peer(self, *engine, 4260, link_error), 4260, 4096};
  REQUIRE_MESSAGE(owner.link.token != 0, describe(link_error));

  SUBCASE("a slow pull that keeps moving outlasts the reader's request timeout many times") {
    auto block = patterned(16 * 4096 + 100, 1);
    block_ref ref{4260, 1, 1, block.size()};
    auto pending = std::async(std::launch::async,
                              [&] { return reader->read(ref, 0, ref.size); });
    auto pulled = owner.take_pull(ref, 7, 1);
    for (uint64_t offset = 0; offset < block.size(); offset += owner.chunk) {
      // The pace of a slow link: 17 chunks 150 ms apart take 2.5 s, more than 10 request
      // timeouts of the reader, each gap far below its stall timeout.
      std::this_thread::sleep_for(150ms);
      REQUIRE_FALSE(owner.send_chunk(1, offset, block));
      auto st = reader->stats(); // the transfer in progress, as received so far
      REQUIRE(st);
      REQUIRE(st->incoming.size() == 1);
      CHECK(st->incoming[0].cache_fill);
      CHECK(st->incoming[0].bytes == block.size());
      CHECK(st->incoming[0].acked == std::min<uint64_t>(offset + owner.chunk, block.size()));
      CHECK(st->incoming[0].peer.find("engine 10a4") == 0); // 4260 in hexadecimal
    }
    REQUIRE_FALSE(owner.commit(1, block));
    pulled.deliver(uint64_t{7}, owner.link.answer(pull_atom::value, uint64_t{7}));
    REQUIRE(pending.wait_for(30s) == std::future_status::ready);
    auto r = pending.get();
    REQUIRE_MESSAGE(r, (r ? std::string{} : describe(r.error())));
    CHECK(*r == block);
  }

  SUBCASE("a pull that stops moving fails after remote.stall_timeout and loses nothing") {
    auto block = patterned(8 * 4096, 2);
    block_ref ref{4260, 2, 1, block.size()};
    auto pending = std::async(std::launch::async,
                              [&] { return reader->read(ref, 0, ref.size); });
    auto pulled = owner.take_pull(ref, 3, 2);
    REQUIRE_FALSE(owner.send_chunk(2, 0, block));
    REQUIRE(pending.wait_for(30s) == std::future_status::ready);
    auto r = pending.get();
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::peer_failure);
    CHECK_MESSAGE(describe(r.error()).find("remote.stall_timeout") != std::string::npos,
                  describe(r.error()));
    // The partial block is gone; what the owner sends later is not taken.
    CHECK(code_of(owner.send_chunk(2, 4096, block)) == errc::stale_block);
    pulled.deliver(uint64_t{3}, owner.link.answer(pull_atom::value, uint64_t{3}));
  }

  CHECK(eventually(*reader, 10s, [&](const engine_stats& st) {
    return st.transmits_in == 0 && st.incoming.empty() && st.blocks == before->blocks
           && st.free_bytes == before->free_bytes;
  }));
}
