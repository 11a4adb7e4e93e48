// What a client's process keeps when its engine (cafshmd) is killed and restarts over its
// segments: a pool made before keeps working with the engine that adopted them; requests on
// their way when the engine died fail at once with engine_unreachable instead of waiting for
// their timeout; a client made from the engine's actor handle reconnects to the address the
// engine told at registration; a client closed while the engine was down does not keep its
// slot once another client of the process attached to the adopting engine; a client on the
// shared-memory fast path goes on over BASP when the adopting engine offers no request inbox or
// its inbox cannot be opened.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <sys/mman.h>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "cafshm/pool.hpp"
#include "support/admin_snapshot.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;

namespace {

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

std::string why(const caf::error& e) {
  return describe(e);
}

// Kills the engine, waits until every client saw it go, restarts it on the same port over its
// segments (after `before_start`, e.g. a change of its configuration) and requires that it
// adopted them and that every client is back.
void restart_adopting(daemon_process& d, std::initializer_list<client*> clients,
                      const std::function<void()>& before_start = {}) {
  auto port = d.port();
  d.kill_hard();
  for (auto* c : clients)
    REQUIRE(within(10s, [&] { return !c->engine_up(); }));
  if (before_start)
    before_start();
  REQUIRE(d.start(port));
  REQUIRE_MESSAGE(contains(d.start_report(), "adopted the segments of a dead engine"),
                  d.start_report());
  for (auto* c : clients)
    REQUIRE(within(20s, [&] { return c->engine_up(); }));
}

// Bytes received and not yet read on the engine's side of its client connections (TCP sockets
// of this network namespace whose local port is the engine's): what was sent to an engine that
// does not run.
uint64_t unread_by_engine(uint16_t port) {
  std::ifstream in{"/proc/net/tcp"};
  std::string line;
  std::getline(in, line); // header
  uint64_t total = 0;
  while (std::getline(in, line)) {
    std::istringstream fields{line};
    std::string slot, local, remote, state, queues;
    if (!(fields >> slot >> local >> remote >> state >> queues))
      continue;
    auto colon = local.find(':');
    if (colon == std::string::npos || state != "01" // established
        || std::stoul(local.substr(colon + 1), nullptr, 16) != port)
      continue;
    total += std::stoull(queues.substr(queues.find(':') + 1), nullptr, 16);
  }
  return total;
}

} // namespace

TEST_CASE("ride-through: a pool made before an adopting restart keeps working with the new "
          "engine") {
  daemon_process d{unique_name("cafshm-test-ride"), "16MiB"};
  REQUIRE(d.ready());
  client_system cs;
  auto owner = client::connect(cs.sys, d.address(), "pool-owner");
  auto reader = client::connect(cs.sys, d.address(), "pool-reader");
  auto later = client::connect(cs.sys, d.address(), "pool-later");
  REQUIRE(owner);
  REQUIRE(reader);
  REQUIRE(later);
  pool_options opts;
  opts.count = 2;
  opts.block_bytes = 64 * 1024;
  opts.readers = {reader->id()};
  auto p = pool::create(*owner, opts);
  REQUIRE_MESSAGE(p, why(p.error()));
  auto before = owner->stats();
  REQUIRE(before);
  CHECK(before->blocks == opts.count + 1); // its blocks and its return board
  restart_adopting(d, {&*owner, &*reader, &*later});
  { // loans need no engine; their bytes are the block's, as the reader reads them
    auto l = p->try_loan();
    REQUIRE(l);
    std::memset(l->bytes().data(), 'p', 16);
    auto frame = p->seal(std::move(*l), 16, caf::actor{});
    auto bytes = reader->read(frame.ref, 0, 16);
    REQUIRE_MESSAGE(bytes, why(bytes.error()));
    CHECK(std::string(bytes->begin(), bytes->end()) == std::string(16, 'p'));
  }
  // Sharing with another process goes to the engine that is up now.
  auto shared = p->share_with(later->id());
  REQUIRE_MESSAGE(shared, why(shared.error()));
  auto seen = later->read(p->blocks().front(), 0, 1);
  CHECK_MESSAGE(seen, (seen ? "" : why(seen.error())));
  // Closing the pool frees its blocks at the new engine.
  p->close();
  engine_stats last;
  CHECK_MESSAGE(eventually(*owner, 10s,
                           [&](const engine_stats& st) {
                             last = st;
                             return st.blocks == 0;
                           }),
                last.blocks << " blocks left");
  CHECK(test::check_admin_memory(d.name()) == "");
  CHECK(later->close());
  CHECK(reader->close());
  CHECK(owner->close());
}

