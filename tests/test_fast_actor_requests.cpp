// Requests of event-based actors over the local fast path: the async client calls (and the pool
// operations built on them, and client::request) of a client of cafshmd on this machine travel
// through the engine's request inbox, and each answer is put into the requesting actor's
// mailbox as the response its handler awaits. The engine's stats count them (inbox_requests).
// Errors, timeouts and the engine's death give the same codes as over BASP; an answer whose
// requester ended is dropped, counted, and what it carried is given back; one scheduler thread
// does not deadlock. Cases marked [polling] run under cafshm::polling_scheduler, whose workers
// read the reply inbox instead of the channel's own reading thread.
#include "test_names.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "cafshm/client.hpp"
#include "cafshm/pool.hpp"
#include "cafshm/remote.hpp"
#include "fastpath/request_channel.hpp"
#include "support/client_system.hpp"
#include "testing/child_process.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::scheduler_kind;

namespace {

// How long a test waits for an answer that must come (far beyond any normal answer time).
constexpr auto answer_deadline = 30s;

template <class T>
using promise_ptr = std::shared_ptr<std::promise<caf::expected<T>>>;

template <class T>
caf::expected<T> wait_for(std::future<caf::expected<T>>& f) {
  if (f.wait_for(answer_deadline) != std::future_status::ready)
    return make_error(errc::engine_unreachable, "the test saw no answer within its deadline");
  return f.get();
}

// Runs one async client call (`start(self)` answers an async_result<T>) in an event-based
// actor of its own and waits for the handler that answers it.
template <class T, class Start>
caf::expected<T> in_actor(caf::actor_system& sys, Start start) {
  auto result = std::make_shared<std::promise<caf::expected<T>>>();
  auto f = result->get_future();
  sys.spawn([=](caf::event_based_actor* self) {
    start(self).then(
      [=](T&& x) {
        result->set_value(std::move(x));
        self->quit();
      },
      [=](caf::error& e) {
        result->set_value(e);
        self->quit();
      });
  });
  return wait_for(f);
}

// The same for client::request(self, ...), which answers CAF's own response handle.
template <class T, class Start>
caf::expected<T> request_in_actor(caf::actor_system& sys, Start start) {
  auto result = std::make_shared<std::promise<caf::expected<T>>>();
  auto f = result->get_future();
  sys.spawn([=](caf::event_based_actor* self) {
    start(self).then(
      [=](T& x) {
        result->set_value(std::move(x));
        self->quit();
      },
      [=](caf::error& e) {
        result->set_value(e);
        self->quit();
      });
  });
  return wait_for(f);
}

// SIGSTOP reaches a process asynchronously: waits until the engine really runs no more.
void stop_engine(daemon_process& d) {
  REQUIRE(d.process().pause(answer_deadline));
}

std::string pattern(size_t size) {
  std::string s(size, 'x');
  for (size_t i = 0; i < s.size(); ++i)
    s[i] = static_cast<char>('a' + i % 23);
  return s;
}

// Every kind of async call, client::request with the kinds the blocking calls send through
// the inbox, and a pool; publish and find_actor (actor handles) stay on BASP.
void every_kind(local_transport transport, scheduler_kind sched = scheduler_kind::configured) {
  daemon_process d{test::unique_name("cafshm-test-fastactor")};
  REQUIRE(d.ready());
  client_system cs{transport, sched};
  auto c = client::connect(cs.sys, d.address(), "asker");
  auto peer = client::connect(cs.sys, d.address(), "peer");
  REQUIRE(c);
  REQUIRE(peer);
  REQUIRE(c->transport() == transport);
  auto big = c->allocate(1 << 20); // its write is too large for a record: BASP either way
  REQUIRE(big);
  auto big_content = pattern(1 << 20);
  REQUIRE(c->write(*big, 0, big_content));
  auto before = c->stats();
  REQUIRE(before);
  auto& sys = cs.sys;
  auto* cl = &*c;

  auto ref = in_actor<block_ref>(sys, [cl](auto* self) { return cl->allocate(self, 10000); });
  REQUIRE_MESSAGE(ref, (ref ? std::string{} : describe(ref.error())));
  CHECK(ref->size == 10000);
  auto view = in_actor<block_view>(sys, [cl, r = *ref](auto* self) {
    return cl->map(self, r, access_mode::read_write);
  });
  REQUIRE_MESSAGE(view, (view ? std::string{} : describe(view.error())));
  std::memcpy(view->data(), "hello", 5);
  auto shared_view = std::make_shared<block_view>(std::move(*view));
  REQUIRE(in_actor<done>(sys, [cl, shared_view](auto* self) {
    return cl->unmap(self, std::move(*shared_view));
  }));
  REQUIRE(in_actor<done>(sys, [cl, r = *ref, to = peer->id()](auto* self) {
    return cl->share(self, r, to, access_mode::read);
  }));
  auto found_peer = in_actor<process_id>(sys, [cl](auto* self) {
    return cl->find_process(self, "peer");
  });
  REQUIRE(found_peer);
  CHECK(*found_peer == peer->id());
  // client::request with kinds of the blocking calls.
  REQUIRE(request_in_actor<done_atom>(sys, [cl, r = *ref](auto* self) {
    return cl->request(self, name_atom::value, r, std::string{"greeting"});
  }));
  auto found = request_in_actor<block_ref>(sys, [cl](auto* self) {
    return cl->request(self, lookup_atom::value, std::string{"greeting"});
  });
  REQUIRE(found);
  CHECK(*found == *ref);
  auto bytes = request_in_actor<std::vector<char>>(sys, [cl, r = *ref](auto* self) {
    return cl->request(self, read_atom::value, r, uint64_t{0}, uint64_t{5});
  });
  REQUIRE(bytes);
  CHECK(std::string(bytes->begin(), bytes->end()) == "hello");
  // An answer too large for the reply inbox is asked again over BASP, under the same id.
  auto whole = request_in_actor<std::vector<char>>(sys, [cl, r = *big](auto* self) {
    return cl->request(self, read_atom::value, r, uint64_t{0}, uint64_t{1} << 20);
  });
  REQUIRE_MESSAGE(whole, (whole ? std::string{} : describe(whole.error())));
  CHECK(std::string(whole->begin(), whole->end()) == big_content);
  // The engine's refusals arrive as the same errors as the blocking call gets.
  auto missing = in_actor<process_id>(sys, [cl](auto* self) {
    return cl->find_process(self, "nobody");
  });
  REQUIRE(!missing);
  auto missing_blocking = c->find_process("nobody");
  REQUIRE(!missing_blocking);
  CHECK(code_of(missing.error()) == code_of(missing_blocking.error()));
  CHECK(code_of(missing.error()) != errc::engine_unreachable);
  auto moved = in_actor<block_ref>(sys, [cl, r = *ref, to = peer->id()](auto* self) {
    return cl->transfer(self, r, to);
  });
  REQUIRE(moved);
  auto small = in_actor<block_ref>(sys, [cl](auto* self) { return cl->allocate(self, 4096); });
  REQUIRE(small);
  REQUIRE(in_actor<done>(sys, [cl, r = *small](auto* self) { return cl->free(self, r); }));
  // Actor handles: over BASP.
  auto adder = sys.spawn([]() -> caf::behavior { return {[](int x) { return x + 1; }}; });
  REQUIRE(in_actor<done>(sys, [cl, adder](auto* self) {
    return cl->publish(self, adder, "adder");
  }));
  auto published = in_actor<published_actor>(sys, [cl](auto* self) {
    return cl->find_actor(self, "adder");
  });
  REQUIRE(published);
  CHECK(published->actor == adder);
  // A pool: board and two blocks, each allocated, mapped and shared with one reader.
  auto made = in_actor<pool>(sys, [cl, reader = peer->id()](auto* self) {
    return pool::create(self, *cl, {2, 4096, {reader}});
  });
  REQUIRE_MESSAGE(made, (made ? std::string{} : describe(made.error())));
  CHECK(made->count() == 2);

  auto after = c->stats();
  REQUIRE(after);
  // allocate, map, unmap, share, process, name, lookup, read, read (answered too large),
  // process, transfer, allocate, free; the blocking find_process; the pool 3 × (allocate, map,
  // share); stats.
  if (transport == local_transport::shm)
    CHECK(after->inbox_requests == before->inbox_requests + 13 + 1 + 9 + 1);
  else
    CHECK(after->inbox_requests == before->inbox_requests);
  CHECK(after->inbox_refused == before->inbox_refused);
  CHECK(after->inbox_replies_lost == before->inbox_replies_lost);
  if (auto ch = detail::channel_of(*c)) {
    CHECK(ch->replies_dropped() == 0);
    CHECK(ch->actor_requests_pending() == 0);
    // Who read the answers: the scheduler's workers, or the channel's thread.
    CHECK(ch->polled() == (sched == scheduler_kind::polling));
    CHECK(ch->reader_thread_started() == (sched != scheduler_kind::polling));
  }
  caf::anon_send_exit(adder, caf::exit_reason::user_shutdown);
}

} // namespace

