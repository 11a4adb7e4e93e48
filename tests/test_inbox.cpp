// The shared-memory inbox of the local fast path (plugin/src/fastpath): records in and out, a full
// inbox (back-pressure, inbox_full), concurrent sender processes (per-sender order), the wake-up
// protocol (no lost wake-up over thousands of parked rounds), senders killed half-way through a
// record, a stalled sender the reader gave up on, garbage in the segment, and the lifecycle.
// Multi-process cases run tests/helpers/cafshm-inbox-peer.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <csignal>

#include <sys/wait.h>
#include <unistd.h>

#include "fastpath/actor_record.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_writer.hpp"
#include "testing/child_process.hpp"
#include "test_names.hpp"

using namespace cafshm;
using namespace cafshm::fastpath;
using namespace std::chrono_literals;
using cafshm::test::child_process;
using cafshm_test::unique_name;
using cafshm_test::wait_until;

namespace {

std::string peer_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-inbox-peer";
}

/// Removes the inbox objects of `slots` of engine `name` at scope exit (declare it first).
struct inbox_guard {
  std::string engine;
  std::vector<uint32_t> slots;
  ~inbox_guard() {
    for (auto s : slots)
      inbox::remove(engine, s);
  }
};

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text_of(const inbox_record& r) {
  return {reinterpret_cast<const char*>(r.payload.data()), r.payload.size()};
}

/// "<slot> <i>..." as the helper's send mode writes it.
std::pair<unsigned, unsigned long> parse_numbered(const std::string& text) {
  unsigned slot = 0;
  unsigned long i = 0;
  std::sscanf(text.c_str(), "%u %lu", &slot, &i);
  return {slot, i};
}

inbox_options small_inbox(uint64_t capacity = 4096) {
  inbox_options o;
  o.capacity = capacity;
  return o;
}

/// Receives until `done` holds, waiting (parked) at most `timeout` for each record.
template <class Handler, class Done>
bool receive_until(inbox& in, Handler&& handler, Done done,
                   std::chrono::milliseconds timeout = 20s) {
  while (!done())
    if (in.reader().receive(handler, idle_strategy::park(), timeout) == 0)
      return done();
  return true;
}

} // namespace

TEST_CASE("records come out with their sender, sequence and bytes, also across the ring's end") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  auto w = inbox_writer::open(in->name(), 7);
  REQUIRE_OK(w);
  CHECK(w->capacity() == 4096);
  std::mt19937 rng{42};
  // Sizes 0..300 bytes: the ring of 4 KiB wraps many times, with padding records of all sizes.
  for (uint32_t i = 0; i < 2000; ++i) {
    std::string payload(rng() % 301, '\0');
    for (auto& c : payload)
      c = static_cast<char>(rng());
    REQUIRE_OK(w->send(bytes_of(payload)));
    size_t got = in->reader().poll([&](const inbox_record& r) {
      CHECK(r.sender == 7);
      CHECK(r.sequence == i);
      CHECK(text_of(r) == payload);
    });
    REQUIRE(got == 1);
  }
  CHECK(in->reader().delivered() == 2000);
  CHECK(in->reader().abandoned() == 0);
  CHECK(in->reader().rejected() == 0);
  CHECK(in->control().delivered.load() == 2000);
}

TEST_CASE("bad sizes and objects are refused with their own codes") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1, 2}};
  CHECK_ERRC(inbox::create(engine, 1, small_inbox(5000)), errc::invalid_argument);
  CHECK_ERRC(inbox::create(engine, 1, small_inbox(1024)), errc::invalid_argument);
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  auto w = inbox_writer::open(in->name(), 2);
  REQUIRE_OK(w);
  std::string too_big(w->max_payload() + 1, 'x');
  CHECK_ERRC(w->send(bytes_of(too_big)), errc::request_too_large);
  std::string largest(w->max_payload(), 'y');
  CHECK_OK(w->send(bytes_of(largest)));
  CHECK_ERRC(inbox_writer::open(inbox::segment_name(engine, 2), 2), errc::segment_error);
  // An object that is not an inbox (no magic).
  auto other = shm_segment::create(inbox::segment_name(engine, 2), 8192, 0600);
  REQUIRE_OK(other);
  other->remove_on_destroy(true);
  CHECK_ERRC(inbox_writer::open(other->name(), 2), errc::segment_error);
}

