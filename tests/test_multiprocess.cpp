// Processes that are separate OS processes exchange blocks through a cafshmd engine: hand-off
// correctness, access control, crash reclaim, engine death and restart, per-request mode.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "helpers/test_peer_protocol.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::child_process;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;

namespace {

std::string peer_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-test-peer";
}

// A cafshm-test-peer in receiver mode, with its published actor and its process slot.
struct receiver_peer {
  child_process process;
  caf::actor handle;
  process_id slot{};

  receiver_peer(caf::actor_system& sys, const daemon_process& d, const std::string& name)
    : process({peer_bin(), "receiver", "--engine", d.address_text(),
               "--name", name}) {
    auto ready = process.wait_for_line("ready ", 20s);
    REQUIRE(ready);
    std::istringstream in{*ready};
    uint16_t port = 0;
    uint32_t n = 0;
    in >> port >> n;
    slot = process_id{n}; // as the peer printed it
    auto h = sys.middleman().remote_actor("127.0.0.1", port);
    REQUIRE(h);
    handle = *h;
  }
};

void fill_random(block_view& view, uint64_t seed) {
  std::mt19937_64 rng{seed};
  auto* p = view.data();
  size_t n = view.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(p + i, &x, 8);
  }
  for (; i < n; ++i)
    p[i] = static_cast<std::byte>(rng());
}

template <class... Ts>
caf::expected<uint64_t> ask_hash(caf::actor_system& sys, const caf::actor& peer, Ts... xs) {
  caf::scoped_actor self{sys, true};
  caf::expected<uint64_t> result{caf::error{}};
  self->request(peer, 60s, xs...).receive([&](uint64_t h) { result = h; },
                                          [&](caf::error& e) { result = std::move(e); });
  return result;
}

bool maps_segment(const std::string& segment) {
  std::ifstream maps{"/proc/self/maps"};
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/dev/shm/" + segment) != std::string::npos)
      return true;
  return false;
}

} // namespace

TEST_CASE("hand-off between processes moves identical bytes, 4 KiB to 64 MiB") {
  daemon_process d{unique_name("cafshm-test-mp"), "256MiB"};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "test");
  REQUIRE(me);
  receiver_peer peer{cs.sys, d, "receiver"};
  for (uint64_t size : {uint64_t{4096}, uint64_t{4097}, uint64_t{64} << 10, uint64_t{1} << 20,
                        uint64_t{16} << 20, uint64_t{64} << 20}) {
    CAPTURE(size);
    // Ownership transfer: the receiver reads in place, then frees its block.
    auto ref = me->allocate(size);
    REQUIRE(ref);
    auto view = me->map(*ref, access_mode::read_write);
    REQUIRE(view);
    fill_random(*view, size);
    auto expected = XXH3_64bits(view->data(), view->size());
    auto moved = me->transfer(std::move(*view), peer.slot);
    REQUIRE(moved);
    auto got = ask_hash(cs.sys, peer.handle, verify_atom::value, *moved, true);
    REQUIRE(got);
    CHECK(*got == expected);
    // Read grant: the receiver reads in place, the block stays ours.
    auto shared = me->allocate(size);
    REQUIRE(shared);
    auto wview = me->map(*shared, access_mode::read_write);
    REQUIRE(wview);
    fill_random(*wview, size + 1);
    auto expected2 = XXH3_64bits(wview->data(), wview->size());
    REQUIRE(me->unmap(std::move(*wview)));
    REQUIRE(me->share(*shared, peer.slot, access_mode::read));
    auto got2 = ask_hash(cs.sys, peer.handle, verify_atom::value, *shared, false);
    REQUIRE(got2);
    CHECK(*got2 == expected2);
    REQUIRE(me->free(*shared));
  }
  CHECK(eventually(*me, 2s, [](const engine_stats& st) {
    return st.blocks == 0 && st.free_bytes == st.arena_bytes;
  }));
}