TEST_CASE("fast path for actors: every async call kind, client::request and a pool go through "
          "the engine's inbox and answer in the actor [shm]") {
  every_kind(local_transport::shm);
}

TEST_CASE("fast path for actors: with local.transport basp the same calls take BASP with the "
          "same answers [basp]") {
  every_kind(local_transport::basp);
}

TEST_CASE("fast path for actors: every async call kind, client::request and a pool answer in the "
          "actor through the polling scheduler's workers [shm][polling]") {
  every_kind(local_transport::shm, scheduler_kind::polling);
}

namespace {

using go_atom = caf::atom_constant<caf::atom("t_go")>;

// Sends `n` allocations at once, checks each answer's size and that they come in the order of
// the requests, then frees all of them at once; answers the number of wrong or failed answers.
caf::behavior burst(caf::event_based_actor* self, client* c, int n, uint64_t base,
                    promise_ptr<int> result) {
  struct state {
    int left;
    int wrong = 0; // failed, of the wrong size, or answered out of the order of the requests
    uint64_t last_size = 0;
    std::vector<block_ref> refs;
  };
  auto st = std::make_shared<state>();
  st->left = n;
  auto finish = [self, st, result, c]() {
    st->left = static_cast<int>(st->refs.size());
    if (st->left == 0) {
      result->set_value(st->wrong);
      self->quit();
      return;
    }
    for (auto& r : st->refs)
      c->free(self, r).then(
        [self, st, result](done&&) {
          if (--st->left == 0) {
            result->set_value(st->wrong);
            self->quit();
          }
        },
        [self, st, result](caf::error&) {
          ++st->wrong;
          if (--st->left == 0) {
            result->set_value(st->wrong);
            self->quit();
          }
        });
  };
  return {[=](go_atom) {
    for (int i = 0; i < n; ++i) {
      uint64_t size = base + static_cast<uint64_t>(i);
      c->allocate(self, size).then(
        [st, size, finish](block_ref&& r) {
          if (r.size != size || size < st->last_size)
            ++st->wrong;
          st->last_size = size;
          st->refs.push_back(r);
          if (--st->left == 0)
            finish();
        },
        [st, finish](caf::error&) {
          ++st->wrong;
          if (--st->left == 0)
            finish();
        });
    }
  }};
}

} // namespace

