// Tests of cafshm::pool and cafshm::pool_reader (plugin/src/pool.cpp) in one process with an
// in-process engine and two registered clients (sender and reader): back-pressure checked by
// content, blocks coming back when their holder goes down, readers dropping the mappings of a
// closed pool, the async forms under a one-thread scheduler, the would_deadlock error of a
// blocking call on the only scheduler thread, and returns through the pool's return board
// (no lost wake-up, forged values ignored, the message path without a board).

#include "test_names.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

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

  // Two registered clients: the pool's process and its reader's.
  std::pair<caf::expected<client>, caf::expected<client>> sender_and_receiver() {
    auto sender = client::connect(*sys, "sender");
    auto receiver = client::connect(*sys, "receiver");
    REQUIRE_OK(sender);
    REQUIRE_OK(receiver);
    return {std::move(sender), std::move(receiver)};
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

TEST_CASE("a slow reader never sees its block rewritten: the sender waits for it") {
  engine_system e{"pool-slow"};
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {2, 64 << 10, {receiver->id()}});
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
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {3, 4096, {receiver->id()}});
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

TEST_CASE("a holder that ended and was released before the pool watched it gives its block "
          "back") {
  // One scheduler thread, kept busy while the holder ends: the pool's return actor learns of
  // the holder only after every other reference to it is gone.
  engine_system e{"pool-holder-gone", true};
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {2, 4096, {receiver->id()}});
  REQUIRE_OK(p);
  std::promise<void> worker_busy;
  std::promise<void> release_worker;
  auto released = release_worker.get_future().share();
  e.sys->spawn([&worker_busy, released](caf::event_based_actor*) {
    worker_busy.set_value();
    released.wait(); // holds the only scheduler thread
  });
  worker_busy.get_future().wait();
  auto holder = e.sys->spawn<caf::detached>(
    [](caf::event_based_actor*) -> caf::behavior { return {[](const pool_frame&) {}}; });
  auto l = p->try_loan();
  REQUIRE(l);
  [[maybe_unused]] auto frame = p->seal(std::move(*l), 4096, holder);
  CHECK(p->available() == 1);
  {
    caf::scoped_actor self{*e.sys};
    self->monitor(holder);
    self->send_exit(holder, caf::exit_reason::kill);
    self->receive([](const caf::down_msg&) {}, caf::after(10s) >> [] { FAIL("no down"); });
  }
  holder = nullptr; // the pool's message is now the only one that names it
  release_worker.set_value();
  CHECK(wait_until([&] { return p->available() == 2; }));
}

TEST_CASE("a closed pool: readers drop its mappings and the engine frees every block") {
  engine_system e{"pool-close"};
  auto [sender, receiver] = e.sender_and_receiver();
  auto before = sender->stats();
  REQUIRE_OK(before);
  auto p = pool::create(*sender, {2, 8192, {receiver->id()}});
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
  auto readers = std::vector<process_id>{receiver->id()};
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

TEST_CASE("a release marks the block on the return board: it is free again at once") {
  engine_system e{"pool-board"};
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {2, 4096, {receiver->id()}});
  REQUIRE_OK(p);
  pool_reader reader{*receiver};
  caf::scoped_actor self{*e.sys};
  for (uint32_t n = 1; n <= 20; ++n) {
    auto l = p->try_loan();
    REQUIRE(l);
    fill(l->bytes(), n);
    auto f = p->seal(std::move(*l), 4096, self);
    // Without the return actor's handle the release cannot send a message: only the board
    // can give the block back.
    f.owner = nullptr;
    auto v = reader.open(f);
    REQUIRE_OK(v);
    CHECK(holds(v->bytes(), n));
    CHECK(p->available() == 1);
    v->release();
    CHECK(p->available() == 2);
  }
}

TEST_CASE("a pool waiting for a block wakes when a reader releases it on the board") {
  engine_system e{"pool-board-wake"};
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {1, 4096, {receiver->id()}});
  REQUIRE_OK(p);
  pool_reader reader{*receiver};
  // A reader thread releases each frame after a varying number of yields, so that releases
  // land before, during and after the sender's announcement that it waits.
  std::mutex m;
  std::condition_variable cv;
  std::deque<pool_frame> frames;
  constexpr uint32_t rounds = 2000;
  uint32_t bad = 0;
  std::thread reading{[&] {
    for (uint32_t n = 1; n <= rounds; ++n) {
      std::unique_lock<std::mutex> guard{m};
      cv.wait(guard, [&] { return !frames.empty(); });
      auto f = frames.front();
      frames.pop_front();
      guard.unlock();
      auto v = reader.open(f);
      if (!v || !holds(v->bytes(), n))
        ++bad;
      for (uint32_t i = 0; i < n % 7; ++i)
        std::this_thread::yield();
    } // v released here, after the yields
  }};
  uint32_t timed_out = 0;
  for (uint32_t n = 1; n <= rounds; ++n) {
    auto l = p->get_loan(10s);
    if (!l) {
      ++timed_out;
      break;
    }
    fill(l->bytes(), n);
    auto f = p->seal(std::move(*l), 4096, caf::actor{});
    std::lock_guard<std::mutex> guard{m};
    frames.push_back(f);
    cv.notify_one();
  }
  if (timed_out > 0) { // let the reader thread end
    std::lock_guard<std::mutex> guard{m};
    for (uint32_t i = 0; i < rounds; ++i)
      frames.push_back(pool_frame{});
    cv.notify_one();
  }
  reading.join();
  CHECK(timed_out == 0);
  CHECK(bad == 0);
}

TEST_CASE("stale or forged values on the return board give nothing back") {
  engine_system e{"pool-board-forged"};
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {2, 4096, {receiver->id()}});
  REQUIRE_OK(p);
  caf::scoped_actor self{*e.sys};
  auto l = p->try_loan();
  REQUIRE(l);
  auto f = p->seal(std::move(*l), 4096, self);
  // A reader writes the board directly (its layout: 64-byte header, then one 8-byte released
  // sequence per block).
  auto board = receiver->map(f.board, access_mode::read_write);
  REQUIRE_OK(board);
  auto* released = reinterpret_cast<std::atomic<uint64_t>*>(board->data() + 64) + f.index;
  for (uint64_t forged : {f.sequence - 1, f.sequence + 1, uint64_t{0}, ~uint64_t{0}}) {
    released->store(forged);
    CHECK(p->available() == 1);
  }
  // Nor can a reader reach past the board: the pool only reads its own copy of the count.
  auto* count = reinterpret_cast<std::atomic<uint32_t>*>(board->data() + 16);
  count->store(1u << 30);
  CHECK(p->available() == 1);
  released->store(f.sequence);
  CHECK(p->available() == 2);
  CHECK(receiver->unmap(std::move(*board)));
}

TEST_CASE("a frame without a return board gives its block back by message") {
  engine_system e{"pool-no-board"};
  auto [sender, receiver] = e.sender_and_receiver();
  auto p = pool::create(*sender, {2, 4096, {receiver->id()}});
  REQUIRE_OK(p);
  pool_reader reader{*receiver};
  caf::scoped_actor self{*e.sys};
  auto l = p->try_loan();
  REQUIRE(l);
  fill(l->bytes(), 3);
  auto f = p->seal(std::move(*l), 4096, self);
  f.board = block_ref{};
  auto v = reader.open(f);
  REQUIRE_OK(v);
  CHECK(holds(v->bytes(), 3));
  v->release();
  CHECK(wait_until([&] { return p->available() == 2; }));
}