TEST_CASE("a full inbox refuses with inbox_full, loses nothing, and takes records again once read") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  auto w = inbox_writer::open(in->name(), 3);
  REQUIRE_OK(w);
  std::string payload(100, 'p');
  uint32_t accepted = 0;
  for (;;) {
    auto sent = w->send(bytes_of(payload));
    if (!sent) {
      CHECK(code_of(sent.error()) == errc::inbox_full);
      break;
    }
    ++accepted;
    REQUIRE(accepted < 1000);
  }
  CHECK(accepted * record_bytes(100) <= 4096);
  CHECK((accepted + 1) * record_bytes(100) > 4096 - record_bytes(100));
  // Waiting does not help while nobody reads.
  CHECK_ERRC(w->send(bytes_of(payload), 20ms), errc::inbox_full);
  // One record read: room for one more.
  CHECK(in->reader().poll([](const inbox_record&) {}, 1) == 1);
  CHECK_OK(w->send(bytes_of(payload)));
  uint32_t expected = 1;
  auto n = in->reader().poll([&](const inbox_record& r) { CHECK(r.sequence == expected++); });
  CHECK(n == accepted);
  CHECK(expected == accepted + 1);
}

TEST_CASE("a sender blocked on a full inbox is woken when the reader frees space") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  constexpr unsigned long count = 3000;
  child_process sender{{peer_bin(), "--mode", "send", "--inbox", in->name(), "--slot", "5",
                        "--count", std::to_string(count), "--size", "200", "--wait-ms", "30000"}};
  // The sender fills the inbox and parks waiting for space.
  REQUIRE(wait_until([&] { return in->control().writers_waiting.load() > 0; }, 20s));
  CHECK(sender.running());
  unsigned long next = 0;
  bool in_order = true;
  auto handler = [&](const inbox_record& r) {
    auto [slot, i] = parse_numbered(text_of(r));
    in_order = in_order && slot == 5 && i == next && r.payload.size() == 200;
    ++next;
  };
  REQUIRE(receive_until(*in, handler, [&] { return next == count; }));
  CHECK(in_order);
  CHECK(sender.wait_for_line("sent ", 20s) == std::to_string(count));
  CHECK(in->reader().abandoned() == 0);
}

TEST_CASE("records of concurrent sender processes arrive complete and in each sender's order") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto in = inbox::create(engine, 1, small_inbox(8192));
  REQUIRE_OK(in);
  constexpr unsigned senders = 4;
  constexpr unsigned long count = 3000;
  std::vector<std::unique_ptr<child_process>> procs;
  for (unsigned s = 0; s < senders; ++s)
    procs.push_back(std::make_unique<child_process>(std::vector<std::string>{
      peer_bin(), "--mode", "send", "--inbox", in->name(), "--slot", std::to_string(10 + s),
      "--count", std::to_string(count), "--size", std::to_string(8 + 40 * s), "--wait-ms",
      "30000"}));
  std::map<unsigned, unsigned long> next;
  unsigned long total = 0;
  bool in_order = true;
  auto handler = [&](const inbox_record& r) {
    auto [slot, i] = parse_numbered(text_of(r));
    in_order = in_order && slot == r.sender && i == next[slot] && r.sequence == i;
    next[slot] = i + 1;
    ++total;
  };
  REQUIRE(receive_until(*in, handler, [&] { return total == senders * count; }));
  CHECK(in_order);
  for (unsigned s = 0; s < senders; ++s) {
    CHECK(next[10 + s] == count);
    CHECK(procs[s]->wait_for_line("sent ", 20s) == std::to_string(count));
  }
  CHECK(in->reader().abandoned() == 0);
  CHECK(in->reader().rejected() == 0);
}