TEST_CASE("ride-through: requests on their way when the engine dies fail at once with "
          "engine_unreachable, blocking and async") {
  daemon_process d{unique_name("cafshm-test-ride"), "16MiB"};
  REQUIRE(d.ready());
  client_system cs;
  client_options opts;
  opts.timeout = 10min; // far beyond any deadline below: only the engine's death ends them
  // CAF requests, whose arrival shows as unread bytes at the engine's TCP port (blocking calls
  // over the shared-memory fast path: test_fast_requests, "a blocking call waiting for its
  // answer fails at once when the engine is killed").
  opts.transport = local_transport::basp;
  auto c = client::connect(cs.sys, d.address(), "in-flight", opts);
  REQUIRE(c);
  // A stopped engine receives requests and answers none. Should a check fail while it is
  // stopped, `stopped` continues it before the calls waiting on it are destroyed.
  std::future<caf::expected<block_ref>> blocking;
  test::paused_process stopped{d.process()};
  REQUIRE(stopped);
  blocking = std::async(std::launch::async, [&] { return c->allocate(4096); });
  REQUIRE(within(20s, [&] { return unread_by_engine(d.port()) > 0; }));
  auto sent = unread_by_engine(d.port());
  auto async_outcome = std::make_shared<std::promise<caf::error>>();
  auto requester = cs.sys.spawn([&, async_outcome](caf::event_based_actor* self) -> caf::behavior {
    c->allocate(self, 4096).then(
      [async_outcome](block_ref&&) { async_outcome->set_value(caf::error{}); },
      [async_outcome](caf::error& e) { async_outcome->set_value(e); });
    return {[](int) {}}; // alive until it is told to exit
  });
  REQUIRE(within(20s, [&] { return unread_by_engine(d.port()) > sent; }));
  d.kill_hard(); // SIGKILL ends a stopped process too
  REQUIRE(blocking.wait_for(60s) == std::future_status::ready);
  auto r = blocking.get();
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::engine_unreachable);
  CHECK_MESSAGE(contains(why(r.error()), "went down before it answered"), why(r.error()));
  auto async_result = async_outcome->get_future();
  REQUIRE(async_result.wait_for(60s) == std::future_status::ready);
  auto e = async_result.get();
  CHECK(code_of(e) == errc::engine_unreachable);
  CHECK_MESSAGE(contains(why(e), "went down before it answered"), why(e));
  caf::anon_send_exit(requester, caf::exit_reason::user_shutdown);
  // Requests made now fail at once as well (the engine is known to be down).
  auto now = c->allocate(4096);
  REQUIRE_FALSE(now);
  CHECK(code_of(now.error()) == errc::engine_unreachable);
}

TEST_CASE("ride-through: a client made from the engine's actor handle reconnects to the address "
          "the engine told") {
  daemon_process d{unique_name("cafshm-test-ride"), "16MiB"};
  REQUIRE(d.ready());
  client_system cs;
  auto handle = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", d.port());
  REQUIRE(handle);
  auto c = client::connect(cs.sys, *handle, "by-handle");
  REQUIRE(c);
  CHECK(c->info().listen_port == d.port());
  CHECK(c->info().listen_host == "127.0.0.1");
  auto kept = c->allocate(4096);
  REQUIRE(kept);
  REQUIRE(c->write(*kept, 0, std::span<const char>{"handle", 6}));
  restart_adopting(d, {&*c});
  CHECK_FALSE(c->engine() == *handle); // the adopting engine's handle now
  auto bytes = c->read(*kept, 0, 6);
  REQUIRE_MESSAGE(bytes, why(bytes.error()));
  CHECK(std::string(bytes->begin(), bytes->end()) == "handle");
  CHECK(c->free(*kept));
  CHECK(c->close());
}