namespace {

// `local_yaml`: the engine's local: section; with a small reply inbox most requests wait for
// room for their answers (request_channel.hpp).
void crowd(scheduler_kind sched, const std::string& local_yaml = {}) {
  daemon_process d{test::unique_name("cafshm-test-fastactor"), "64MiB", 0, local_yaml};
  REQUIRE(d.ready());
  client_system cs{local_transport::shm, sched};
  auto c = client::connect(cs.sys, d.address(), "crowd");
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto before = c->stats();
  REQUIRE(before);
  constexpr int actors = 8;
  constexpr int per_actor = 100;
  std::vector<std::future<caf::expected<int>>> results;
  for (int a = 0; a < actors; ++a) {
    auto p = std::make_shared<std::promise<caf::expected<int>>>();
    results.push_back(p->get_future());
    auto act = cs.sys.spawn(burst, &*c, per_actor, 4096 + static_cast<uint64_t>(a) * 1000, p);
    caf::anon_send(act, go_atom::value);
  }
  std::atomic<int> wrong_blocking{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        if (auto r = c->find_process("crowd"); !r || *r != c->id())
          ++wrong_blocking;
    });
  for (auto& th : threads)
    th.join();
  for (auto& f : results) {
    auto wrong = wait_for(f);
    REQUIRE(wrong);
    CHECK(*wrong == 0);
  }
  CHECK(wrong_blocking == 0);
  auto after = c->stats();
  REQUIRE(after);
  CHECK(after->blocks == before->blocks);
  CHECK(after->inbox_requests
        == before->inbox_requests + actors * per_actor * 2 + 2 * 100 + 1);
  CHECK(after->inbox_replies_lost == before->inbox_replies_lost);
  auto ch = detail::channel_of(*c);
  REQUIRE(ch);
  CHECK(ch->actor_requests_pending() == 0);
  CHECK(ch->replies_dropped() == 0);
  CHECK(ch->stray_replies() == 0);
  CHECK(ch->reader_thread_started() == (sched != scheduler_kind::polling));
  CHECK(ch->room_held() == 0);
  if (!local_yaml.empty())
    CHECK(ch->requests_deferred() > 0);
}

