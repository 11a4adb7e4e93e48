// cafshm::polling_scheduler (plugin/src/fastpath/polling_policy.hpp): the scheduler's own
// workers read the process's inboxes. Records reach their actors with no reading thread; local
// messages, timers and the middleman still wake parked workers; no wake-up is lost between a
// producer's publish and a worker's park (the park timeout is an hour here, so a lost one stalls
// the test until its deadline); each inbox has one reader at a time; an idle process uses no
// measurable CPU; and the actor system shuts down with parked workers.
#include "test_names.hpp"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>


#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/module.hpp"
#include "cafshm/polling_scheduler.hpp"
#include "fastpath/coalescing_clock.hpp"
#include "fastpath/inbox_delivery.hpp"
#include "fastpath/poll_registry.hpp"
#include "testing/child_process.hpp"

using namespace cafshm;
using namespace cafshm::fastpath;
using namespace std::chrono_literals;
using cafshm::test::child_process;
using cafshm_test::unique_name;
using cafshm_test::wait_until;

namespace {

using frame_atom = caf::atom_constant<caf::atom("frame")>;
using tick_atom = caf::atom_constant<caf::atom("t_tick")>;
using fail_atom = caf::atom_constant<caf::atom("t_fail")>;

// Far beyond what any step needs; a lost wake-up (hour-long park timeout) runs into it.
constexpr auto deadline = 60s;

std::string peer_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-inbox-peer";
}

struct inbox_guard {
  std::string engine;
  std::vector<uint32_t> slots;
  ~inbox_guard() {
    for (auto slot : slots)
      inbox::remove(engine, slot);
  }
};

struct polling_config : caf::actor_system_config {
  explicit polling_config(size_t threads, bool middleman = false) {
    load<cafshm::polling_scheduler>();
    if (middleman)
      load<caf::io::middleman>();
    cafshm::add_message_types(*this);
    set("scheduler.max-threads", threads);
  }
};

// Park at once, and for an hour if nobody wakes the worker: only wake-ups end a park.
// Parking with no safety-net timeout to hide a lost wake-up, after a spin of `spin` (yielding
// between polls if `yield`).
void park_for_an_hour(caf::actor_system& sys, std::chrono::microseconds spin = {},
                      bool yield = false) {
  idle_strategy idle;
  idle.spin = spin;
  idle.yield_while_spinning = yield;
  idle.park_timeout = std::chrono::hours{1};
  poll_registry::instance().set_idle(sys, idle);
}

// CPU time of this process (every thread), user + system.
// CPU time of this process's threads, by thread name (/proc/self/task/*/comm), from the
// scheduler's own nanosecond count (schedstat). CAF 0.17 names its scheduler workers
// "caf.multiplexer".
std::map<std::string, std::chrono::nanoseconds> cpu_time_by_thread_name() {
  std::map<std::string, std::chrono::nanoseconds> result;
  std::error_code ec;
  for (auto& task : std::filesystem::directory_iterator{"/proc/self/task", ec}) {
    std::string name;
    std::getline(std::ifstream{task.path() / "comm"}, name);
    long long ns = 0;
    std::ifstream{task.path() / "schedstat"} >> ns;
    result[name] += std::chrono::nanoseconds{ns};
  }
  return result;
}


void random_pause(std::mt19937& rng, unsigned max_us) {
  auto us = std::uniform_int_distribution<unsigned>{0, max_us}(rng);
  if (rng() & 1) {
    auto end = std::chrono::steady_clock::now() + std::chrono::microseconds{us};
    while (std::chrono::steady_clock::now() < end) {
    }
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds{us});
  }
}

// Receives (ok, i, intact) from the actors below until `count` came, in order, or the deadline.
void expect_in_order(caf::scoped_actor& self, uint32_t count, const std::string& what) {
  for (uint32_t n = 0; n < count; ++n) {
    bool got = false;
    self->receive(
      [&](caf::ok_atom, uint32_t i, bool intact) {
        REQUIRE_MESSAGE(i == n, what << ": message " << i << " came where " << n << " belonged");
        REQUIRE_MESSAGE(intact, what << ": message " << i << " arrived damaged");
        got = true;
      },
      caf::after(deadline) >> [] {});
    REQUIRE_MESSAGE(got, what << ": message " << n << " did not arrive");
  }
}