TEST_CASE("a process without a grant is denied through the engine and through views") {
  daemon_process d{unique_name("cafshm-test-mp")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "test");
  REQUIRE(me);
  receiver_peer granted{cs.sys, d, "granted"};
  receiver_peer intruder{cs.sys, d, "intruder"};
  auto ref = me->allocate(8192);
  REQUIRE(ref);
  auto shared = me->share(*ref, granted.slot, access_mode::read);
  REQUIRE_MESSAGE(shared, (shared ? std::string{} : describe(shared.error())));
  auto probe = [&](receiver_peer& p) {
    caf::scoped_actor self{cs.sys, true};
    std::vector<uint8_t> codes;
    self->request(p.handle, 20s, probe_atom::value, *ref)
      .receive([&](std::vector<uint8_t>& xs) { codes = std::move(xs); },
               [&](caf::error& e) { FAIL(describe(e)); });
    return codes;
  };
  auto denied = static_cast<uint8_t>(errc::access_denied);
  CHECK(probe(granted) == std::vector<uint8_t>{0, 0});
  CHECK(probe(intruder) == std::vector<uint8_t>{denied, denied});
  // Revoking ends the right; the denied process's view attempts were never counted.
  REQUIRE(me->revoke(*ref, granted.slot));
  CHECK(probe(granted) == std::vector<uint8_t>{denied, denied});
  REQUIRE(me->free(*ref));
}

TEST_CASE("a client killed with SIGKILL mid-write is reclaimed exactly within 1 s") {
  daemon_process d{unique_name("cafshm-test-mp")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "test");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  child_process writer{{peer_bin(), "writer", "--engine",
                        d.address_text(), "--name", "writer", "--blocks",
                        "6", "--size", std::to_string(1 << 20)}};
  REQUIRE(writer.wait_for_line("writing ", 20s));
  auto during = me->stats();
  REQUIRE(during);
  CHECK(during->processes == before->processes + 1);
  CHECK(during->blocks == before->blocks + 6);
  CHECK(during->names == before->names + 1);
  CHECK(during->grants == before->grants + 1);
  CHECK(during->free_bytes < before->free_bytes);
  writer.kill(SIGKILL);
  REQUIRE(writer.wait(10s));
  CHECK(eventually(*me, 1s, [&](const engine_stats& st) {
    return st.processes == before->processes && st.blocks == before->blocks
           && st.names == before->names && st.grants == before->grants
           && st.free_bytes == before->free_bytes
           && st.largest_free_block == before->largest_free_block
           && st.free_bytes_by_order == before->free_bytes_by_order;
  }));
  // The survivor keeps working.
  auto ref = me->allocate(4096);
  REQUIRE(ref);
  CHECK(me->free(*ref));
}

TEST_CASE("a process restarted under the name of one just killed registers at once") {
  // The periodic liveness check is an hour away: only the check at registration can free the
  // name of the killed process.
  daemon_process d{unique_name("cafshm-test-mp"), "64MiB", 0, {}, "60min"};
  REQUIRE(d.ready());
  auto engine = d.address_text();
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "test");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  for (int round = 0; round < 10; ++round) {
    child_process writer{{peer_bin(), "writer", "--engine", engine, "--name", "restarted",
                          "--blocks", "2", "--size", "65536"}};
    REQUIRE(writer.wait_for_line("writing ", 20s));
    writer.kill(SIGKILL);
    REQUIRE(writer.wait(10s));
  }
  // Each registration reclaimed the one killed before it; the last is reclaimed by this one.
  auto again = client::connect(cs.sys, d.address(), "restarted");
  REQUIRE_MESSAGE(again, (again ? std::string{} : describe(again.error())));
  auto after = me->stats();
  REQUIRE(after);
  CHECK(after->processes == before->processes + 1);
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);
}

TEST_CASE("a dead engine fails requests within the timeout and clients reconnect after a restart") {
  daemon_process d{unique_name("cafshm-test-mp")};
  REQUIRE(d.ready());
  auto port = d.port();
  client_system cs;
  client_options opts;
  opts.timeout = 1500ms;
  auto me = client::connect(cs.sys, d.address(), "test", opts);
  REQUIRE(me);
  REQUIRE(me->allocate(4096));
  d.kill_hard();
  auto r = me->allocate(4096);
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::engine_unreachable);
  CHECK(code_of(me->close().error()) == errc::engine_unreachable);
  // A new engine over the dead one's segments and port adopts them. The closed client could not
  // unregister: its slot (and name) stays while this process lives; new clients register.
  REQUIRE(d.start(port));
  CHECK(d.start_report().rfind("adopted the segments of a dead engine", 0) == 0);
  auto taken = client::connect(cs.sys, d.address(), "test", opts);
  REQUIRE_FALSE(taken);
  CHECK(code_of(taken.error()) == errc::process_name_taken);
  auto again = client::connect(cs.sys, d.address(), "test-again", opts);
  REQUIRE(again);
  auto ref = again->allocate(4096);
  REQUIRE(ref);
  CHECK(again->free(*ref));
}