// A reply inbox of 8 KiB has room for the answers of three requests in flight (4 KiB, a small
// answer's bound 1 KiB); the burst sends 1600 actor requests at once beside 200 blocking calls.
const std::string small_reply_inbox = "local:\n  reply_inbox: 8KiB\n";

} // namespace

TEST_CASE("fast path for actors: many requests in flight from several actors and blocking calls "
          "from threads at once each get their own answer") {
  crowd(scheduler_kind::configured);
}

TEST_CASE("fast path for actors: many requests in flight from several actors and blocking calls "
          "from threads at once each get their own answer [polling]") {
  crowd(scheduler_kind::polling);
}

TEST_CASE("fast path for actors: more requests in flight than the reply inbox has room for wait "
          "for room, and every one is answered, in order, with none lost") {
  crowd(scheduler_kind::configured, small_reply_inbox);
}

TEST_CASE("fast path for actors: more requests in flight than the reply inbox has room for wait "
          "for room, and every one is answered, in order, with none lost [polling]") {
  crowd(scheduler_kind::polling, small_reply_inbox);
}

TEST_CASE("fast path for actors: stats and read answers larger than the reply inbox are asked "
          "again over BASP") {
  daemon_process d{test::unique_name("cafshm-test-fastactor"), "64MiB", 0, small_reply_inbox};
  REQUIRE(d.ready());
  client_system cs{local_transport::shm};
  auto c = client::connect(cs.sys, d.address(), "asker");
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto ch = detail::channel_of(*c);
  REQUIRE(ch);
  // 60 names of 55 characters (the longest): the stats answer lists them all, more than the
  // 4 KiB an answer may take.
  std::vector<block_ref> named;
  for (int i = 0; i < 60; ++i) {
    auto r = c->allocate(64);
    REQUIRE(r);
    auto name = std::to_string(i) + std::string(53, 'n');
    REQUIRE(c->name(*r, name.substr(0, 55)));
    named.push_back(*r);
  }
  auto whole = pattern(6000);
  auto big = c->allocate(whole.size());
  REQUIRE(big);
  REQUIRE(c->write(*big, 0, whole));
  auto before = c->stats(); // blocking: asked again over BASP as well
  REQUIRE(before);
  REQUIRE(before->name_list.size() == 60);
  auto* cl = &*c;
  auto st = request_in_actor<engine_stats>(cs.sys, [cl](auto* self) {
    return cl->request(self, stats_atom::value);
  });
  REQUIRE_MESSAGE(st, (st ? std::string{} : describe(st.error())));
  CHECK(st->name_list.size() == 60);
  auto bytes = request_in_actor<std::vector<char>>(cs.sys, [cl, r = *big](auto* self) {
    return cl->request(self, read_atom::value, r, uint64_t{0}, uint64_t{6000});
  });
  REQUIRE_MESSAGE(bytes, (bytes ? std::string{} : describe(bytes.error())));
  CHECK(std::string(bytes->begin(), bytes->end()) == whole);
  auto blocking = c->read(*big, 0, 6000);
  REQUIRE(blocking);
  CHECK(std::string(blocking->begin(), blocking->end()) == whole);
  auto after = c->stats();
  REQUIRE(after);
  // The actor's stats and both reads went through the inbox in order with the requests around
  // them (answered too large, then asked again over BASP), and `after` itself. Nothing was lost
  // or refused.
  CHECK(after->inbox_requests == before->inbox_requests + 4);
  CHECK(after->inbox_replies_lost == before->inbox_replies_lost);
  CHECK(after->inbox_refused == before->inbox_refused);
  CHECK(ch->room_held() == 0);
  for (auto& r : named)
    CHECK(c->free(r));
  CHECK(c->free(*big));
}