TEST_CASE("no wake-up is lost: parked ping-pong with random delays and no futex timeout") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1, 2}};
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  constexpr unsigned rounds = 4000;
  // Both sides park with a futex timeout of an hour: a lost wake-up would stall a round until
  // the test's deadline, never just slow it down.
  child_process echo{{peer_bin(), "--mode", "echo", "--engine", engine, "--slot", "2", "--peer",
                      in->name(), "--rounds", std::to_string(rounds), "--jitter-us", "40",
                      "--park-ms", "3600000"}};
  REQUIRE(echo.wait_for_line("ready", 20s));
  auto out = inbox_writer::open(inbox::segment_name(engine, 2), 1);
  REQUIRE_OK(out);
  idle_strategy idle;
  idle.park_timeout = std::chrono::hours{1};
  std::mt19937 rng{7};
  unsigned completed = 0;
  for (unsigned i = 0; i < rounds; ++i) {
    auto text = std::to_string(i);
    REQUIRE_OK(out->send(bytes_of(text), 10s));
    // A random pause between publishing and parking, busy or asleep.
    auto us = rng() % 40;
    if (rng() & 1)
      std::this_thread::sleep_for(std::chrono::microseconds{us});
    bool match = false;
    auto n = in->reader().receive([&](const inbox_record& r) { match = text_of(r) == text; },
                                  idle, 20s, 1);
    REQUIRE_MESSAGE(n == 1, "round " << i << " got no reply within 20 s (a lost wake-up)");
    REQUIRE(match);
    ++completed;
  }
  CHECK(completed == rounds);
  CHECK(echo.wait_for_line("echoed ", 20s) == std::to_string(rounds));
}

TEST_CASE("a sender killed after marking its claim: the reader skips the record once the pid is gone") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto options = small_inbox();
  options.reader.abandon_after = std::chrono::hours{1}; // only the dead pid may end the wait
  auto in = inbox::create(engine, 1, options);
  REQUIRE_OK(in);
  child_process doomed{{peer_bin(), "--mode", "send", "--inbox", in->name(), "--slot", "4",
                        "--count", "3", "--stop", "after_mark"}};
  REQUIRE(doomed.wait_for_line("stopped", 20s));
  std::vector<std::string> got;
  auto handler = [&](const inbox_record& r) { got.push_back(text_of(r)); };
  // The three committed records come out; the claim behind them holds the reader.
  REQUIRE(receive_until(*in, handler, [&] { return got.size() == 3; }));
  CHECK(in->reader().poll(handler) == 0);
  doomed.kill(SIGKILL);
  REQUIRE(doomed.wait(10s));
  child_process later{{peer_bin(), "--mode", "send", "--inbox", in->name(), "--slot", "6",
                       "--count", "5"}};
  REQUIRE(receive_until(*in, handler, [&] { return got.size() == 8; }));
  CHECK(got[2] == "4 2");
  CHECK(got[3] == "6 0");
  CHECK(got[7] == "6 4");
  CHECK(in->reader().abandoned() == 1);
}

TEST_CASE("a sender killed between claim and mark: the reader skips it after the bound") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto options = small_inbox();
  options.reader.abandon_after = 500ms; // the claim names no pid: only the bound ends the wait
  auto in = inbox::create(engine, 1, options);
  REQUIRE_OK(in);
  child_process doomed{{peer_bin(), "--mode", "send", "--inbox", in->name(), "--slot", "4",
                        "--count", "2", "--size", "50", "--stop", "after_claim"}};
  REQUIRE(doomed.wait_for_line("stopped", 20s));
  doomed.kill(SIGKILL);
  REQUIRE(doomed.wait(10s));
  child_process later{{peer_bin(), "--mode", "send", "--inbox", in->name(), "--slot", "6",
                       "--count", "50", "--size", "50"}};
  std::vector<std::string> got;
  auto handler = [&](const inbox_record& r) { got.push_back(text_of(r).substr(0, 4)); };
  REQUIRE(receive_until(*in, handler, [&] { return got.size() == 52; }));
  CHECK(got[0] == "4 0.");
  CHECK(got[1] == "4 1.");
  CHECK(got[2] == "6 0.");
  CHECK(got[51] == "6 49");
  CHECK(in->reader().abandoned() == 1);
  CHECK(later.wait_for_line("sent ", 20s) == "50");
}

TEST_CASE("a stalled sender whose record the reader gave up on gets record_abandoned") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto options = small_inbox();
  options.reader.abandon_after = 1ms;
  auto in = inbox::create(engine, 1, options);
  REQUIRE_OK(in);
  auto w = inbox_writer::open(in->name(), 9);
  REQUIRE_OK(w);
  std::string payload = "late";
  for (auto point : {inbox_writer::TEST_stop_point::after_claim,
                     inbox_writer::TEST_stop_point::after_mark}) {
    CAPTURE(static_cast<int>(point));
    auto before = in->reader().abandoned();
    // While the writer is stopped, the reader waits out the bound and skips the claim.
    w->TEST_stop_at(point, [&] {
      wait_until([&] {
        in->reader().poll([](const inbox_record&) { FAIL("a record that was never committed"); });
        return in->reader().abandoned() == before + 1;
      });
    });
    CHECK_ERRC(w->send(bytes_of(payload)), errc::record_abandoned);
    CHECK(in->reader().abandoned() == before + 1);
  }
  // The writer and the ring stay usable.
  w->TEST_stop_at(inbox_writer::TEST_stop_point::none, {});
  REQUIRE_OK(w->send(bytes_of(payload)));
  std::string got;
  CHECK(in->reader().poll([&](const inbox_record& r) { got = text_of(r); }) == 1);
  CHECK(got == "late");
}