TEST_CASE("per-request use leaves no registration and no mapping behind") {
  daemon_process d{unique_name("cafshm-test-mp")};
  REQUIRE(d.ready());
  client_system cs;
  auto observer = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(observer);
  auto before = observer->stats();
  REQUIRE(before);
  auto data_segment = observer->info().data_segment;
  {
    auto once = client::connect(cs.sys, d.address(), "once");
    REQUIRE(once);
    auto ref = once->allocate(1 << 16);
    REQUIRE(ref);
    auto view = once->map(*ref, access_mode::read_write);
    REQUIRE(view);
    std::memset(view->data(), 7, view->size());
    CHECK(maps_segment(data_segment)); // the check below would see a leftover mapping
    REQUIRE(once->unmap(std::move(*view)));
    REQUIRE(once->close());
  }
  CHECK_FALSE(maps_segment(data_segment));
  auto after = observer->stats();
  REQUIRE(after);
  CHECK(after->processes == before->processes);
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);
}

TEST_CASE("client role: connect(sys, name) uses client.engine and client.request_timeout") {
  daemon_process d{unique_name("cafshm-test-mp")};
  REQUIRE(d.ready());
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  settings s;
  s.role = role::client;
  s.client.engine = d.address();
  s.client.request_timeout = 1234ms;
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto c = client::connect(sys, "configured");
  REQUIRE(c);
  CHECK(c->timeout() == 1234ms);
  auto ref = c->allocate(4096);
  REQUIRE(ref);
  CHECK(c->free(*ref));
  // An explicit limit wins over the configured one.
  client_options opts;
  opts.timeout = 777ms;
  auto explicit_limit = client::connect(sys, "explicit", opts);
  REQUIRE(explicit_limit);
  CHECK(explicit_limit->timeout() == 777ms);
}

TEST_CASE("actors published at the engine: found by name, names taken, gone with the process") {
  daemon_process d{unique_name("cafshm-test-mp")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "test");
  REQUIRE(me);
  child_process publisher{{peer_bin(), "publisher", "--engine",
                           d.address_text(), "--name", "producer",
                           "--actor", "echo"}};
  auto line = publisher.wait_for_line("published ", 20s);
  REQUIRE(line);
  auto slot = process_id{static_cast<uint32_t>(std::stoul(*line))}; // as the peer printed it

  // Found by name, with the publisher's slot, and usable without knowing any port.
  auto found = me->find_actor("echo");
  REQUIRE(found);
  CHECK(found->process == slot);
  caf::scoped_actor self{cs.sys, true};
  process_id answered{};
  self->request(found->actor, 20s, ping_atom::value)
    .receive([&](process_id s) { answered = s; },
             [&](caf::error& e) { FAIL("ping: " << cs.sys.render(e)); });
  CHECK(answered == slot);

  // The name is taken while its publisher lives; unknown names are not found.
  auto mine = cs.sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](ping_atom) { return uint32_t{0}; }};
  });
  auto taken = me->publish(mine, "echo");
  REQUIRE_FALSE(taken);
  CHECK(code_of(taken.error()) == errc::name_taken);
  auto unknown = me->find_actor("nobody");
  REQUIRE_FALSE(unknown);
  CHECK(code_of(unknown.error()) == errc::name_not_found);

  // Its process dies: the lookup says so, and the name is free again.
  publisher.kill(SIGKILL);
  publisher.wait(20s);
  caf::error gone;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto again = me->find_actor("echo");
    if (!again) {
      gone = again.error();
      break;
    }
  }
  // Which the engine learns first, the process's end (pidfd) or the lost connection to it
  // (down message), depends on timing; the error says which.
  CHECK(code_of(gone) == errc::actor_gone);
  auto why = describe(gone);
  INFO(why);
  CHECK((why.find("has ended") != std::string::npos
         || why.find("connection to the process that published it was lost") != std::string::npos));
  CHECK(me->publish(mine, "echo"));
  auto replaced = me->find_actor("echo");
  REQUIRE(replaced);
  CHECK(replaced->process == me->id());
  CHECK(me->unpublish("echo"));
  caf::anon_send_exit(mine, caf::exit_reason::user_shutdown);
}