namespace {

// One actor's requests, sent without waiting, on a block: a small write (inbox), a write too
// large for a request record (BASP), a small read, a read whose answer is larger than the
// reply inbox takes (through the inbox, answered "too large", asked again over BASP), a small
// write and a small read. Each read must see the write sent last before it: the requests take
// effect in the order the actor sent them, whichever path each takes. Answers the number of
// requests that failed or read what another order would have left.
caf::behavior in_order(caf::event_based_actor* self, client* c, block_ref ref, int rounds,
                       size_t big, promise_ptr<int> result) {
  struct state {
    int left = 0;
    int wrong = 0;
  };
  auto st = std::make_shared<state>();
  st->left = rounds * 6;
  auto one_done = [self, st, result] {
    if (--st->left == 0) {
      result->set_value(st->wrong);
      self->quit();
    }
  };
  auto failed = [st, one_done](caf::error&) {
    ++st->wrong;
    one_done();
  };
  auto wrote = [one_done](done_atom) { one_done(); };
  auto expect = [st, one_done](std::string want) {
    return [st, one_done, want](std::vector<char>& got) {
      if (std::string(got.begin(), got.end()) != want)
        ++st->wrong;
      one_done();
    };
  };
  return {[=](go_atom) {
    for (int r = 0; r < rounds; ++r) {
      auto tag = [r](char c) { return std::string(16, static_cast<char>(c + r)); };
      auto large = tag('A') + pattern(big - 16);
      c->request(self, write_atom::value, ref, uint64_t{0}, std::vector<char>(16, 'a' + r))
        .then(wrote, failed);
      c->request(self, write_atom::value, ref, uint64_t{0},
                 std::vector<char>(large.begin(), large.end()))
        .then(wrote, failed);
      c->request(self, read_atom::value, ref, uint64_t{0}, uint64_t{16})
        .then(expect(tag('A')), failed);
      c->request(self, read_atom::value, ref, uint64_t{0}, uint64_t{big})
        .then(expect(large), failed);
      c->request(self, write_atom::value, ref, uint64_t{0}, std::vector<char>(16, 'k' + r))
        .then(wrote, failed);
      c->request(self, read_atom::value, ref, uint64_t{0}, uint64_t{16})
        .then(expect(tag('k')), failed);
    }
  }};
}

void in_order_over_both_paths(scheduler_kind sched) {
  // Request records and answers of at most about 4 KiB: a write of 6000 bytes takes BASP, and
  // so does the answer of a read of 6000 bytes.
  daemon_process d{test::unique_name("cafshm-test-fastactor"), "64MiB", 0,
                   "local:\n  request_inbox: 8KiB\n  reply_inbox: 8KiB\n"};
  REQUIRE(d.ready());
  client_system cs{local_transport::shm, sched};
  auto c = client::connect(cs.sys, d.address(), "orderly");
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  constexpr size_t big = 6000;
  auto ref = c->allocate(big);
  REQUIRE(ref);
  auto before = c->stats();
  REQUIRE(before);
  constexpr int rounds = 20;
  auto p = std::make_shared<std::promise<caf::expected<int>>>();
  auto f = p->get_future();
  auto act = cs.sys.spawn(in_order, &*c, *ref, rounds, big, p);
  caf::anon_send(act, go_atom::value);
  auto wrong = wait_for(f);
  REQUIRE(wrong);
  CHECK(*wrong == 0);
  auto after = c->stats();
  REQUIRE(after);
  // Of each round's six requests the large write took BASP; the other five went through the
  // inbox (the large read, answered "too large", once more over BASP), and so did `after`.
  CHECK(after->inbox_requests == before->inbox_requests + rounds * 5 + 1);
  auto ch = detail::channel_of(*c);
  REQUIRE(ch);
  CHECK(ch->actor_requests_pending() == 0);
  CHECK(ch->room_held() == 0);
  CHECK(c->free(*ref));
}

} // namespace

TEST_CASE("fast path for actors: one actor's requests take effect in the order it sent them, "
          "also those that travel over BASP") {
  in_order_over_both_paths(scheduler_kind::configured);
}

TEST_CASE("fast path for actors: one actor's requests take effect in the order it sent them, "
          "also those that travel over BASP [polling]") {
  in_order_over_both_paths(scheduler_kind::polling);
}