TEST_CASE("garbage in the segment never makes the reader crash, read out of bounds or stall") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto options = small_inbox();
  options.reader.abandon_after = 0ms; // give up on any claim at once
  auto in = inbox::create(engine, 1, options);
  REQUIRE_OK(in);
  auto seg = shm_segment::open(in->name(), true);
  REQUIRE_OK(seg);
  auto* control = reinterpret_cast<inbox_control*>(seg->data());
  auto* ring = seg->data() + ring_offset;
  auto w = inbox_writer::open(in->name(), 1);
  REQUIRE_OK(w);
  std::mt19937_64 rng{1234};
  for (int round = 0; round < 3000; ++round) {
    // Honest records, then damage: random bytes, forged state words (right tag, wrong sizes),
    // and a random tail.
    for (int i = 0; i < 5; ++i)
      w->send(bytes_of(std::string(rng() % 200, 'h')));
    for (int i = 0, n = static_cast<int>(rng() % 16); i < n; ++i)
      ring[rng() % 4096] = static_cast<std::byte>(rng());
    auto head = in->reader().head();
    auto forged_at = head + (rng() % 64) * 8;
    auto forged = make_state(forged_at, (rng() % 600) * 8, static_cast<record_kind>(rng() % 4));
    std::memcpy(ring + (forged_at & 4095), &forged, 8);
    if ((forged_at & 4095) + 12 <= 4096)
      std::memcpy(ring + (forged_at & 4095) + 8, &round, 4); // a length that may lie
    if (rng() % 4 == 0)
      control->tail.store(rng() % 8 ? head + rng() % 8192 : rng());
    for (int polls = 0; polls < 4; ++polls) {
      auto before = in->reader().head();
      in->reader().poll([&](const inbox_record& r) {
        CHECK(r.payload.size() <= max_payload(4096));
      });
      CHECK(in->reader().head() - before < 2 * 4096); // at most one ring per poll, plus one step
      CHECK(in->reader().head() % record_align == 0);
    }
    // Let honest senders continue from wherever the reader is.
    control->tail.store(in->reader().head());
  }
  CHECK(in->reader().rejected() + in->reader().abandoned() > 0);
  // Still an inbox once the damage is gone: an honest record goes through.
  std::memset(ring, 0, 4096);
  REQUIRE_OK(w->send(bytes_of(std::string{"after"})));
  std::string got;
  in->reader().poll([&](const inbox_record& r) { got = text_of(r); });
  CHECK(got == "after");
}

TEST_CASE("the inbox of a killed process stays until the engine removes it, and a new holder replaces it") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1, 3}};
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  auto name3 = inbox::segment_name(engine, 3);
  {
    child_process holder{{peer_bin(), "--mode", "echo", "--engine", engine, "--slot", "3",
                          "--peer", in->name(), "--rounds", "1"}};
    REQUIRE(holder.wait_for_line("ready", 20s));
    CHECK(shm_segment::exists(name3));
    holder.kill(SIGKILL);
    REQUIRE(holder.wait(10s));
  }
  CHECK(shm_segment::exists(name3)); // SIGKILL: nobody removed it
  CHECK(inbox::remove(engine, 3));
  CHECK_FALSE(shm_segment::exists(name3));
  CHECK_FALSE(inbox::remove(engine, 3));
  // A leftover object of the slot is replaced by the next holder's fresh inbox.
  auto leftover = shm_segment::create(name3, 8192, 0600);
  REQUIRE_OK(leftover);
  {
    auto fresh = inbox::create(engine, 3, small_inbox());
    REQUIRE_OK(fresh);
    CHECK_OK(inbox_writer::open(name3, 1));
  } // destroyed: its name goes
  CHECK_FALSE(shm_segment::exists(name3));
  CHECK(shm_segment::exists(in->name()));
}