// An actor that tells `test` each frame it gets and whether its block_ref came through intact.
caf::actor frame_reporter(caf::actor_system& sys, caf::actor test) {
  return sys.spawn([test](caf::event_based_actor* a) -> caf::behavior {
    return {[=](frame_atom, uint32_t i, block_ref ref) {
      a->send(test, caf::ok_atom::value, i, ref == block_ref{i + 1, i, 7, 64ull * i});
    }};
  });
}

} // namespace

TEST_CASE("polling scheduler: inbox records reach their actor through the workers, with no "
          "reading thread, and local messages still flow") {
  auto engine = unique_name("cafshm-test-poll");
  inbox_guard guard{engine, {1}};
  polling_config cfg{1};
  caf::actor_system sys{cfg};
  REQUIRE(polling_scheduler::runs_in(sys));
  REQUIRE(poll_registry::instance().polled(sys));
  auto in = inbox::create(engine, 1);
  REQUIRE_OK(in);
  caf::scoped_actor self{sys};
  auto target = frame_reporter(sys, self);
  constexpr uint32_t count = 500;
  {
    inbox_receiver receiver{sys, *in, target};
    REQUIRE(receiver.polled());
    child_process sender{{peer_bin(), "--mode", "caf-send", "--inbox", in->name(), "--slot", "3",
                          "--count", std::to_string(count), "--garbage", "yes"}};
    expect_in_order(self, count, "inbox");
    CHECK(sender.wait_for_line("sent ", deadline) == std::to_string(count));
    CHECK(receiver.delivered() == count);
    CHECK(receiver.malformed() == 1);
    CHECK(receiver.delivered_by_thread() == 0);
    CHECK(polling_scheduler::counts_of(sys).polls_delivered > 0);
    // Local messages between actors of the same system, while the inbox is polled.
    auto echo = sys.spawn([]() -> caf::behavior { return {[](uint32_t x) { return x + 1; }}; });
    for (uint32_t i = 0; i < 1000; ++i) {
      bool answered = false;
      self->request(echo, deadline, i).receive([&](uint32_t y) { answered = y == i + 1; },
                                               [&](caf::error&) {});
      REQUIRE(answered);
    }
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_CASE("polling scheduler: without it the same receiver reads with a thread of its own") {
  auto engine = unique_name("cafshm-test-poll");
  inbox_guard guard{engine, {1}};
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  CHECK_FALSE(polling_scheduler::runs_in(sys));
  CHECK_FALSE(poll_registry::instance().polled(sys));
  auto in = inbox::create(engine, 1);
  REQUIRE_OK(in);
  caf::scoped_actor self{sys};
  auto target = frame_reporter(sys, self);
  {
    inbox_receiver receiver{sys, *in, target};
    CHECK_FALSE(receiver.polled());
    child_process sender{{peer_bin(), "--mode", "caf-send", "--inbox", in->name(), "--slot", "3",
                          "--count", "100"}};
    expect_in_order(self, 100, "inbox");
    CHECK(receiver.delivered_by_thread() == 100);
  }
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}

// Ping-pong with another process: every record we send it comes back through our inbox, whose
// receiver the workers poll; the actor answers each one with the next. Both sides pause a random
// 0..40 µs (busy or asleep) between sending and waiting, so that publishes land before, during
// and after the worker's park in every order. A second, silent inbox makes the worker sleep on
// several futex words at once. The park timeout is an hour: a lost wake-up stalls the ping-pong.
void ping_pong(size_t threads, uint32_t rounds, std::chrono::microseconds spin = {},
               bool yield = false) {
  auto engine = unique_name("cafshm-test-poll");
  inbox_guard guard{engine, {1, 2, 3}};
  polling_config cfg{threads};
  caf::actor_system sys{cfg};
  park_for_an_hour(sys, spin, yield);
  auto in = inbox::create(engine, 1);
  REQUIRE_OK(in);
  auto silent = inbox::create(engine, 3);
  REQUIRE_OK(silent);
  child_process peer{{peer_bin(), "--mode", "echo", "--engine", engine, "--slot", "2",
                      "--peer", in->name(), "--rounds", std::to_string(rounds), "--jitter-us",
                      "40", "--park-ms", "3600000"}};
  REQUIRE(peer.wait_for_line("ready", deadline));
  auto out = inbox_writer::open(inbox::segment_name(engine, 2), 1, 10s);
  REQUIRE_OK(out);
  auto writer = std::make_shared<inbox_writer>(std::move(*out));
  auto progress = std::make_shared<std::atomic<uint32_t>>(0);
  caf::scoped_actor self{sys};
  caf::actor test = self;
  auto player = sys.spawn([=](caf::event_based_actor* a) -> caf::behavior {
    auto rng = std::make_shared<std::mt19937>(static_cast<unsigned>(::getpid()));
    auto send_next = [=](uint32_t i) {
      block_ref ref{i + 1, i, 7, 64ull * i};
      if (!send_message(*writer, a->system(), caf::make_message(frame_atom::value, i, ref), 10s))
        a->send(test, fail_atom::value, i);
      random_pause(*rng, 40);
    };
    return {
      [=](caf::ok_atom) { send_next(0); },
      [=](frame_atom, uint32_t i, block_ref ref) {
        progress->store(i + 1);
        if (ref != block_ref{i + 1, i, 7, 64ull * i})
          a->send(test, fail_atom::value, i);
        else if (i + 1 == rounds)
          a->send(test, caf::ok_atom::value, i);
        else
          send_next(i + 1);
      }};
  });
  {
    inbox_receiver receiver{sys, *in, player};
    inbox_receiver quiet{sys, *silent, player};
    REQUIRE(receiver.polled());
    self->send(player, caf::ok_atom::value);
    bool done = false;
    self->receive([&](caf::ok_atom, uint32_t) { done = true; },
                  [&](fail_atom, uint32_t i) { FAIL("round " << i << " failed"); },
                  caf::after(deadline) >> [] {});
    REQUIRE_MESSAGE(done, "the ping-pong stalled after " << progress->load() << " of " << rounds
                                                         << " rounds");
    CHECK(peer.wait_for_line("echoed ", deadline) == std::to_string(rounds));
    CHECK(receiver.delivered() == rounds);
    CHECK(receiver.delivered_by_thread() == 0);
    CHECK(quiet.delivered() == 0);
    CHECK(polling_scheduler::counts_of(sys).parks > 0);
  }
  caf::anon_send_exit(player, caf::exit_reason::user_shutdown);
}

TEST_CASE("polling scheduler: no wake-up is lost between a record's publish and a worker's park, "
          "one worker") {
  ping_pong(1, 3000);
}

TEST_CASE("polling scheduler: no wake-up is lost between a record's publish and a worker's park, "
          "three workers") {
  ping_pong(3, 2000);
}

TEST_CASE("polling scheduler: no wake-up is lost after a yielding spin (local.idle yield), two "
          "workers") {
  // 40 µs of random delay per side: some answers come while a worker spins, some after it parked.
  ping_pong(2, 2000, std::chrono::microseconds{20}, true);
}

TEST_CASE("polling scheduler: work from other threads, timers and the middleman wakes a parked "
          "worker at once") {
  polling_config cfg{2, true};
  caf::actor_system sys{cfg};
  park_for_an_hour(sys);
  auto echo = sys.spawn([](caf::event_based_actor* a) -> caf::behavior {
    return {
      [](uint32_t x) { return x + 1; },
      [a](tick_atom, uint32_t left, caf::actor test) {
        if (left == 0)
          a->send(test, caf::ok_atom::value);
        else
          a->delayed_send(a, 1ms, tick_atom::value, left - 1, test);
      }};
  });
  std::mt19937 rng{static_cast<unsigned>(::getpid())};
  {
    caf::scoped_actor self{sys};
    // From this thread (a blocking actor runs on it, not on a worker), with random pauses so
    // that the workers are parked or parking when the message comes.
    for (uint32_t i = 0; i < 500; ++i) {
      random_pause(rng, 40);
      bool answered = false;
      self->request(echo, deadline, i).receive([&](uint32_t y) { answered = y == i + 1; },
                                               [&](caf::error&) {});
      REQUIRE_MESSAGE(answered, "request " << i << " got no answer");
    }
    // From the clock thread: 50 delayed messages in a row.
    self->send(echo, tick_atom::value, uint32_t{50}, caf::actor{self});
    bool ticked = false;
    self->receive([&](caf::ok_atom) { ticked = true; }, caf::after(deadline) >> [] {});
    REQUIRE_MESSAGE(ticked, "a delayed message did not wake a worker");
  }
  // From the middleman: a second actor system in this process asks through BASP.
  auto port = sys.middleman().publish(echo, 0, "127.0.0.1");
  REQUIRE(port);
  {
    caf::actor_system_config other_cfg;
    other_cfg.load<caf::io::middleman>();
    caf::actor_system other{other_cfg};
    auto remote = other.middleman().remote_actor("127.0.0.1", *port);
    REQUIRE(remote);
    caf::scoped_actor self{other};
    for (uint32_t i = 0; i < 100; ++i) {
      random_pause(rng, 40);
      bool answered = false;
      self->request(*remote, deadline, i).receive([&](uint32_t y) { answered = y == i + 1; },
                                                  [&](caf::error&) {});
      REQUIRE_MESSAGE(answered, "request " << i << " over BASP got no answer");
    }
  }
  sys.middleman().unpublish(echo, *port);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

// The clock's thread sleeps until its earliest deadline; setting a later one wakes nothing.
TEST_CASE("polling scheduler: requests with a timeout do not wake the clock's thread, and "
          "earlier timeouts and delayed messages still come when due") {
  polling_config cfg{2};
  caf::actor_system sys{cfg};
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  auto echo = sys.spawn([held](caf::event_based_actor* a) -> caf::behavior {
    return {
      [](uint32_t x) { return x + 1; },
      [a, held](tick_atom) -> caf::result<uint32_t> { // never answered while the test runs
        held->push_back(a->make_response_promise());
        return caf::delegated<uint32_t>{};
      }};
  });
  // 2000 requests in a row, each with an hour's timeout: only the first can be due before
  // everything the clock holds.
  constexpr uint32_t requests = 2000;
  auto before = cafshm::polling_scheduler::counts_of(sys).clock_wakeups;
  auto done = std::make_shared<std::promise<uint32_t>>();
  auto answered = done->get_future();
  sys.spawn([echo, done](caf::event_based_actor* a) {
    auto next = std::make_shared<std::function<void(uint32_t)>>();
    *next = [a, echo, done, next](uint32_t i) {
      if (i == requests) {
        done->set_value(i);
        *next = nullptr; // ends the cycle of the function holding itself
        return;
      }
      a->request(echo, std::chrono::seconds{3600}, i).then([next, i](uint32_t y) {
        (*next)(y == i + 1 ? i + 1 : requests + 1);
      });
    };
    (*next)(0);
  });
  REQUIRE(answered.wait_for(deadline) == std::future_status::ready);
  REQUIRE(answered.get() == requests);
  auto woken = cafshm::polling_scheduler::counts_of(sys).clock_wakeups - before;
  MESSAGE(requests << " requests with a timeout woke the clock's thread " << woken << " times");
  CHECK(woken <= 2);
  // The clock now sleeps for about an hour; a request timeout of 50 ms must still end the wait.
  caf::scoped_actor self{sys};
  caf::error timed_out;
  self->request(echo, 50ms, tick_atom::value)
    .receive([](uint32_t) {}, [&](caf::error& e) { timed_out = std::move(e); });
  CHECK_MESSAGE(timed_out == caf::sec::request_timeout, "got " << sys.render(timed_out));
  // Delayed messages set later but due earlier come in the order of their due times.
  for (uint32_t ms : {300u, 100u, 200u})
    self->delayed_send(self, std::chrono::milliseconds{ms}, ms);
  std::vector<uint32_t> order;
  for (int i = 0; i < 3; ++i)
    self->receive([&](uint32_t ms) { order.push_back(ms); }, caf::after(deadline) >> [] {});
  CHECK(order == std::vector<uint32_t>{100, 200, 300});
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

TEST_CASE("polling scheduler: a receive timeout set anew for every message wakes the clock's "
          "thread at most once per batch, and fires after the last message") {
  polling_config cfg{2};
  caf::actor_system sys{cfg};
  constexpr uint32_t messages = 20000;
  // Each message is its own request, so the actor's `after` timeout is set anew after each.
  auto timed_out = std::make_shared<std::promise<void>>();
  auto counter = sys.spawn([timed_out](caf::event_based_actor*) -> caf::behavior {
    auto seen = std::make_shared<uint32_t>(0);
    return {[seen](uint32_t i) {
              ++*seen;
              return i;
            },
            caf::after(300ms) >> [seen, timed_out] {
              if (*seen == messages) // a pause longer than 300 ms before that is no failure
                timed_out->set_value();
            }};
  });
  auto before = cafshm::polling_scheduler::counts_of(sys).clock_wakeups;
  {
    caf::scoped_actor self{sys};
    for (uint32_t i = 0; i < messages; ++i) {
      bool answered = false;
      self->request(counter, caf::infinite, i).receive([&](uint32_t) { answered = true; },
                                                       [](caf::error&) {});
      REQUIRE(answered);
    }
  }
  REQUIRE(timed_out->get_future().wait_for(deadline) == std::future_status::ready);
  auto woken = cafshm::polling_scheduler::counts_of(sys).clock_wakeups - before;
  MESSAGE(messages << " receive timeouts set, the clock's thread woken " << woken
                   << " times (at most one per " << coalescing_clock::batch_limit << ")");
  // One for the first timeout, one per full batch, one after each pause long enough for the
  // timeout to fire in between (rare); CAF's own clock is woken for every one of them.
  CHECK(woken <= messages / coalescing_clock::batch_limit + 8);
  caf::anon_send_exit(counter, caf::exit_reason::user_shutdown);
}

TEST_CASE("polling scheduler: each inbox has one reader at a time, with several workers") {
  auto engine = unique_name("cafshm-test-poll");
  inbox_guard guard{engine, {1, 2}};
  polling_config cfg{3};
  caf::actor_system sys{cfg};
  auto first = inbox::create(engine, 1);
  auto second = inbox::create(engine, 2);
  REQUIRE_OK(first);
  REQUIRE_OK(second);
  caf::scoped_actor self_a{sys};
  caf::scoped_actor self_b{sys};
  auto target_a = frame_reporter(sys, self_a);
  auto target_b = frame_reporter(sys, self_b);
  constexpr uint32_t count = 3000;
  {
    inbox_receiver a{sys, *first, target_a};
    inbox_receiver b{sys, *second, target_b};
    child_process sender_a{{peer_bin(), "--mode", "caf-send", "--inbox", first->name(), "--slot",
                            "3", "--count", std::to_string(count)}};
    child_process sender_b{{peer_bin(), "--mode", "caf-send", "--inbox", second->name(),
                            "--slot", "4", "--count", std::to_string(count)}};
    // A record read twice, or skipped, by two workers at once breaks the order or the count.
    auto read_b = std::async(std::launch::async, [&] { expect_in_order(self_b, count, "b"); });
    expect_in_order(self_a, count, "a");
    read_b.get();
    CHECK(a.delivered() == count);
    CHECK(b.delivered() == count);
    CHECK(a.delivered_by_thread() + b.delivered_by_thread() == 0);
  }
  caf::anon_send_exit(target_a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(target_b, caf::exit_reason::user_shutdown);
}

TEST_CASE("polling scheduler: an idle process uses no measurable CPU once its workers park") {
  auto engine = unique_name("cafshm-test-poll");
  inbox_guard guard{engine, {1}};
  polling_config cfg{2};
  caf::actor_system sys{cfg};
  idle_strategy idle; // park at once, wake every 20 ms on the timeout
  idle.park_timeout = 20ms;
  poll_registry::instance().set_idle(sys, idle);
  auto in = inbox::create(engine, 1);
  REQUIRE_OK(in);
  caf::scoped_actor self{sys};
  auto target = frame_reporter(sys, self);
  {
    inbox_receiver receiver{sys, *in, target};
    auto parks = [&] { return polling_scheduler::counts_of(sys).parks; };
    // Both workers asleep at once: the actors' start-up is done (under UBSan a worker may spend
    // a few hundred ms of CPU symbolising a suppressed report in CAF's spawn first).
    REQUIRE(wait_until([&] { return polling_scheduler::counts_of(sys).parked == 2; }, deadline));
    REQUIRE(wait_until([&] { return parks() >= 2; }, deadline));
    // Windows of 20 more parks: each park ends by its 20 ms timeout (nothing else happens), so
    // a window holds about 200 ms of each worker's idle time, and a worker that spun would burn
    // most of it in every window. One window in three must be quiet: a one-time cost (under
    // UBSan, symbolising a suppressed report takes a worker 100-200 ms) lands in one window only.
    std::ostringstream used_by;
    auto quietest = std::chrono::nanoseconds::max();
    for (int window = 0; window < 3 && quietest >= 20ms; ++window) {
      auto cpu_before = cpu_time_by_thread_name();
      auto parks_before = parks();
      auto start = std::chrono::steady_clock::now();
      REQUIRE(wait_until([&] { return parks() >= parks_before + 20; }, deadline));
      auto wall = std::chrono::steady_clock::now() - start;
      auto cpu_after = cpu_time_by_thread_name();
      // The workers' CPU time only: the other threads (this one, which polls the count, CAF's
      // clock) do not park.
      std::chrono::nanoseconds workers{0};
      used_by << "\n  20 parks in " << wall.count() / 1000 << " us:";
      for (auto& [name, t] : cpu_after) {
        auto used = t - cpu_before[name];
        used_by << ' ' << name << ' ' << used.count() / 1000 << " us;";
        if (name == "caf.multiplexer")
          workers += used;
      }
      quietest = std::min(quietest, workers);
    }
    MESSAGE("CPU time while the workers park:" << used_by.str());
    CHECK(quietest < 20ms);
    CHECK(receiver.delivered() == 0);
  }
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_CASE("polling scheduler: the actor system shuts down promptly with parked workers") {
  auto engine = unique_name("cafshm-test-poll");
  inbox_guard guard{engine, {1}};
  // CAF 0.17 wants an actor system destroyed on the thread that made it (that thread keeps a
  // reference to its logger): one thread makes it, and destroys it when told to.
  std::promise<std::string> parked;
  std::promise<void> go;
  auto life = std::async(std::launch::async, [&, go_signal = go.get_future()]() mutable {
    polling_config cfg{4};
    caf::actor_system sys{cfg};
    park_for_an_hour(sys);
    auto in = inbox::create(engine, 1);
    if (!in) {
      parked.set_value("cannot create the inbox: " + describe(in.error()));
      return;
    }
    {
      auto sink = sys.spawn([]() -> caf::behavior {
        return {[](frame_atom, uint32_t, block_ref) {}};
      });
      inbox_receiver receiver{sys, *in, sink};
      child_process sender{{peer_bin(), "--mode", "caf-send", "--inbox", in->name(), "--slot",
                            "3", "--count", "50"}};
      if (!wait_until([&] { return receiver.delivered() == 50; }, deadline)) {
        parked.set_value("the records did not arrive");
        return;
      }
      caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
    } // the receiver leaves the registry, waking the workers that sleep on its inbox's word
    // All four workers asleep (each announced on the scheduler's eventcount), with a timeout
    // that would not end their sleep within the test's deadline.
    if (!wait_until([&] { return polling_scheduler::counts_of(sys).parked == 4; }, deadline)) {
      parked.set_value("the workers did not park");
      return;
    }
    parked.set_value("");
    go_signal.wait();
  }); // ~actor_system: only the shutdown's wake-ups can end the workers' sleep
  auto ready = parked.get_future();
  REQUIRE(ready.wait_for(deadline) == std::future_status::ready);
  auto problem = ready.get();
  REQUIRE_MESSAGE(problem.empty(), problem);
  go.set_value();
  if (life.wait_for(deadline) != std::future_status::ready) {
    // A hung shutdown cannot be joined: report it and end the test process.
    FAIL_CHECK("the actor system did not shut down within the deadline");
    std::_Exit(1);
  }
  life.get();
}