TEST_CASE("fast path for actors: a transmit to an actor does not hold up the requests sent after "
          "it") {
  daemon_process a{test::unique_name("cafshm-test-fastactor"), "16MiB", 0, "remote:\n  cache: 0\n"};
  daemon_process b{test::unique_name("cafshm-test-fastactor"), "16MiB"};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs{local_transport::shm};
  auto c = client::connect(cs.sys, a.address(), "teller");
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto sink = client::connect(cs.sys, b.address(), "sink");
  REQUIRE(sink);
  auto ref = c->allocate(4096);
  REQUIRE(ref);
  auto listener = cs.sys.spawn([]() -> caf::behavior {
    return {[](delivered_atom, const block_ref&) {}};
  });
  transmit_target tell;
  tell.process = "sink";
  tell.deliver_to = listener; // an actor handle: the transmit travels over BASP
  struct outcome {
    std::promise<bool> found; // whether the transmit was still unanswered then
    std::promise<caf::error> transmitted;
  };
  auto out = std::make_shared<outcome>();
  auto found = out->found.get_future();
  auto transmitted = out->transmitted.get_future();
  auto* cl = &*c;
  {
    // The destination engine runs no more: the transmit waits for it.
    test::paused_process stopped{b.process()};
    REQUIRE(stopped);
    cs.sys.spawn([=, r = *ref, to = b.address_text()](caf::event_based_actor* self) {
      auto answered = std::make_shared<bool>(false);
      auto left = std::make_shared<int>(2);
      auto one_done = [self, left] {
        if (--*left == 0)
          self->quit();
      };
      cl->request(self, transmit_atom::value, r, to, tell)
        .then(
          [out, answered, one_done](transmit_receipt&) {
            *answered = true;
            out->transmitted.set_value(caf::error{});
            one_done();
          },
          [out, answered, one_done](caf::error& e) {
            *answered = true;
            out->transmitted.set_value(e);
            one_done();
          });
      cl->find_process(self, "teller")
        .then(
          [out, answered, one_done](process_id&&) {
            out->found.set_value(!*answered);
            one_done();
          },
          [out, one_done](caf::error&) {
            out->found.set_value(false);
            one_done();
          });
    });
    REQUIRE(found.wait_for(answer_deadline) == std::future_status::ready);
    CHECK(found.get());
  }
  // The destination runs again: the transmit completes (within the requester's timeout).
  REQUIRE(transmitted.wait_for(answer_deadline) == std::future_status::ready);
  auto why = transmitted.get();
  CHECK_MESSAGE(!why, cs.sys.render(why));
  auto again = c->find_process("teller");
  CHECK(again);
  caf::anon_send_exit(listener, caf::exit_reason::user_shutdown);
}

TEST_CASE("fast path for actors: requests waiting for their answers fail at once with "
          "engine_unreachable when the engine is killed") {
  daemon_process d{test::unique_name("cafshm-test-fastactor")};
  REQUIRE(d.ready());
  client_system cs;
  client_options opts;
  opts.timeout = 120s; // far beyond the test's own deadline: only the engine's death ends them
  auto c = client::connect(cs.sys, d.address(), "waiter", opts);
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto ref = c->allocate(2 << 20);
  REQUIRE(ref);
  auto ch = detail::channel_of(*c);
  REQUIRE(ch);
  stop_engine(d);
  constexpr int kinds = 6;
  auto sent = std::make_shared<std::promise<void>>();
  auto codes = std::make_shared<std::vector<promise_ptr<done>>>();
  std::vector<std::future<caf::expected<done>>> answers;
  for (int i = 0; i < kinds; ++i) {
    codes->push_back(std::make_shared<std::promise<caf::expected<done>>>());
    answers.push_back(codes->back()->get_future());
  }
  auto* cl = &*c;
  cs.sys.spawn([=, r = *ref](caf::event_based_actor* self) {
    auto answer = [codes](int i) {
      return [p = (*codes)[i]](auto&&...) { p->set_value(done{}); };
    };
    auto failed = [codes](int i) {
      return [p = (*codes)[i]](caf::error& e) { p->set_value(e); };
    };
    cl->allocate(self, 4096).then(answer(0), failed(0));
    cl->find_process(self, "waiter").then(answer(1), failed(1));
    cl->map(self, r, access_mode::read).then(answer(2), failed(2));
    cl->free(self, r).then(answer(3), failed(3));
    cl->request(self, stats_atom::value)
      .then([p = (*codes)[4]](engine_stats&) { p->set_value(done{}); }, failed(4));
    // Too large for a request record: sent over BASP once the requests before it are answered.
    cl->request(self, write_atom::value, r, uint64_t{0}, std::vector<char>(2 << 20, 'w'))
      .then([p = (*codes)[5]](done_atom) { p->set_value(done{}); }, failed(5));
    sent->set_value(); // the records are in the engine's inbox now, the write in the queue
  });
  sent->get_future().wait();
  CHECK(ch->actor_requests_pending() == kinds);
  d.kill_hard();
  for (auto& f : answers) {
    auto r = wait_for(f);
    REQUIRE(!r);
    CHECK(code_of(r.error()) == errc::engine_unreachable);
  }
  CHECK(ch->actor_requests_pending() == 0);
}