TEST_CASE("an earlier holder's inbox going away leaves the new holder's inbox of the slot alone") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {5}};
  auto name = inbox::segment_name(engine, 5);
  std::optional<inbox> earlier;
  {
    auto first = inbox::create(engine, 5, small_inbox());
    REQUIRE_OK(first);
    earlier.emplace(std::move(*first));
  }
  auto later = inbox::create(engine, 5, small_inbox()); // replaces the name
  REQUIRE_OK(later);
  earlier.reset();
  REQUIRE(shm_segment::exists(name));
  auto w = inbox_writer::open(name, 2);
  REQUIRE_OK(w);
  REQUIRE_OK(w->send(bytes_of(std::string{"to the new holder"})));
  std::string got;
  CHECK(later->reader().poll([&](const inbox_record& r) { got = text_of(r); }) == 1);
  CHECK(got == "to the new holder");
}

TEST_CASE("the engine removes a process's inbox when it reclaims the process's slot") {
  engine_settings settings;
  settings.name = unique_name("cafshm-test-inbox-mm");
  settings.arena_bytes = 1 << 20;
  cafshm_test::segment_guard engine_guard{settings.name};
  auto mm = memory_manager::create(settings);
  REQUIRE_OK(mm);
  auto reg = (*mm)->register_process("inbox-holder", ::getpid(), 0);
  REQUIRE_OK(reg);
  auto slot = to_slot(reg->session.process); // inboxes are named by the slot number
  inbox_guard guard{settings.name, {slot}};
  auto in = inbox::create(settings.name, slot, small_inbox());
  REQUIRE_OK(in);
  REQUIRE(shm_segment::exists(in->name()));
  REQUIRE_OK((*mm)->unregister(reg->session));
  CHECK_FALSE(shm_segment::exists(in->name()));
}

TEST_CASE("an engine that starts removes the inboxes of its name whose process died, one that stops "
          "removes all") {
  engine_settings settings;
  settings.name = unique_name("cafshm-test-inbox-mm");
  settings.arena_bytes = 1 << 20;
  cafshm_test::segment_guard engine_guard{settings.name};
  inbox_guard guard{settings.name, {2, 3}};
  auto actors4 = actor_inbox_name(settings.name, 4);
  struct remove_at_exit {
    std::string name;
    ~remove_at_exit() { shm_segment::remove(name); }
  } actors_guard{actors4};
  auto live = inbox::create(settings.name, 2, small_inbox());
  REQUIRE_OK(live);
  auto dead3 = inbox::segment_name(settings.name, 3);
  // A process that made a reply inbox and an actor inbox and ended without removing them (as
  // SIGKILL would end it).
  auto leave_inboxes_behind = [&] {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto reply = inbox::create(settings.name, 3, small_inbox());
      auto actors = inbox::create_named(actors4, 4, small_inbox());
      ::_exit(reply && actors ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(shm_segment::exists(dead3));
    REQUIRE(shm_segment::exists(actors4));
  };
  leave_inboxes_behind();
  {
    auto mm = memory_manager::create(settings); // no engine of the name ran since they died
    REQUIRE_OK(mm);
    CHECK_FALSE(shm_segment::exists(dead3));
    CHECK_FALSE(shm_segment::exists(actors4));
    CHECK(shm_segment::exists(live->name()));
    leave_inboxes_behind(); // died while the engine ran; it stops before it reclaims the slots
  }
  CHECK_FALSE(shm_segment::exists(dead3));
  CHECK_FALSE(shm_segment::exists(actors4));
  CHECK_FALSE(shm_segment::exists(live->name())); // its process keeps the mapping
  auto w = inbox_writer::open(live->name(), 1);
  CHECK_FALSE(w);
}

TEST_CASE("interrupt() ends a receive that would wait for an hour, from another thread") {
  auto engine = unique_name("cafshm-test-inbox");
  inbox_guard guard{engine, {1}};
  auto in = inbox::create(engine, 1, small_inbox());
  REQUIRE_OK(in);
  idle_strategy idle;
  idle.park_timeout = std::chrono::hours{1};
  for (int round = 0; round < 50; ++round) {
    auto waiting = std::async(std::launch::async, [&] {
      return in->reader().receive([](const inbox_record&) {}, idle, std::chrono::hours{1});
    });
    if (round % 2 == 0) // sometimes before it parks, sometimes while it is parked
      wait_until([&] { return in->control().reader_waiting.load() > 0; });
    in->reader().interrupt();
    REQUIRE(waiting.wait_for(20s) == std::future_status::ready);
    CHECK(waiting.get() == 0);
  }
}
