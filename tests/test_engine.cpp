// Tests of the engine actor (plugin/src/engine/engine.cpp) through CAF: cafshm::module in an actor system,
// cafshm::client (blocking and async), block_view mappings, and reclaiming the memory of
// processes that unregister, whose registering actor ends, or whose pid is gone.

#include "test_names.hpp"

#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "cafshm/block_view.hpp"
#include "cafshm/client.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/module.hpp"
#include "ticket_office.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using cafshm_test::segment_guard;
using cafshm_test::unique_name;
using cafshm_test::wait_until;

namespace {

constexpr uint64_t kib = 1024;
constexpr uint64_t mib = kib * 1024;

/// An actor system with cafshm loaded in engine role under a unique name (1 MiB arena).
struct system_env {
  std::string name = unique_name("cafshm-test-eng");
  segment_guard guard{name};
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  explicit system_env(std::function<void(settings&)> adjust = {}) {
    cfg.load<cafshm::module>();
    settings s;
    s.engine.name = name;
    s.engine.arena_bytes = 1 * mib;
    s.engine.liveness_interval = 20ms;
    if (adjust)
      adjust(s);
    module::configure(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto engine = local_engine(*sys);
    REQUIRE_MESSAGE(static_cast<bool>(engine), cafshm_test::why(engine));
  }

  ~system_env() {
    sys.reset(); // every client, view and scoped actor of the test is gone by now
  }

  engine_actor engine() const {
    auto e = local_engine(*sys);
    REQUIRE(e);
    return *e;
  }

  client connect(const std::string& who, client_options opts = {}) {
    auto c = client::connect(*sys, who, opts);
    REQUIRE_MESSAGE(static_cast<bool>(c), cafshm_test::why(c));
    return std::move(*c);
  }

  engine_stats stats() const {
    caf::scoped_actor self{*sys, true};
    engine_stats result;
    bool ok = false;
    self->request(engine(), 5s, stats_atom::value)
      .receive([&](engine_stats& st) { result = std::move(st), ok = true; },
               [&](caf::error& e) { FAIL("stats: " << describe(e)); });
    REQUIRE(ok);
    return result;
  }

  /// Sends a raw request to the engine and returns the answer (or its error).
  template <class R, class... Ts>
  caf::expected<R> raw(Ts&&... xs) const {
    caf::scoped_actor self{*sys, true};
    caf::expected<R> result{caf::error{}};
    self->request(engine(), 5s, std::forward<Ts>(xs)...)
      .receive([&](R& r) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }
};

std::string text_of(const std::vector<char>& bytes) {
  return {bytes.begin(), bytes.end()};
}

std::span<const char> bytes_of(const std::string& text) {
  return {text.data(), text.size()};
}

bool same_accounting(const engine_stats& a, const engine_stats& b) {
  return a.free_bytes == b.free_bytes && a.requested_bytes == b.requested_bytes
         && a.processes == b.processes && a.blocks == b.blocks
         && a.draining_blocks == b.draining_blocks && a.grants == b.grants
         && a.names == b.names && a.largest_free_block == b.largest_free_block;
}

std::string show(const engine_stats& s) {
  return "free " + std::to_string(s.free_bytes) + ", processes " + std::to_string(s.processes)
         + ", blocks " + std::to_string(s.blocks) + ", draining "
         + std::to_string(s.draining_blocks) + ", grants " + std::to_string(s.grants)
         + ", names " + std::to_string(s.names);
}

/// Forks a child that writes one byte at `where` and exits 0; returns how it ended.
int child_write_status(std::byte* where) {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGSEGV, SIG_DFL);
    ::signal(SIGBUS, SIG_DFL);
    *reinterpret_cast<volatile char*>(where) = 'Z';
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return status;
}


} // namespace

// Processes have a type of their own: a block index, a uid or a count never passes for one.
static_assert(!std::is_convertible_v<uint32_t, process_id>);
static_assert(!std::is_convertible_v<int, process_id>);
static_assert(to_slot(process_id::engine) == 0);

TEST_CASE("every request type round-trips through the engine actor") {
  system_env env;
  auto before = env.stats();
  CHECK(before.processes == 0);
  CHECK(before.arena_bytes == 1 * mib);
  CHECK(before.data_segment == env.guard.data());
  CHECK(before.admin_segment == env.guard.admin());

  // register
  auto alice = env.connect("alice");
  auto bob = env.connect("bob");
  CHECK(alice.id() != bob.id());
  CHECK(alice.id() != process_id::engine);
  CHECK(alice.info().engine_id == before.engine_id);
  CHECK(alice.info().data_segment == env.guard.data());
  CHECK(alice.info().admin_segment == env.guard.admin());
  CHECK(alice.info().min_block_bytes == 4 * kib);
  // process
  auto bob_id = alice.find_process("bob");
  REQUIRE_OK(bob_id);
  CHECK(*bob_id == bob.id());
  CHECK(to_string(*bob_id) == std::to_string(to_slot(bob.id())));
  // stats
  auto st = alice.stats();
  REQUIRE_OK(st);
  CHECK(st->processes == 2);
  CHECK(st->process_list.size() == 3);
  // allocate, write, read
  auto ref = alice.allocate(100);
  REQUIRE_OK(ref);
  CHECK(ref->size == 100);
  CHECK(ref->engine == before.engine_id);
  REQUIRE_OK(alice.write(*ref, 0, bytes_of("hello")));
  auto got = alice.read(*ref, 0, 5);
  REQUIRE_OK(got);
  CHECK(text_of(*got) == "hello");
  // copy
  auto ref2 = alice.allocate(100);
  REQUIRE_OK(ref2);
  REQUIRE_OK(alice.copy(*ref, *ref2, {{0, 10, 5}}));
  got = alice.read(*ref2, 10, 5);
  REQUIRE_OK(got);
  CHECK(text_of(*got) == "hello");
  // share, revoke
  REQUIRE_OK(alice.share(*ref, bob.id(), access_mode::read));
  got = bob.read(*ref, 0, 5);
  REQUIRE_OK(got);
  CHECK(text_of(*got) == "hello");
  REQUIRE_OK(alice.revoke(*ref, bob.id()));
  CHECK_ERRC(bob.read(*ref, 0, 5), errc::access_denied);
  // name, lookup, remove
  REQUIRE_OK(alice.name(*ref, "greeting"));
  auto found = bob.lookup("greeting");
  REQUIRE_OK(found);
  CHECK(*found == *ref);
  CHECK(env.stats().names == 1);
  REQUIRE_OK(alice.remove("greeting"));
  CHECK_ERRC(alice.read(*ref, 0, 1), errc::stale_block);
  CHECK_ERRC(bob.lookup("greeting"), errc::name_not_found);
  // transfer
  auto moved = alice.transfer(*ref2, bob.id());
  REQUIRE_OK(moved);
  CHECK(*moved == *ref2);
  got = bob.read(*ref2, 10, 5);
  REQUIRE_OK(got);
  CHECK(text_of(*got) == "hello");
  CHECK_ERRC(alice.read(*ref2, 0, 1), errc::access_denied);
  // attach (map) and detach (view close, asynchronous): free with the view open drains
  {
    auto view = bob.map(*ref2, access_mode::read_write);
    REQUIRE_OK(view);
    CHECK(std::string(view->chars().data() + 10, 5) == "hello");
    REQUIRE_OK(bob.free(*ref2));
    CHECK(env.stats().draining_blocks == 1);
    view->close();
    CHECK_FALSE(static_cast<bool>(*view));
  }
  CHECK(wait_until([&] { return env.stats().draining_blocks == 0; }));
  // detach as a raw request
  auto ref3 = bob.allocate(10);
  REQUIRE_OK(ref3);
  auto lease = env.raw<view_lease>(map_atom::value, bob.session(), *ref3,
                                   access_mode::read);
  REQUIRE_OK(lease);
  CHECK(lease->data_segment == env.guard.data());
  CHECK_FALSE(lease->writable);
  CHECK(lease->size == 10);
  CHECK_OK(env.raw<done_atom>(unmap_atom::value, bob.session(), *ref3));
  CHECK_ERRC(env.raw<done_atom>(unmap_atom::value, bob.session(), *ref3), errc::stale_block);
  // free
  REQUIRE_OK(bob.free(*ref3));
  // register and unregister as raw requests (the registering actor must stay alive meanwhile:
  // the engine reclaims a process whose registering actor ends)
  {
    caf::scoped_actor self{*env.sys, true};
    std::optional<registration> reg;
    auto ticket = module::of(*env.sys)->local_ticket();
    REQUIRE(ticket);
    self->request(env.engine(), 5s, register_atom::value, std::string("raw"), uint64_t{0},
                  *ticket, protocol_version)
      .receive([&](registration& r) { reg = std::move(r); },
               [&](caf::error& e) { FAIL("register: " << describe(e)); });
    REQUIRE(reg);
    // a ticket is good for one registration; none, a used or a forged one is refused
    for (auto bad : {*ticket, door_ticket{}, door_ticket{ticket->id, ticket->secret + 1}}) {
      caf::error refused;
      self->request(env.engine(), 5s, register_atom::value, std::string("again"), uint64_t{0},
                    bad, protocol_version)
        .receive([&](registration&) { FAIL("registered without a valid ticket"); },
                 [&](caf::error& e) { refused = std::move(e); });
      CHECK(code_of(refused) == errc::access_denied);
    }
    CHECK(reg->engine_id == before.engine_id);
    CHECK(env.stats().processes == 3);
    bool done = false;
    self->request(env.engine(), 5s, unregister_atom::value, reg->session)
      .receive([&](done_atom) { done = true; },
               [&](caf::error& e) { FAIL("unregister: " << describe(e)); });
    CHECK(done);
    CHECK(env.stats().processes == 2);
    // a client of another protocol version is refused before it holds anything
    caf::error refused;
    self->request(env.engine(), 5s, register_atom::value, std::string("old"), uint64_t{0},
                  *module::of(*env.sys)->local_ticket(), protocol_version + 1)
      .receive([&](registration&) { FAIL("registered a client of another protocol version"); },
               [&](caf::error& e) { refused = std::move(e); });
    CHECK(code_of(refused) == errc::invalid_argument);
    CHECK(env.stats().processes == 2);
  }
  // unregister
  REQUIRE_OK(alice.close());
  CHECK_ERRC(bob.find_process("alice"), errc::unknown_process);
  CHECK_ERRC(alice.allocate(1), errc::unknown_process); // closed client
  REQUIRE_OK(bob.close());
  auto after = env.stats();
  CHECK_MESSAGE(same_accounting(after, before), show(after) << " vs " << show(before));
  CHECK(after.requests > before.requests);
  CHECK(after.rejected > before.rejected);
}

TEST_CASE("errors arrive through the client as cafshm errors with the right code") {
  system_env env;
  auto a = env.connect("a");
  client_options small_quota;
  small_quota.quota_bytes = 8 * kib;
  small_quota.timeout = 5000ms;
  auto b = env.connect("b", small_quota);
  auto ref = a.allocate(100);
  REQUIRE_OK(ref);
  SUBCASE("stale_block") {
    REQUIRE_OK(a.free(*ref));
    auto r = a.free(*ref);
    REQUIRE_FALSE(r);
    CHECK(r.error().category() == error_category);
    CHECK(code_of(r.error()) == errc::stale_block);
    CHECK(describe(r.error()).find("stale_block: ") == 0); // the reason travels along
    CHECK(describe(r.error()).find("freed or reused") != std::string::npos);
    auto forged = *ref;
    forged.engine ^= 1;
    CHECK_ERRC(a.read(forged, 0, 1), errc::stale_block);
  }
  SUBCASE("access_denied") {
    CHECK_ERRC(b.read(*ref, 0, 1), errc::access_denied);
    CHECK_ERRC(b.write(*ref, 0, bytes_of("x")), errc::access_denied);
    CHECK_ERRC(b.free(*ref), errc::access_denied);
  }
  SUBCASE("out_of_range") {
    CHECK_ERRC(a.read(*ref, 90, 11), errc::out_of_range);
    CHECK_ERRC(a.write(*ref, 99, bytes_of("xy")), errc::out_of_range);
    CHECK_ERRC(a.copy(*ref, *ref, {{0, 50, 51}}), errc::out_of_range);
  }
  SUBCASE("out_of_memory") {
    CHECK_ERRC(a.allocate(2 * mib), errc::out_of_memory);
    auto rest = a.allocate(512 * kib);
    REQUIRE_OK(rest);
    CHECK_ERRC(a.allocate(512 * kib), errc::out_of_memory);
  }
  SUBCASE("name_taken and name_not_found") {
    REQUIRE_OK(a.name(*ref, "taken"));
    auto other = b.allocate(10);
    REQUIRE_OK(other);
    CHECK_ERRC(b.name(*other, "taken"), errc::name_taken);
    CHECK_ERRC(b.lookup("missing"), errc::name_not_found);
  }
  SUBCASE("quota_exceeded") {
    REQUIRE_OK(b.allocate(8 * kib));
    CHECK_ERRC(b.allocate(1), errc::quota_exceeded);
  }
  SUBCASE("invalid_argument and unknown_process") {
    CHECK_ERRC(a.allocate(0), errc::invalid_argument);
    CHECK_ERRC(a.share(*ref, a.id(), access_mode::read), errc::invalid_argument);
    CHECK_ERRC(env.raw<view_lease>(map_atom::value, a.session(), *ref, static_cast<access_mode>(9)),
               errc::invalid_argument);
    session forged{a.id(), a.session().token ^ 1};
    CHECK_ERRC(env.raw<block_ref>(allocate_atom::value, forged, uint64_t{10}),
               errc::unknown_process);
    CHECK_ERRC(a.share(*ref, process_id{60}, access_mode::read), errc::unknown_process);
  }
  SUBCASE("block_in_use") {
    auto view = a.map(*ref, access_mode::read);
    REQUIRE_OK(view);
    CHECK_ERRC(a.transfer(*ref, b.id()), errc::block_in_use);
    // transferring the view itself closes it first
    auto moved = a.transfer(std::move(*view), b.id());
    REQUIRE_OK(moved);
    CHECK_OK(b.read(*moved, 0, 1));
  }
}

TEST_CASE("block_view: writer maps read_write, a reader with a read grant sees the bytes") {
  system_env env;
  auto writer = env.connect("writer");
  auto reader = env.connect("reader");
  auto stranger = env.connect("stranger");
  auto ref = writer.allocate(10000);
  REQUIRE_OK(ref);
  {
    auto wv = writer.map(*ref, access_mode::read_write);
    REQUIRE_OK(wv);
    REQUIRE(static_cast<bool>(*wv));
    CHECK(wv->writable());
    CHECK(wv->size() == 10000);
    CHECK(wv->ref() == *ref);
    CHECK(reinterpret_cast<uintptr_t>(wv->data()) % ::sysconf(_SC_PAGESIZE) == 0);
    const std::string text = "zero-copy through shared memory";
    std::memcpy(wv->data(), text.data(), text.size());
    std::memcpy(wv->data() + 9990, "last bytes", 10);

    // no grant: no mapping
    CHECK_ERRC(reader.map(*ref, access_mode::read), errc::access_denied);
    CHECK_ERRC(stranger.map(*ref, access_mode::read), errc::access_denied);
    CHECK_ERRC(stranger.map(*ref, access_mode::read_write), errc::access_denied);

    REQUIRE_OK(writer.share(*ref, reader.id(), access_mode::read));
    CHECK_ERRC(reader.map(*ref, access_mode::read_write), errc::access_denied);
    auto rv = reader.map(*ref, access_mode::read);
    REQUIRE_OK(rv);
    CHECK_FALSE(rv->writable());
    CHECK(rv->size() == 10000);
    CHECK(std::string(rv->chars().data(), text.size()) == text);
    CHECK(std::string(rv->chars().data() + 9990, 10) == "last bytes");
    CHECK(rv->data() != wv->data()); // separate mappings of the same pages
    // later writes show up at once, and through the engine too
    std::memcpy(wv->data(), "ZERO", 4);
    CHECK(std::string(rv->chars().data(), 4) == "ZERO");
    auto via_engine = reader.read(*ref, 0, 4);
    REQUIRE_OK(via_engine);
    CHECK(text_of(*via_engine) == "ZERO");
    CHECK_ERRC(stranger.map(*ref, access_mode::read), errc::access_denied);

    // the read-only view's pages are really read-only: a write there kills the writer
    int status = child_write_status(rv->data());
    CHECK(WIFSIGNALED(status));
    if (WIFSIGNALED(status))
      CHECK(WTERMSIG(status) == SIGSEGV);
    CHECK(rv->chars()[4] == text[4]);
    // ... while the read-write view is shared memory: a child's write is seen here
    status = child_write_status(wv->data() + 5);
    CHECK(WIFEXITED(status));
    CHECK(rv->chars()[5] == 'Z');

    // revoking with a view open is refused; after closing it, it works
    CHECK_ERRC(writer.revoke(*ref, reader.id()), errc::block_in_use);
    rv->close();
    CHECK(wait_until([&] { return static_cast<bool>(writer.revoke(*ref, reader.id())); }));
    CHECK_ERRC(reader.map(*ref, access_mode::read), errc::access_denied);
  }
  REQUIRE_OK(writer.free(*ref));
  CHECK(wait_until([&] {
    auto st = env.stats();
    return st.blocks == 0 && st.grants == 0 && st.free_bytes == 1 * mib;
  }));
}

TEST_CASE("a destroyed client gets its blocks, names, grants and views reclaimed") {
  system_env env;
  auto other = env.connect("other");
  auto before = env.stats();
  block_view kept; // outlives its client: still open, and counted, when the client goes
  {
    auto doomed = env.connect("doomed");
    auto a = doomed.allocate(100 * kib);
    auto b = doomed.allocate(3 * kib);
    REQUIRE_OK(a);
    REQUIRE_OK(b);
    REQUIRE_OK(doomed.name(*a, "doomed-a"));
    REQUIRE_OK(doomed.share(*b, other.id(), access_mode::read));
    auto view = doomed.map(*a, access_mode::read_write);
    REQUIRE_OK(view);
    kept = std::move(*view);
    auto during = env.stats();
    CHECK(during.processes == before.processes + 1);
    CHECK(during.blocks == before.blocks + 2);
    CHECK(during.names == before.names + 1);
    CHECK(during.grants == before.grants + 1);
  } // ~client unregisters
  engine_stats after;
  CHECK_MESSAGE(wait_until([&] { return same_accounting(after = env.stats(), before); }),
                show(after) << " vs " << show(before));
  CHECK_ERRC(other.lookup("doomed-a"), errc::name_not_found);
}

TEST_CASE("when the registering actor ends, the engine reclaims its process") {
  system_env env;
  auto before = env.stats();
  auto engine = env.engine();
  caf::scoped_actor self{*env.sys, true};
  auto me = caf::actor_cast<caf::actor>(self);
  // registers, allocates and names a block, reports, and quits without unregistering
  auto ticket = *module::of(*env.sys)->local_ticket();
  self->spawn([engine, me, ticket](caf::event_based_actor* a) {
    a->request(engine, 5s, register_atom::value, std::string("ephemeral"), uint64_t{0},
               ticket, protocol_version)
      .then([=](registration& reg) {
        a->request(engine, 5s, allocate_atom::value, reg.session, uint64_t{64 * kib})
          .then([=](block_ref& ref) {
            a->request(engine, 5s, name_atom::value, reg.session, ref, std::string("eph"))
              .then([=](done_atom) {
                a->send(me, done_atom::value);
                a->quit();
              });
          });
      });
  });
  bool reported = false;
  self->receive([&](done_atom) { reported = true; }, caf::after(10s) >> [] {});
  REQUIRE(reported);
  engine_stats after;
  CHECK_MESSAGE(wait_until([&] { return same_accounting(after = env.stats(), before); }),
                show(after) << " vs " << show(before));
}

TEST_CASE("the engine reclaims a process whose pid is gone (liveness polling of its pidfd)") {
  system_env env;
  auto before = env.stats();
  auto engine = env.engine();
  // a ticket as the door issues it: for a child process, with a pidfd of it
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  REQUIRE(pidfd >= 0);
  auto ticket = module::of(*env.sys)->tickets()->issue({::getuid(), ::getgid(), child, pidfd});
  REQUIRE(ticket);
  caf::scoped_actor self{*env.sys, true};
  auto me = caf::actor_cast<caf::actor>(self);
  // stays alive: only the pid check can notice that its process is gone
  auto holder = self->spawn([engine, me, t = *ticket](caf::event_based_actor* a) -> caf::behavior {
    a->request(engine, 5s, register_atom::value, std::string("ghost"), uint64_t{0}, t,
               protocol_version)
      .then([=](registration& reg) {
        a->request(engine, 5s, allocate_atom::value, reg.session, uint64_t{16 * kib})
          .then([=](block_ref&) { a->send(me, done_atom::value); });
      });
    return {[](int) {}};
  });
  bool registered = false;
  self->receive([&](done_atom) { registered = true; }, caf::after(10s) >> [] {});
  REQUIRE(registered);
  CHECK(env.stats().processes == 1); // alive: still registered
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  engine_stats after;
  CHECK_MESSAGE(wait_until([&] { return same_accounting(after = env.stats(), before); }),
                show(after) << " vs " << show(before));
  self->send_exit(holder, caf::exit_reason::user_shutdown);
}

TEST_CASE("async API: client::request from an event-based actor") {
  system_env env;
  auto c = env.connect("async");
  caf::scoped_actor self{*env.sys, true};
  auto me = caf::actor_cast<caf::actor>(self);
  const client* cp = &c;
  self->spawn([cp, me](caf::event_based_actor* a) {
    auto fail = [=](caf::error& e) { a->send(me, e); };
    cp->request(a, allocate_atom::value, uint64_t{64})
      .then(
        [=](block_ref& ref) {
          cp->request(a, write_atom::value, ref, uint64_t{0}, std::vector<char>{'a', 's', 'y'})
            .then(
              [=](done_atom) {
                cp->request(a, read_atom::value, ref, uint64_t{0}, uint64_t{3})
                  .then(
                    [=](std::vector<char>& bytes) {
                      a->send(me, std::string(bytes.begin(), bytes.end()), ref);
                    },
                    fail);
              },
              fail);
        },
        fail);
  });
  std::optional<block_ref> ref;
  self->receive(
    [&](const std::string& text, const block_ref& r) {
      CHECK(text == "asy");
      ref = r;
    },
    [&](const caf::error& e) { FAIL("async request failed: " << describe(e)); },
    caf::after(10s) >> [] { FAIL("no answer from the async actor"); });
  REQUIRE(ref);
  CHECK(ref->size == 64);
  auto got = c.read(*ref, 0, 3);
  REQUIRE_OK(got);
  CHECK(text_of(*got) == "asy");
  // errors arrive in the error handler
  REQUIRE_OK(c.free(*ref));
  auto stale = *ref;
  self->spawn([cp, me, stale](caf::event_based_actor* a) {
    cp->request(a, free_atom::value, stale)
      .then([=](done_atom) { a->send(me, std::string("unexpected success")); },
            [=](caf::error& e) { a->send(me, e); });
  });
  self->receive(
    [&](const caf::error& e) {
      CHECK(code_of(e) == errc::stale_block);
      CHECK(describe(e).find("stale_block") == 0);
    },
    [&](const std::string& s) { FAIL(s); },
    caf::after(10s) >> [] { FAIL("no answer from the async actor"); });
}