namespace {

// Waits until `actor` has ended (its down message), up to the test's deadline.
bool ended(caf::actor_system& sys, const caf::actor& actor) {
  caf::scoped_actor watcher{sys};
  watcher->monitor(actor);
  bool down = false;
  watcher->receive([&](caf::down_msg&) { down = true; },
                   caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(
                     answer_deadline)) >> [] {});
  return down;
}

} // namespace

namespace {

void requester_ended(scheduler_kind sched) {
  daemon_process d{test::unique_name("cafshm-test-fastactor")};
  REQUIRE(d.ready());
  client_system cs{local_transport::shm, sched};
  client_options opts;
  opts.timeout = 120s;
  auto c = client::connect(cs.sys, d.address(), "forgetful", opts);
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto ref = c->allocate(8192);
  REQUIRE(ref);
  auto before = c->stats();
  REQUIRE(before);
  auto ch = detail::channel_of(*c);
  REQUIRE(ch);
  stop_engine(d);
  auto* cl = &*c;
  auto sent = std::make_shared<std::promise<void>>();
  auto answered = std::make_shared<std::atomic<int>>(0);
  auto shortlived = cs.sys.spawn([=, r = *ref](caf::event_based_actor* self) {
    cl->map(self, r, access_mode::read)
      .then([answered](block_view&&) { ++*answered; }, [answered](caf::error&) { ++*answered; });
    cl->allocate(self, 4096).then([answered](block_ref&&) { ++*answered; },
                                  [answered](caf::error&) { ++*answered; });
    sent->set_value();
    self->quit();
  });
  sent->get_future().wait();
  REQUIRE(ended(cs.sys, shortlived));
  shortlived = nullptr;
  CHECK(ch->actor_requests_pending() == 2);
  d.process().kill(SIGCONT);
  REQUIRE(cafshm_test::wait_until([&] { return ch->replies_dropped() == 2; }, answer_deadline));
  CHECK(*answered == 0);
  CHECK(ch->actor_requests_pending() == 0);
  // The block allocated for nobody is freed; the view counted for nobody is closed, so that
  // freeing the block ends it at once instead of leaving it draining.
  CHECK(eventually(*c, answer_deadline, [&](const engine_stats& s) {
    return s.blocks == before->blocks;
  }));
  REQUIRE(c->free(*ref));
  CHECK(eventually(*c, answer_deadline, [&](const engine_stats& s) {
    return s.blocks == before->blocks - 1 && s.draining_blocks == 0;
  }));
}

} // namespace

TEST_CASE("fast path for actors: answers for a requester that ended are dropped and counted, "
          "and the block and view they carried are given back") {
  requester_ended(scheduler_kind::configured);
}

TEST_CASE("fast path for actors: answers for a requester that ended are dropped and counted, "
          "and the block and view they carried are given back [polling]") {
  requester_ended(scheduler_kind::polling);
}

