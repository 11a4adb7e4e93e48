// Two engines (two cafshmd processes) exchanging blocks: transmit in chunks, the content cache,
// remote reads, failures on both sides, a peer sending garbage.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"
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

std::string address_of(const daemon_process& d) {
  return "127.0.0.1:" + std::to_string(d.port());
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
    auto receipt = sender->transmit(ref, address_of(b), target);
    REQUIRE_MESSAGE(receipt, describe(receipt.error()));
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
  auto first = sender->transmit(ref, address_of(b), target);
  REQUIRE(first);
  CHECK_FALSE(first->cache_hit);
  CHECK(first->payload_bytes == 3u << 20);
  auto second = sender->transmit(ref, address_of(b), target);
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
  auto third = sender->transmit(ref, address_of(b), named);
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
  REQUIRE_MESSAGE(r1, describe(r1.error()));
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
  auto oob = reader->read(*ref, text.size() - 1, 2);
  REQUIRE_FALSE(oob);
  CHECK(code_of(oob.error()) == errc::out_of_range);
  REQUIRE(owner->free(*ref));
  auto gone = reader->read(*ref, 0, 1);
  REQUIRE_FALSE(gone);
  CHECK(code_of(gone.error()) == errc::stale_block);
}

TEST_CASE("a destination without room refuses a transmit up front with out_of_memory") {
  two_engines e{"64MiB", remote_yaml("1MiB", 2, "0"), "16MiB",
                remote_yaml("1MiB", 2, "0"), "sender", "sink"};
  auto& b = e.b;
  auto& sender = e.at_a;
  auto& sink = e.at_b;
  auto [ref, hash] = random_block(*sender, 32 << 20, 1);
  auto r = sender->transmit(ref, address_of(b));
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::out_of_memory);
  auto st = sink->stats();
  CHECK(st->blocks == 0);
  CHECK(st->free_bytes == st->arena_bytes);
  CHECK(sender->stats()->transmits_out == 0);
  auto unknown = sender->transmit(ref, address_of(b), transmit_target{"nobody", "", {}});
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
                              [&] { return sender->transmit(ref, address_of(b)); });
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
    REQUIRE_MESSAGE(freed, describe(freed.error()));
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
                              [&] { return sender->transmit(ref, address_of(b), {}, 5s); });
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
  auto token = link.token; // the link token b issues to this fake peer
  auto ask_offer = [&](transmit_offer o) {
    caf::error err;
    self->request(link.gateway, 10s, offer_atom::value, token, o)
      .receive([](transmit_receipt&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  };
  auto ask_chunk = [&](transmit_chunk c) {
    caf::error err;
    self->request(link.gateway, 10s, chunk_atom::value, token, c)
      .receive([](done_atom) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  };
  auto ask_commit = [&](uint64_t id, uint64_t hash) {
    caf::error err;
    self->request(link.gateway, 10s, commit_atom::value, token, id, hash)
      .receive([](transmit_receipt&) {}, [&](caf::error& e) { err = std::move(e); });
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
    self->request(link.gateway, 10s, offer_atom::value, link.token, o)
      .receive([](transmit_receipt&) {}, [&](caf::error& e) { err = std::move(e); });
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
  auto r = sender->transmit(ref, address_of(b), transmit_target{"", "x", {}});
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::name_taken);
  auto q = sender->transmit(ref, address_of(b), transmit_target{"small", "", {}});
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
                            [&] { return sender->transmit(ref, address_of(b)); });
  REQUIRE(eventually(*watcher, 20s, [](const engine_stats& st) { return st.transmits_in == 1; }));
  b.process().kill(SIGSTOP);
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
  auto again = sender->transmit(ref, address_of(b));
  REQUIRE_MESSAGE(again, describe(again.error()));
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
                            [&] { return sender->transmit(ref, address_of(b)); });
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
    REQUIRE_MESSAGE(whole, describe(whole.error()));
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
