// Tests of cafshm::pool and cafshm::pool_reader (plugin/src/pool.cpp) in one process with an
// in-process engine and two registered clients (sender and reader): back-pressure checked by
// content, blocks coming back when their holder goes down, readers dropping the mappings of a
// closed pool, the async forms under a one-thread scheduler, and the would_deadlock error of a
// blocking call on the only scheduler thread.

#include "test_names.hpp"

#include <chrono>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "cafshm/pool.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using cafshm_test::segment_guard;
using cafshm_test::unique_name;
using cafshm_test::wait_until;

namespace {

using check_atom = caf::atom_constant<caf::atom("t_check")>;
using release_atom = caf::atom_constant<caf::atom("t_release")>;

struct engine_system {
  std::string name;
  segment_guard guard;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  explicit engine_system(const std::string& what, bool one_thread = false)
    : name(unique_name("cafshm-test-" + what)), guard(name) {
    cfg.load<cafshm::module>();
    if (one_thread) {
      cfg.set("scheduler.policy", caf::atom("sharing"));
      cfg.set("scheduler.max-threads", 1);
    }
    settings s;
    s.engine.name = name;
    s.engine.arena_bytes = 16 << 20;
    module::configure(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

// The bytes a frame with number `n` carries: n repeated, so that any rewrite shows.
void fill(std::span<std::byte> bytes, uint32_t n) {
  for (size_t i = 0; i < bytes.size(); i += sizeof(n))
    std::memcpy(bytes.data() + i, &n, std::min(sizeof(n), bytes.size() - i));
}

bool holds(std::span<const std::byte> bytes, uint32_t n) {
  for (size_t i = 0; i + sizeof(n) <= bytes.size(); i += sizeof(n))
    if (std::memcmp(bytes.data() + i, &n, sizeof(n)) != 0)
      return false;
  return true;
}

// A slow reader: keeps every frame it opened until told to release the oldest; each check
// compares every held frame with the number it arrived with.
struct slow_reader_state {
  std::unique_ptr<pool_reader> reader;
  std::deque<std::pair<uint32_t, frame_view>> held;
  uint32_t received = 0;
  uint32_t corrupted = 0;
};

caf::behavior slow_reader(caf::stateful_actor<slow_reader_state>* self, client* c) {
  self->state.reader = std::make_unique<pool_reader>(*c);
  auto verify = [self] {
    for (auto& [n, view] : self->state.held)
      if (!holds(view.bytes(), n))
        ++self->state.corrupted;
  };
  return {
    [=](const pool_frame& f, uint32_t n) {
      self->state.reader->open(self, f).then(
        [=](frame_view&& view) {
          ++self->state.received;
          self->state.held.emplace_back(n, std::move(view));
          verify();
        },
        [=](caf::error&) { ++self->state.corrupted; });
    },
    [=](release_atom) {
      verify();
      if (!self->state.held.empty())
        self->state.held.pop_front(); // frame_view's destructor gives the block back
    },
    [=](check_atom) {
      verify();
      return std::make_tuple(self->state.received, self->state.corrupted);
    },
  };
}

std::pair<uint32_t, uint32_t> check(caf::actor_system& sys, const caf::actor& reader) {
  caf::scoped_actor self{sys};
  std::pair<uint32_t, uint32_t> result{0, 0};
  self->request(reader, 5s, check_atom::value)
    .receive([&](uint32_t received, uint32_t corrupted) { result = {received, corrupted}; },
             [&](caf::error&) { result = {0, UINT32_MAX}; });
  return result;
}

} // namespace

TEST_CASE("a slow reader never sees its block rewritten; the sender waits for it") {
  engine_system e{"pool-slow"};
  auto sender = client::connect(*e.sys, "sender");
  auto receiver = client::connect(*e.sys, "receiver");
  REQUIRE_OK(sender);
  REQUIRE_OK(receiver);
  auto p = pool::create(*sender, {2, 64 << 10, {receiver->slot()}});
  REQUIRE_OK(p);
  CHECK(p->available() == 2);
  auto reader = e.sys->spawn(slow_reader, &*receiver);
  caf::scoped_actor self{*e.sys};

  constexpr uint32_t frames = 40;
  for (uint32_t n = 1; n <= frames; ++n) {
    auto l = p->try_loan();
    if (!l) {
      // Both blocks are held: the reader must let one go before the sender may write again.
      CHECK_ERRC(p->get_loan(20ms), errc::pool_exhausted);
      self->send(reader, release_atom::value);
      auto waited = p->get_loan(5s);
      REQUIRE_OK(waited);
      l = std::move(*waited);
    }
    fill(l->bytes(), n);
    self->send(reader, p->seal(std::move(*l), p->block_bytes(), reader), n);
  }
  auto progress = check(*e.sys, reader);
  INFO("received " << progress.first << ", failed " << progress.second);
  REQUIRE(wait_until([&] { return check(*e.sys, reader).first == frames; }));
  auto [received, corrupted] = check(*e.sys, reader);
  CHECK(received == frames);
  CHECK(corrupted == 0);
  self->send_exit(reader, caf::exit_reason::user_shutdown);
  CHECK(wait_until([&] { return p->available() == 2; }));
}

TEST_CASE("blocks held by an actor that goes down come back to the pool") {
  engine_system e{"pool-holder-down"};
  auto sender = client::connect(*e.sys, "sender");
  auto receiver = client::connect(*e.sys, "receiver");
  REQUIRE_OK(sender);
  REQUIRE_OK(receiver);
  auto p = pool::create(*sender, {3, 4096, {receiver->slot()}});
  REQUIRE_OK(p);
  auto reader = e.sys->spawn(slow_reader, &*receiver);
  caf::scoped_actor self{*e.sys};
  for (uint32_t n = 1; n <= 3; ++n) {
    auto l = p->try_loan();
    REQUIRE(l);
    fill(l->bytes(), n);
    self->send(reader, p->seal(std::move(*l), 4096, reader), n);
  }
  REQUIRE(wait_until([&] { return check(*e.sys, reader).first == 3; }));
  CHECK(p->available() == 0);
  CHECK_ERRC(p->get_loan(10ms), errc::pool_exhausted);
  self->send_exit(reader, caf::exit_reason::kill);
  CHECK(wait_until([&] { return p->available() == 3; }));
  // A block given back by the holder's end is loaned again and writable.
  auto l = p->try_loan();
  REQUIRE(l);
  fill(l->bytes(), 99);
  CHECK(holds(l->bytes(), 99));
}

TEST_CASE("a closed pool: readers drop its mappings and the engine frees every block") {
  engine_system e{"pool-close"};
  auto sender = client::connect(*e.sys, "sender");
  auto receiver = client::connect(*e.sys, "receiver");
  REQUIRE_OK(sender);
  REQUIRE_OK(receiver);
  auto before = sender->stats();
  REQUIRE_OK(before);
  auto p = pool::create(*sender, {2, 8192, {receiver->slot()}});
  REQUIRE_OK(p);
  pool_reader reader{*receiver};
  caf::scoped_actor self{*e.sys};
  {
    auto l = p->try_loan();
    REQUIRE(l);
    fill(l->bytes(), 7);
    auto f = p->seal(std::move(*l), 8192, self);
    auto v = reader.open(f);
    REQUIRE_OK(v);
    CHECK(holds(v->bytes(), 7));
    CHECK(v->bytes().size() == 8192);
    CHECK(reader.mapped() == 1);
    // A second frame of the same block opens from the cache.
    v->release();
    CHECK(wait_until([&] { return p->available() == 2; }));
  }
  p->close();
  CHECK(wait_until([&] { return reader.mapped() == 0; }));
  CHECK(wait_until([&] {
    auto st = sender->stats();
    return st && st->free_bytes == before->free_bytes;
  }));
}

TEST_CASE("one scheduler thread: blocking calls fail at once, the async forms work") {
  engine_system e{"pool-one-thread", true};
  auto sender = client::connect(*e.sys, "sender"); // main thread: may block
  auto receiver = client::connect(*e.sys, "receiver");
  REQUIRE_OK(sender);
  REQUIRE_OK(receiver);
  std::promise<std::string> blocked;
  std::promise<std::string> async;
  auto readers = std::vector<uint32_t>{receiver->slot()};
  e.sys->spawn([&, readers](caf::event_based_actor* self) {
    // A blocking call in an actor on the only thread would wait forever: refused at once.
    auto r = sender->allocate(4096);
    blocked.set_value(r ? "allocated" : to_string(code_of(r.error())));
    pool::create(self, *sender, {2, 4096, readers})
      .then(
        [self, &async](pool&& made) {
          auto p = std::make_shared<pool>(std::move(made));
          p->get_loan(self).then(
            [p, &async](pool::loan&& l) {
              fill(l.bytes(), 5);
              async.set_value(holds(l.bytes(), 5) ? "loaned" : "bad bytes");
            },
            [&async](caf::error& err) { async.set_value(describe(err)); });
        },
        [&async](caf::error& err) { async.set_value(describe(err)); });
  });
  auto b = blocked.get_future();
  REQUIRE(b.wait_for(10s) == std::future_status::ready);
  CHECK(b.get() == "would_deadlock");
  auto a = async.get_future();
  REQUIRE(a.wait_for(10s) == std::future_status::ready);
  CHECK(a.get() == "loaned");
}