namespace {

// An answer that comes after the request's timeout: the requester got engine_unreachable (as
// over BASP); on the fast path the late answer is dropped, counted and its block given back.
void late_answer(local_transport transport, scheduler_kind sched = scheduler_kind::configured) {
  daemon_process d{test::unique_name("cafshm-test-fastactor")};
  REQUIRE(d.ready());
  client_system cs{transport, sched};
  client_options opts;
  opts.timeout = 300ms;
  auto c = client::connect(cs.sys, d.address(), "impatient", opts);
  REQUIRE(c);
  REQUIRE(c->transport() == transport);
  auto before = c->stats();
  REQUIRE(before);
  stop_engine(d);
  auto* cl = &*c;
  auto r = in_actor<block_ref>(cs.sys, [cl](auto* self) { return cl->allocate(self, 4096); });
  REQUIRE(!r);
  CHECK(code_of(r.error()) == errc::engine_unreachable);
  auto raw = request_in_actor<process_id>(cs.sys, [cl](auto* self) {
    return cl->request(self, process_atom::value, std::string{"impatient"});
  });
  REQUIRE(!raw);
  CHECK(raw.error() == caf::sec::request_timeout); // CAF's own timeout, as over BASP
  d.process().kill(SIGCONT);
  if (auto ch = detail::channel_of(*c)) {
    REQUIRE(cafshm_test::wait_until([&] { return ch->replies_dropped() == 2; }, answer_deadline));
    CHECK(eventually(*c, answer_deadline, [&](const engine_stats& s) {
      return s.blocks == before->blocks;
    }));
  }
}

} // namespace

TEST_CASE("fast path for actors: a request past its timeout fails as over BASP and its late "
          "answer gives the block back [shm]") {
  late_answer(local_transport::shm);
}

TEST_CASE("fast path for actors: a request past its timeout fails with engine_unreachable [basp]") {
  late_answer(local_transport::basp);
}

TEST_CASE("fast path for actors: a request past its timeout fails as over BASP and its late "
          "answer gives the block back [shm][polling]") {
  late_answer(local_transport::shm, scheduler_kind::polling);
}

namespace {

// `left` rounds of allocate, map, unmap, free, each step in the answer of the one before; then
// a pool with one reader. Answers the pool's block count.
void cycle(caf::event_based_actor* self, client* c, int left, process_id reader,
           promise_ptr<int> result) {
  auto fail = [result, self](caf::error& e) {
    result->set_value(e);
    self->quit();
  };
  if (left == 0) {
    pool::create(self, *c, {2, 4096, {reader}})
      .then(
        [result, self](pool&& p) {
          result->set_value(static_cast<int>(p.count()));
          self->quit();
        },
        fail);
    return;
  }
  c->allocate(self, 4096).then(
    [=](block_ref&& r) {
      c->map(self, r, access_mode::read_write)
        .then(
          [=](block_view&& v) {
            c->unmap(self, std::move(v))
              .then(
                [=](done&&) {
                  c->free(self, r).then(
                    [=](done&&) { cycle(self, c, left - 1, reader, result); }, fail);
                },
                fail);
          },
          fail);
    },
    fail);
}

} // namespace

namespace {

void one_thread(scheduler_kind sched) {
  daemon_process d{test::unique_name("cafshm-test-fastactor")};
  REQUIRE(d.ready());
  caf::actor_system_config cfg;
  test::client_config(cfg, local_transport::shm, sched);
  cfg.set("scheduler.policy", caf::atom("sharing")); // ignored beside the polling scheduler
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  auto c = client::connect(sys, d.address(), "single"); // main thread: may block
  auto peer = client::connect(sys, d.address(), "single-peer");
  REQUIRE(c);
  REQUIRE(peer);
  REQUIRE(c->transport() == local_transport::shm);
  auto before = c->stats();
  REQUIRE(before);
  constexpr int rounds = 50;
  auto result = std::make_shared<std::promise<caf::expected<int>>>();
  auto f = result->get_future();
  auto* cl = &*c;
  sys.spawn([=, reader = peer->id()](caf::event_based_actor* self) {
    // A blocking call on the only thread is refused at once.
    auto blocked = cl->allocate(4096);
    if (blocked || code_of(blocked.error()) != errc::would_deadlock) {
      result->set_value(-1);
      return;
    }
    cycle(self, cl, rounds, reader, result);
  });
  auto made = wait_for(f);
  REQUIRE_MESSAGE(made, (made ? std::string{} : describe(made.error())));
  CHECK(*made == 2);
  auto after = c->stats();
  REQUIRE(after);
  CHECK(after->inbox_requests == before->inbox_requests + rounds * 4 + 9 + 1);
}

} // namespace

TEST_CASE("fast path for actors: one scheduler thread (sharing, 1) runs chains of async calls "
          "and a pool without deadlock") {
  one_thread(scheduler_kind::configured);
}

TEST_CASE("fast path for actors: one polling scheduler thread runs chains of async calls and a "
          "pool without deadlock, reading the answers itself [polling]") {
  one_thread(scheduler_kind::polling);
}