TEST_CASE("ride-through: a client closed while the engine is down gives its slot up once "
          "another client of the process attaches") {
  daemon_process d{unique_name("cafshm-test-ride"), "16MiB"};
  REQUIRE(d.ready());
  client_system cs;
  auto stays = client::connect(cs.sys, d.address(), "stays");
  REQUIRE(stays);
  auto count_processes = [&](uint32_t n, uint32_t blocks) {
    engine_stats last;
    bool ok = eventually(*stays, 10s, [&](const engine_stats& st) {
      last = st;
      return st.processes == n && st.blocks == blocks;
    });
    CHECK_MESSAGE(ok, last.processes << " processes, " << last.blocks << " blocks");
    return ok;
  };
  SUBCASE("another client of the process re-attaches after the restart") {
    auto closed = client::connect(cs.sys, d.address(), "closed");
    REQUIRE(closed);
    REQUIRE(closed->allocate(8192));
    CHECK(count_processes(2, 1));
    auto port = d.port();
    d.kill_hard();
    REQUIRE(within(10s, [&] { return !closed->engine_up() && !stays->engine_up(); }));
    auto r = closed->close();
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::engine_unreachable);
    REQUIRE(d.start(port));
    REQUIRE_MESSAGE(contains(d.start_report(), "2 processes kept"), d.start_report());
    REQUIRE(within(20s, [&] { return stays->engine_up(); }));
    CHECK(count_processes(1, 0));
  }
  SUBCASE("the process's only client was closed; a new one connects") {
    REQUIRE(stays->allocate(8192));
    auto port = d.port();
    d.kill_hard();
    REQUIRE(within(10s, [&] { return !stays->engine_up(); }));
    REQUIRE_FALSE(stays->close());
    REQUIRE(d.start(port));
    REQUIRE_MESSAGE(contains(d.start_report(), "1 processes kept"), d.start_report());
    stays = client::connect(cs.sys, d.address(), "anew");
    REQUIRE(stays);
    CHECK(count_processes(1, 0));
  }
  CHECK(test::check_admin_memory(d.name()) == "");
  CHECK(stays->close());
}

TEST_CASE("ride-through: a client on the fast path goes on over BASP when the adopting engine "
          "offers no request inbox or this process cannot open it") {
  daemon_process d{unique_name("cafshm-test-ride"), "16MiB"};
  REQUIRE(d.ready());
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "fast");
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto kept = c->allocate(4096);
  REQUIRE(kept);
  REQUIRE(c->write(*kept, 0, std::span<const char>{"kept", 4}));
  auto request_inbox = "/" + d.name() + ".inbox-0";

  SUBCASE("the engine restarts with local.transport: basp") {
    restart_adopting(d, {&*c}, [&] {
      std::ofstream{d.config_file(), std::ios::app} << "local:\n  transport: basp\n";
    });
    CHECK(c->transport() == local_transport::basp); // the re-attach said so
  }
  SUBCASE("the adopting engine's request inbox is gone before the client's next request") {
    restart_adopting(d, {&*c}, [] {});
    REQUIRE(::shm_unlink(request_inbox.c_str()) == 0);
  }
  auto bytes = c->read(*kept, 0, 4);
  REQUIRE_MESSAGE(bytes, why(bytes.error()));
  CHECK(std::string(bytes->begin(), bytes->end()) == "kept");
  CHECK(c->transport() == local_transport::basp);
  auto more = c->allocate(8192);
  REQUIRE_MESSAGE(more, why(more.error()));
  auto me = c->find_process("fast");
  REQUIRE(me);
  CHECK(*me == c->id());
  auto st = c->stats();
  REQUIRE(st);
  CHECK(st->inbox_requests == 0); // nothing reached the adopting engine through an inbox
  CHECK(st->blocks == 2);
  CHECK(c->free(*more));
  CHECK(c->free(*kept));
  CHECK(c->close());
}
