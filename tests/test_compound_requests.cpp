// Compound engine requests: allocate+map, unmap+transfer, unmap+free and the map of many blocks
// each take one request (one record through the engine's inbox), keep every check of the
// requests they stand for, fail all or nothing, and leave the engine's accounting exact. Every
// case runs through the engine's request inbox [shm] and over BASP [basp].
#include "test_names.hpp"

#include <cstring>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "cafshm/client.hpp"
#include "support/admin_snapshot.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;

namespace {

// Records the engine's request inbox took so far (each stats request counts itself).
uint64_t inbox_requests(client& c) {
  auto st = c.stats();
  REQUIRE(st);
  return st->inbox_requests;
}

engine_stats stats_of(client& c) {
  auto st = c.stats();
  REQUIRE(st);
  return *st;
}

// Runs `op`, then checks that it took exactly one record through the engine's inbox (with the
// fast path; over BASP the engine's inbox takes none).
template <class F>
void in_one_request(client& c, local_transport transport, F op) {
  auto before = inbox_requests(c);
  op();
  auto after = inbox_requests(c);
  if (transport == local_transport::shm)
    CHECK(after - before == 2); // the operation and the stats request
  else
    CHECK(after == before);
}

void fill(block_view& v, char first) {
  for (size_t i = 0; i < v.size(); ++i)
    v.data()[i] = static_cast<std::byte>(first + i % 23);
}

bool holds(const block_view& v, char first) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v.data()[i] != static_cast<std::byte>(first + i % 23))
      return false;
  return true;
}

// Nothing of the test is left at the engine: as many blocks and bytes as at `start`, none
// draining (no view stayed counted), admin memory consistent.
void nothing_left(client& c, const engine_stats& start, const daemon_process& d) {
  auto end = stats_of(c);
  CHECK(end.blocks == start.blocks);
  CHECK(end.draining_blocks == 0);
  CHECK(end.used_bytes == start.used_bytes);
  CHECK(test::check_admin_memory(d.name()) == "");
}

// A cafshmd of its own and two clients of it, registered as two processes.
struct two_clients {
  two_clients(local_transport transport, const char* first, const char* second,
              const std::string& arena = "16MiB")
    : d{test::unique_name("cafshm-test-comp"), arena}, cs{transport} {
    REQUIRE(d.ready());
    auto x = client::connect(cs.sys, d.address(), first);
    auto y = client::connect(cs.sys, d.address(), second);
    REQUIRE(x);
    REQUIRE(y);
    CHECK(x->transport() == transport);
    a.emplace(std::move(*x));
    b.emplace(std::move(*y));
    start = stats_of(*a);
  }
  daemon_process d;
  client_system cs;
  std::optional<client> a, b;
  engine_stats start; // before the test's own work
};

bool mentions(const caf::error& e, const std::string& text) {
  return describe(e).find(text) != std::string::npos;
}

} // namespace

void compound_requests_work(local_transport transport) {
  two_clients t{transport, "producer", "consumer", "32MiB"};
  auto& d = t.d;
  auto& producer = t.a;
  auto& consumer = t.b;
  const auto& start = t.start;

  // allocate+map: a writable view of a new block of the producer.
  block_view v;
  in_one_request(*producer, transport, [&] {
    auto made = producer->allocate_and_map(100000);
    REQUIRE_MESSAGE(made, describe(made.error()));
    v = std::move(*made);
  });
  CHECK(v.size() == 100000);
  CHECK(v.writable());
  CHECK(v.ref().size == 100000);
  fill(v, 'a');
  // unmap+transfer: the view closes and the consumer owns the block.
  auto made_ref = v.ref();
  block_ref moved;
  in_one_request(*producer, transport, [&] {
    auto r = producer->transfer(std::move(v), consumer->id());
    REQUIRE_MESSAGE(r, describe(r.error()));
    moved = *r;
  });
  CHECK(!v);
  CHECK(moved.block == made_ref.block); // the same block, under its new owner's generation
  auto old = producer->map(moved, access_mode::read);
  REQUIRE(!old);
  CHECK(code_of(old.error()) == errc::access_denied);

  // The map of many blocks: the moved one and three of the consumer's own.
  std::vector<block_ref> refs{moved};
  for (uint64_t i = 1; i <= 3; ++i) {
    auto r = consumer->allocate(4096 * i);
    REQUIRE(r);
    refs.push_back(*r);
  }
  std::vector<block_view> views;
  in_one_request(*consumer, transport, [&] {
    auto all = consumer->map(refs, access_mode::read_write);
    REQUIRE_MESSAGE(all, describe(all.error()));
    views = std::move(*all);
  });
  REQUIRE(views.size() == 4);
  CHECK(holds(views[0], 'a'));
  for (size_t i = 0; i < views.size(); ++i) {
    CHECK(views[i].ref() == refs[i]);
    CHECK(views[i].size() == refs[i].size);
  }
  // unmap+free of each: nothing of the consumer is left, nothing is draining.
  for (auto& view : views)
    in_one_request(*consumer, transport, [&] { REQUIRE(consumer->free(std::move(view))); });
  nothing_left(*producer, start, d);

  // More blocks than one request maps: several requests, all views in order.
  std::vector<block_ref> many;
  for (int i = 0; i < 150; ++i) {
    auto r = producer->allocate(4096 + static_cast<uint64_t>(i));
    REQUIRE(r);
    many.push_back(*r);
  }
  auto before = inbox_requests(*producer);
  auto all = producer->map(many, access_mode::read);
  REQUIRE_MESSAGE(all, describe(all.error()));
  auto after = inbox_requests(*producer);
  REQUIRE(all->size() == many.size());
  for (size_t i = 0; i < many.size(); ++i)
    CHECK((*all)[i].ref() == many[i]);
  if (transport == local_transport::shm) {
    auto parts = (many.size() + max_map_many - 1) / max_map_many;
    CHECK(after - before == parts + 1);
  }
  for (auto& view : *all)
    REQUIRE(producer->free(std::move(view)));
  CHECK(producer->map(std::vector<block_ref>{}, access_mode::read)->empty()); // no request
  nothing_left(*producer, start, d);
}

TEST_CASE("compound requests: allocate+map, unmap+transfer, a map of many blocks and unmap+free "
          "each take one request [shm]") {
  compound_requests_work(local_transport::shm);
}

TEST_CASE("compound requests: allocate+map, unmap+transfer, a map of many blocks and unmap+free "
          "each take one request [basp]") {
  compound_requests_work(local_transport::basp);
}

void compound_requests_fail_whole(local_transport transport) {
  two_clients t{transport, "owner", "other"};
  auto& d = t.d;
  auto& owner = t.a;
  auto& other = t.b;
  const auto& start = t.start;

  // A stale ref among good ones: the map of all fails naming it, and no view stays counted.
  auto a = owner->allocate(5000);
  auto gone = owner->allocate(5000);
  auto b = owner->allocate(5000);
  REQUIRE(a);
  REQUIRE(gone);
  REQUIRE(b);
  REQUIRE(owner->free(*gone));
  auto mixed = owner->map(std::vector<block_ref>{*a, *gone, *b}, access_mode::read_write);
  REQUIRE(!mixed);
  CHECK(code_of(mixed.error()) == errc::stale_block);
  CHECK(mentions(mixed.error(), "block 2 of 3"));
  // Another process's block without a grant: refused the same way, whole.
  auto mine = other->allocate(4096);
  REQUIRE(mine);
  auto foreign = other->map(std::vector<block_ref>{*mine, *a}, access_mode::read);
  REQUIRE(!foreign);
  CHECK(code_of(foreign.error()) == errc::access_denied);
  CHECK(mentions(foreign.error(), "block 2 of 2"));
  // A read grant does not let the grantee free or give away the block through its view.
  REQUIRE(owner->share(*a, other->id(), access_mode::read));
  auto granted = other->map(std::vector<block_ref>{*a}, access_mode::read);
  REQUIRE(granted);
  REQUIRE(granted->size() == 1);
  auto freed = other->free(std::move((*granted)[0]));
  REQUIRE(!freed);
  CHECK(code_of(freed.error()) == errc::access_denied);
  auto grant_view = other->map(*a, access_mode::read);
  REQUIRE(grant_view);
  auto given = other->transfer(std::move(*grant_view), other->id());
  REQUIRE(!given);
  CHECK(code_of(given.error()) == errc::access_denied);
  // A transfer to a process that does not exist fails; the view is closed all the same and the
  // block stays its owner's.
  auto own_view = owner->map(*b, access_mode::read_write);
  REQUIRE(own_view);
  auto nowhere = owner->transfer(std::move(*own_view), process_id{250});
  REQUIRE(!nowhere);
  CHECK(code_of(nowhere.error()) != errc::ok);
  CHECK(!*own_view);
  auto again = owner->map(*b, access_mode::read);
  REQUIRE(again);
  REQUIRE(owner->unmap(std::move(*again)));
  // allocate+map beyond the arena: nothing is left behind.
  auto blocks = stats_of(*owner).blocks;
  auto huge = owner->allocate_and_map(1ull << 40);
  REQUIRE(!huge);
  CHECK(code_of(huge.error()) != errc::engine_unreachable);
  CHECK(stats_of(*owner).blocks == blocks);
  // A view that is not open is refused before any request.
  block_view closed;
  auto not_open = owner->free(std::move(closed));
  REQUIRE(!not_open);
  CHECK(code_of(not_open.error()) == errc::invalid_argument);

  // Every view was counted closed: once freed, nothing drains and nothing is left.
  REQUIRE(owner->free(*a));
  REQUIRE(owner->free(*b));
  REQUIRE(other->free(*mine));
  nothing_left(*owner, start, d);
}

TEST_CASE("compound requests: a failing part fails the whole, keeps the owner and grant checks, "
          "and leaves no view counted [shm]") {
  compound_requests_fail_whole(local_transport::shm);
}

TEST_CASE("compound requests: a failing part fails the whole, keeps the owner and grant checks, "
          "and leaves no view counted [basp]") {
  compound_requests_fail_whole(local_transport::basp);
}

void compound_requests_from_actors(local_transport transport) {
  two_clients t{transport, "producer", "consumer"};
  auto& d = t.d;
  auto& cs = t.cs;
  auto& producer = t.a;
  auto& consumer = t.b;
  const auto& start = t.start;
  // An event-based actor allocates and maps, fills, hands the block over; the consumer maps it
  // with two blocks of its own in one request, checks the bytes and frees all three.
  std::promise<std::string> outcome;
  auto* p = &*producer;
  auto* c = &*consumer;
  std::vector<block_ref> own;
  for (int i = 0; i < 2; ++i) {
    auto r = consumer->allocate(8192);
    REQUIRE(r);
    own.push_back(*r);
  }
  cs.sys.spawn([&, p, c](caf::event_based_actor* self) {
    auto fail = [&, self](caf::error& e) {
      outcome.set_value(describe(e));
      self->quit();
    };
    p->allocate_and_map(self, 70000).then(
      [=, &outcome, &own](block_view&& v) {
        fill(v, 'q');
        p->transfer(self, std::move(v), c->id()).then(
          [=, &outcome, &own](block_ref moved) {
            c->map(self, std::vector<block_ref>{moved, own[0], own[1]}, access_mode::read).then(
              [=, &outcome](std::vector<block_view>&& views) {
                if (views.size() != 3 || !holds(views[0], 'q')) {
                  outcome.set_value("wrong views");
                  return self->quit();
                }
                auto left = std::make_shared<int>(3);
                for (auto& view : views)
                  c->free(self, std::move(view)).then(
                    [=, &outcome](done) {
                      if (--*left == 0) {
                        outcome.set_value("ok");
                        self->quit();
                      }
                    },
                    fail);
              },
              fail);
          },
          fail);
      },
      fail);
  });
  auto f = outcome.get_future();
  REQUIRE(f.wait_for(30s) == std::future_status::ready);
  CHECK(f.get() == "ok");
  nothing_left(*producer, start, d);
}

TEST_CASE("compound requests: the async forms from an event-based actor [shm]") {
  compound_requests_from_actors(local_transport::shm);
}

TEST_CASE("compound requests: the async forms from an event-based actor [basp]") {
  compound_requests_from_actors(local_transport::basp);
}
