// Actor messages between two local processes over their actor inboxes (docs/fastpath.md,
// "Actor messages"): find_actor hands out a cafshm proxy, requests and answers travel as inbox
// records in both directions, each sender's messages keep their order, monitors and links learn
// the end of the remote actor (its exit reason) and of its process (remote_link_unreachable),
// also when the notice of the end first found the actor inbox full, requests in flight through a
// proxy fail at once when it learns of that end, and garbage in an actor inbox is counted and
// dropped. The other process is
// tests/helpers/cafshm-actor-peer, registered with a cafshmd of the test's own.
#include "test_names.hpp"

#include <atomic>
#include <csignal>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/node_id.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/client.hpp"
#include "cafshm/settings.hpp"
#include "fastpath/actor_inbox_reader.hpp"
#include "fastpath/actor_proxy.hpp"
#include "fastpath/actor_record.hpp"
#include "fastpath/actor_transport.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_writer.hpp"
#include "fastpath/pending_requests.hpp"
#include "helpers/actor_peer_protocol.hpp"
#include "support/client_system.hpp"
#include "testing/child_process.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::child_process;
using test::client_system;
using test::scheduler_kind;
using test::daemon_process;

namespace {

// How long a test waits for something that must happen (far beyond its normal time).
constexpr auto deadline = 30s;

// A cafshm-actor-peer process registered with `d`, its actor published as `published`, with an
// actor inbox of `actor_inbox` bytes (0: the default).
struct actor_peer_process {
  actor_peer_process(daemon_process& d, const std::string& published,
                     local_transport transport = local_transport::shm, uint64_t actor_inbox = 0)
    : proc({std::string{CAFSHM_BIN_DIR} + "/cafshm-actor-peer", "--port",
            std::to_string(d.port()), "--name", published, "--publish", published,
            "--transport", transport == local_transport::shm ? "shm" : "basp", "--actor-inbox",
            actor_inbox == 0 ? std::to_string(local_settings{}.actor_inbox_bytes)
                             : std::to_string(actor_inbox)}) {
    while (auto line = proc.read_line(deadline)) {
      if (line->rfind("ready ", 0) == 0) {
        std::istringstream in{line->substr(6)};
        in >> slot >> pid;
        return;
      }
      MESSAGE("cafshm-actor-peer: " << *line);
    }
  }

  bool ready() const { return slot != 0; }

  // The actor transport's counters of the peer ("stats ..." line), by name.
  uint64_t stat(const std::string& key) {
    if (!proc.write_line("stats"))
      return ~0ull;
    auto line = proc.wait_for_line("stats ", deadline);
    if (!line)
      return ~0ull;
    auto at = line->find(key + "=");
    if (at == std::string::npos)
      return ~0ull;
    return std::stoull(line->substr(at + key.size() + 1));
  }

  child_process proc;
  uint32_t slot = 0;
  pid_t pid = 0;
};

bool is_inbox_proxy(const caf::actor& a) {
  return a && dynamic_cast<fastpath::inbox_actor_proxy*>(
                caf::actor_cast<caf::abstract_actor*>(a)) != nullptr;
}

using report = std::tuple<uint64_t, uint64_t, uint64_t>; // messages, through inbox, out of order

report ask_report(caf::actor_system& sys, const caf::actor& peer) {
  report result{~0ull, ~0ull, ~0ull};
  caf::scoped_actor self{sys};
  self->request(peer, deadline, actor_peer::report_atom::value)
    .receive([&](uint64_t m, uint64_t via, uint64_t ooo) { result = {m, via, ooo}; },
             [&](caf::error&) {});
  return result;
}

// What an actor that monitors and links to `target` hears of its end: the down message's and
// the exit message's reasons.
struct watcher_result {
  caf::error down;
  caf::error exit;
};

struct end_watch {
  std::shared_ptr<std::promise<caf::error>> down = std::make_shared<std::promise<caf::error>>();
  std::shared_ptr<std::promise<caf::error>> exit = std::make_shared<std::promise<caf::error>>();
  caf::actor watcher;

  end_watch(caf::actor_system& sys, const caf::actor& target) {
    auto d = down;
    auto e = exit;
    auto ready = std::make_shared<std::promise<void>>();
    auto started = ready->get_future();
    watcher = sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
      auto from = target.address();
      auto downs = std::make_shared<int>(0);
      auto exits = std::make_shared<int>(0);
      self->set_down_handler([d, downs](caf::down_msg& m) {
        if ((*downs)++ == 0)
          d->set_value(m.reason);
      });
      self->set_exit_handler([self, e, from, exits](caf::exit_msg& m) {
        if (m.source != from)
          self->quit(m.reason); // the test is over
        else if ((*exits)++ == 0)
          e->set_value(m.reason);
      });
      self->monitor(target);
      self->link_to(target);
      ready->set_value();
      return {[](actor_peer::report_atom) {}}; // stays until told to exit
    });
    started.wait();
  }

  ~end_watch() {
    caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
  }

  static std::optional<caf::error> get(const std::shared_ptr<std::promise<caf::error>>& p) {
    auto f = p->get_future();
    if (f.wait_for(deadline) != std::future_status::ready)
      return std::nullopt;
    return f.get();
  }
};

// Removes the inboxes that killed processes of a test leave when cafshmd stops before it
// reclaimed them (or the test failed early).
struct actor_inbox_guard {
  std::string engine;
  std::vector<uint32_t> slots;
  ~actor_inbox_guard() {
    for (uint32_t s = 1; s <= 8; ++s) {
      shm_segment::remove(fastpath::actor_inbox_name(engine, s));
      shm_segment::remove(fastpath::inbox::segment_name(engine, s));
    }
  }
};

void request_and_answer(local_transport transport,
                        scheduler_kind sched = scheduler_kind::configured) {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  REQUIRE(d.ready());
  auto published = "served-" + std::to_string(::getpid());
  actor_peer_process peer{d, published, transport};
  REQUIRE(peer.ready());
  actor_inbox_guard guard{d.name(), {peer.slot}};
  client_system cs{transport, sched};
  auto c = client::connect(cs.sys, d.address(), "asker");
  REQUIRE(c);
  auto found = c->find_actor(published);
  REQUIRE_MESSAGE(found, cafshm_test::why(found));
  auto transport_of_c = detail::actors_of(*c);
  if (transport == local_transport::basp) {
    CHECK_FALSE(transport_of_c);
    CHECK_FALSE(is_inbox_proxy(found->actor));
  } else {
    REQUIRE(transport_of_c);
    REQUIRE(is_inbox_proxy(found->actor));
    // Under the polling scheduler its workers read the actor inbox: no thread of its own.
    CHECK(transport_of_c->polled() == (sched == scheduler_kind::polling));
    guard.slots.push_back(to_slot(c->id()));
  }
  // The async find_actor hands out the same kind of handle.
  {
    auto kind = std::make_shared<std::promise<bool>>();
    auto is_proxy = kind->get_future();
    auto* cp = &*c;
    cs.sys.spawn([=](caf::event_based_actor* self) {
      cp->find_actor(self, published)
        .then([=](published_actor&& p) { kind->set_value(is_inbox_proxy(p.actor)); },
              [=](caf::error&) { kind->set_value(false); });
    });
    REQUIRE(is_proxy.wait_for(deadline) == std::future_status::ready);
    CHECK(is_proxy.get() == (transport == local_transport::shm));
  }
  // 1000 requests sent at once by one actor: every answer comes, in the order they were sent.
  constexpr int32_t n = 1000;
  auto answers = std::make_shared<std::promise<std::vector<int32_t>>>();
  auto got = answers->get_future();
  auto target = found->actor;
  cs.sys.spawn([=](caf::event_based_actor* self) {
    auto seen = std::make_shared<std::vector<int32_t>>();
    for (int32_t i = 0; i < n; ++i)
      self->request(target, deadline, actor_peer::ping_atom::value, i)
        .then([=](actor_peer::pong_atom, int32_t j) {
                seen->push_back(j);
                if (seen->size() == static_cast<size_t>(n)) {
                  answers->set_value(*seen);
                  self->quit();
                }
              },
              [=](caf::error&) {
                seen->push_back(-1);
                if (seen->size() == static_cast<size_t>(n)) {
                  answers->set_value(*seen);
                  self->quit();
                }
              });
  });
  REQUIRE(got.wait_for(deadline) == std::future_status::ready);
  auto order = got.get();
  std::vector<int32_t> expected(n);
  for (int32_t i = 0; i < n; ++i)
    expected[i] = i;
  CHECK(order == expected);
  // The peer asks an actor of this process back, whose handle travelled in the message: the
  // request and its answer take the inboxes too.
  auto local = cs.sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](actor_peer::ping_atom, int32_t i) {
      return caf::make_message(actor_peer::pong_atom::value, i * 2);
    }};
  });
  {
    caf::scoped_actor self{cs.sys};
    int32_t back = 0;
    self->request(target, deadline, actor_peer::ask_atom::value, local, int32_t{21})
      .receive([&](actor_peer::pong_atom, int32_t j) { back = j; }, [&](caf::error&) {});
    CHECK(back == 42);
  }
  auto [messages, via_inbox, out_of_order] = ask_report(cs.sys, target);
  CHECK(messages == n); // pings (the ask and the report are not counted)
  CHECK(out_of_order == 0);
  if (transport == local_transport::shm) {
    // Every message reached the peer's actor from an inbox proxy: none took BASP.
    CHECK(via_inbox == messages);
    // Sent here: n pings, the ask, the report (and the peer's ping to `local` came back).
    CHECK(transport_of_c->counters().sent.load() == n + 2 + 1);
    CHECK(transport_of_c->counters().delivered.load() == n + 2 + 1);
    CHECK(peer.stat("delivered") == n + 2 + 1);
    CHECK(peer.stat("malformed") == 0);
  } else {
    CHECK(via_inbox == 0);
    CHECK(peer.stat("sent") == 0);
  }
  caf::anon_send_exit(local, caf::exit_reason::user_shutdown);
}

} // namespace

TEST_CASE("requests and answers between actors of two local processes travel through their "
          "actor inboxes [shm]") {
  request_and_answer(local_transport::shm);
}

TEST_CASE("under the polling scheduler its workers read the actor inbox: requests and answers "
          "between two local processes [shm][polling]") {
  request_and_answer(local_transport::shm, scheduler_kind::polling);
}

TEST_CASE("with local.transport basp actor messages between local processes stay on BASP "
          "[basp]") {
  request_and_answer(local_transport::basp);
}

TEST_CASE("messages of several concurrent senders arrive in each sender's order") {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  REQUIRE(d.ready());
  auto published = "ordered-" + std::to_string(::getpid());
  actor_peer_process peer{d, published};
  REQUIRE(peer.ready());
  actor_inbox_guard guard{d.name(), {peer.slot}};
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "senders");
  REQUIRE(c);
  guard.slots.push_back(to_slot(c->id()));
  auto found = c->find_actor(published);
  REQUIRE(found);
  REQUIRE(is_inbox_proxy(found->actor));
  // 8 actors, 3000 messages each, all at once: more than the 1 MiB actor inbox holds, so
  // senders also wait for space.
  constexpr uint32_t senders = 8;
  constexpr uint32_t per_sender = 3000;
  auto target = found->actor;
  for (uint32_t s = 0; s < senders; ++s)
    cs.sys.spawn([=](caf::event_based_actor* self) {
      for (uint32_t i = 0; i < per_sender; ++i)
        self->send(target, actor_peer::seq_atom::value, s, i);
      self->quit();
    });
  report r;
  CHECK(cafshm_test::wait_until(
    [&] {
      r = ask_report(cs.sys, target);
      return std::get<0>(r) >= senders * per_sender;
    },
    deadline));
  CHECK(std::get<0>(r) == senders * per_sender);
  CHECK(std::get<1>(r) == senders * per_sender);
  CHECK(std::get<2>(r) == 0);
  CHECK(detail::actors_of(*c)->counters().send_failed.load() == 0);
}

TEST_CASE("monitors and links of a proxy learn the remote actor's exit reason and the death of "
          "its process") {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  REQUIRE(d.ready());
  auto base = std::to_string(::getpid());
  actor_peer_process ends_normally{d, "normal-" + base};
  actor_peer_process shuts_down{d, "shutdown-" + base};
  actor_peer_process killed{d, "killed-" + base};
  REQUIRE(ends_normally.ready());
  REQUIRE(shuts_down.ready());
  REQUIRE(killed.ready());
  actor_inbox_guard guard{d.name(), {ends_normally.slot, shuts_down.slot, killed.slot}};
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "watcher");
  REQUIRE(c);
  guard.slots.push_back(to_slot(c->id()));
  auto find = [&](const std::string& name) {
    auto found = c->find_actor(name);
    REQUIRE(found);
    REQUIRE_MESSAGE(is_inbox_proxy(found->actor),
                    caf::to_string(found->actor) << " of process " << to_slot(found->process)
                      << " transport " << (c->transport() == local_transport::shm)
                      << " actor inbox " << (detail::actors_of(*c) != nullptr));
    return found->actor;
  };
  SUBCASE("the remote actor ends normally") {
    auto target = find("normal-" + base);
    end_watch w{cs.sys, target};
    // The peer took the watch record (and the link record) without complaint.
    CHECK(cafshm_test::wait_until([&] { return ends_normally.stat("delivered") == 1; }, deadline));
    CHECK(ends_normally.stat("malformed") == 0);
    CHECK(ends_normally.stat("refused") == 0);
    caf::anon_send(target, actor_peer::quit_atom::value, uint32_t{0});
    auto down = end_watch::get(w.down);
    REQUIRE(down);
    CHECK(*down == caf::exit_reason::normal);
    // The link's exit message (trapped here) says normal too.
    auto exit = end_watch::get(w.exit);
    REQUIRE(exit);
    CHECK(*exit == caf::exit_reason::normal);
  }
  SUBCASE("the remote actor ends with user_shutdown") {
    auto target = find("shutdown-" + base);
    end_watch w{cs.sys, target};
    caf::anon_send(target, actor_peer::quit_atom::value, uint32_t{1});
    auto down = end_watch::get(w.down);
    auto exit = end_watch::get(w.exit);
    REQUIRE(down);
    REQUIRE(exit);
    CHECK(*down == caf::exit_reason::user_shutdown);
    CHECK(*exit == caf::exit_reason::user_shutdown);
  }
  SUBCASE("the remote process is killed") {
    auto target = find("killed-" + base);
    end_watch w{cs.sys, target};
    // The watch record reached the peer before it dies (a ping's answer follows it).
    caf::scoped_actor self{cs.sys};
    bool answered = false;
    self->request(target, deadline, actor_peer::ping_atom::value, int32_t{1})
      .receive([&](actor_peer::pong_atom, int32_t) { answered = true; }, [&](caf::error&) {});
    REQUIRE(answered);
    killed.proc.kill(SIGKILL);
    auto down = end_watch::get(w.down);
    auto exit = end_watch::get(w.exit);
    REQUIRE(down);
    REQUIRE(exit);
    CHECK(*down == caf::exit_reason::remote_link_unreachable);
    CHECK(*exit == caf::exit_reason::remote_link_unreachable);
    CHECK(detail::actors_of(*c)->counters().proxies_killed.load() >= 1);
  }
}

TEST_CASE("forged and garbage records in an actor inbox are counted and dropped") {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  REQUIRE(d.ready());
  auto published = "victim-" + std::to_string(::getpid());
  actor_peer_process peer{d, published};
  REQUIRE(peer.ready());
  actor_inbox_guard guard{d.name(), {peer.slot}};
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "attacker");
  REQUIRE(c);
  guard.slots.push_back(to_slot(c->id()));
  auto w = fastpath::inbox_writer::open(fastpath::actor_inbox_name(d.name(), peer.slot), 77);
  REQUIRE(w);
  auto send = [&](const std::vector<char>& bytes) {
    REQUIRE(w->send({reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, 5s));
  };
  auto header = [](fastpath::actor_record_kind kind, uint64_t word, uint64_t actor) {
    std::vector<char> buf(fastpath::actor_record_header_bytes);
    fastpath::write_header(reinterpret_cast<std::byte*>(buf.data()), {kind, word, actor});
    return buf;
  };
  uint64_t malformed = 0;
  // Shorter than a header; an unknown kind; a message whose body is no message; a notice of a
  // reclaimed process that is not from the engine's slot.
  send(std::vector<char>(10, 'x'));
  ++malformed;
  auto unknown_kind = header(fastpath::actor_record_kind::message, 0, 1);
  unknown_kind[0] = 9;
  send(unknown_kind);
  ++malformed;
  auto junk = header(fastpath::actor_record_kind::message, 0, 1);
  junk.insert(junk.end(), 40, '\x7f');
  send(junk);
  ++malformed;
  send(header(fastpath::actor_record_kind::process_gone, 1, 0));
  ++malformed;
  // A byte sequence that claims 4 GiB inside a message.
  {
    auto buf = header(fastpath::actor_record_kind::message, 0, 1);
    caf::binary_serializer sink{cs.sys, buf};
    caf::strong_actor_ptr nobody;
    std::vector<caf::strong_actor_ptr> stages;
    auto msg = caf::make_message(std::vector<char>{'a', 'b'});
    REQUIRE_FALSE(sink(nobody, stages, msg));
    // the vector's length prefix is the last varint before its 2 bytes: make it huge
    buf.resize(buf.size() - 3);
    for (int i = 0; i < 4; ++i)
      buf.push_back(static_cast<char>(0xff));
    buf.push_back(0x0f);
    buf.push_back('a');
    send(buf);
    ++malformed;
  }
  // 500 records of random bytes behind a message header.
  std::mt19937 rng{12345};
  for (int i = 0; i < 500; ++i) {
    auto buf = header(fastpath::actor_record_kind::message, rng(), rng());
    auto len = rng() % 200;
    for (size_t j = 0; j < len; ++j)
      buf.push_back(static_cast<char>(rng()));
    send(buf);
    ++malformed;
  }
  // A well-formed anonymous message for an actor id the peer does not know.
  {
    auto buf = header(fastpath::actor_record_kind::message, 0, 999999);
    caf::binary_serializer sink{cs.sys, buf};
    caf::strong_actor_ptr nobody;
    std::vector<caf::strong_actor_ptr> stages;
    auto msg = caf::make_message(actor_peer::ping_atom::value, int32_t{1});
    REQUIRE_FALSE(sink(nobody, stages, msg));
    send(buf);
  }
  // The peer still answers, and its counters say what happened to each record.
  auto found = c->find_actor(published);
  REQUIRE(found);
  REQUIRE(is_inbox_proxy(found->actor));
  caf::scoped_actor self{cs.sys};
  int32_t answer = 0;
  self->request(found->actor, deadline, actor_peer::ping_atom::value, int32_t{7})
    .receive([&](actor_peer::pong_atom, int32_t j) { answer = j; }, [&](caf::error&) {});
  CHECK(answer == 7);
  auto counted = peer.stat("malformed");
  // Random bytes after a message header may by chance decode into something: then it was an
  // unknown receiver or a refused handle, and counted there.
  CHECK(counted + peer.stat("unknown") + peer.stat("refused") == malformed + 1);
  CHECK(counted >= malformed - 10);
  CHECK(peer.stat("unknown") >= 1);
  CHECK(peer.stat("delivered") == 1);
}

TEST_CASE("records naming handles of nodes without a route leave nothing in the proxy registry") {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  REQUIRE(d.ready());
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "target");
  REQUIRE(c);
  REQUIRE(c->transport() == local_transport::shm);
  auto transport = detail::actors_of(*c);
  REQUIRE(transport);
  // Sender slot 77 has no actor inbox: a node first named by its records gets no route.
  auto w = fastpath::inbox_writer::open(fastpath::actor_inbox_name(d.name(), to_slot(c->id())),
                                        77);
  REQUIRE(w);
  std::mt19937 rng{4711};
  std::vector<caf::node_id> forged;
  constexpr int n = 200;
  for (int i = 0; i < n; ++i) {
    caf::node_id::default_data::host_id_type host;
    for (auto& b : host)
      b = static_cast<uint8_t>(rng());
    forged.push_back(caf::make_node_id(static_cast<uint32_t>(rng()), host));
    std::vector<char> buf(fastpath::actor_record_header_bytes);
    fastpath::write_header(reinterpret_cast<std::byte*>(buf.data()),
                           {fastpath::actor_record_kind::message, 0, 1});
    caf::binary_serializer sink{cs.sys, buf};
    // the sender as CAF writes a strong_actor_ptr: its actor id, then its node id
    std::vector<caf::strong_actor_ptr> stages;
    auto msg = caf::make_message(int32_t{i});
    REQUIRE_FALSE(sink(caf::actor_id{5}, forged.back(), stages, msg));
    REQUIRE(w->send({reinterpret_cast<const std::byte*>(buf.data()), buf.size()}, 5s));
  }
  REQUIRE(cafshm_test::wait_until(
    [&] { return transport->counters().refused.load() == uint64_t{n}; }, deadline));
  size_t entries = 0;
  for (auto& node : forged)
    entries += transport->proxies().count_proxies(node);
  CHECK(entries == 0);
  CHECK(transport->counters().delivered.load() == 0);
}

TEST_CASE("a process whose actor inbox is full when another process dies still learns of its "
          "end: the engine writes the notice once there is space") {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  REQUIRE(d.ready());
  auto base = std::to_string(::getpid());
  actor_peer_process victim{d, "victim-" + base};
  actor_peer_process receiver{d, "receiver-" + base, local_transport::shm, 4096};
  REQUIRE(victim.ready());
  REQUIRE(receiver.ready());
  actor_inbox_guard guard{d.name(), {victim.slot, receiver.slot}};
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(c);
  guard.slots.push_back(to_slot(c->id()));
  // The receiver monitors the victim's actor through a proxy of its actor inbox.
  REQUIRE(receiver.proc.write_line("watch victim-" + base));
  auto watching = receiver.proc.wait_for_line("watching ", deadline);
  REQUIRE(watching);
  REQUIRE(*watching == "proxy=1");
  auto before = c->stats();
  REQUIRE_MESSAGE(before, cafshm_test::why(before));
  {
    // The receiver stops reading; its actor inbox is filled up to the last byte.
    test::paused_process paused{receiver.proc};
    REQUIRE(paused);
    auto w = fastpath::inbox_writer::open(fastpath::actor_inbox_name(d.name(), receiver.slot),
                                          to_slot(c->id()));
    REQUIRE(w);
    std::vector<std::byte> junk(fastpath::actor_record_header_bytes, std::byte{0x7f});
    size_t written = 0;
    while (w->send(junk) && written < 100000)
      ++written;
    REQUIRE(written > 0);
    REQUIRE(written < 100000);
    // The victim dies; the engine reclaims it and keeps the notice it could not write.
    victim.proc.kill(SIGKILL);
    CHECK(cafshm_test::wait_until(
      [&] {
        auto st = c->stats();
        return st && st->gone_notices_pending >= 1;
      },
      deadline));
    auto during = c->stats();
    REQUIRE(during);
    CHECK(during->processes == before->processes - 1);
    CHECK(during->gone_notices_late == before->gone_notices_late);
  } // the receiver reads again
  std::string downs;
  CHECK(cafshm_test::wait_until(
    [&] {
      if (!receiver.proc.write_line("downs"))
        return false;
      auto line = receiver.proc.wait_for_line("downs ", deadline);
      downs = line.value_or("");
      return downs.rfind("1 ", 0) == 0;
    },
    deadline));
  CHECK_MESSAGE(downs.find("remote_link_unreachable") != std::string::npos, downs);
  auto after = c->stats();
  REQUIRE(after);
  CHECK(after->gone_notices_pending == 0);
  CHECK(after->gone_notices_late >= before->gone_notices_late + 1);
  CHECK(after->gone_notices_dropped == before->gone_notices_dropped);
  CHECK(receiver.stat("killed") == 1);
}

namespace {

// Sends (hold_atom) to `target` from a new actor with a 10-minute timeout: the future gets the
// error the request ends with (or none if it was answered).
std::future<caf::error> hold_request(caf::actor_system& sys, const caf::actor& target) {
  auto result = std::make_shared<std::promise<caf::error>>();
  auto f = result->get_future();
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(target, std::chrono::minutes{10}, actor_peer::hold_atom::value)
      .then([=](caf::message&) { result->set_value(caf::error{}); },
            [=](caf::error& e) { result->set_value(std::move(e)); });
  });
  return f;
}

// A peer process that publishes its actor as "<prefix>-<this pid>", and a client of the same
// engine here that found it through find_actor: an inbox proxy.
struct found_peer {
  daemon_process d{test::unique_name("cafshm-test-actormsg")};
  std::string published;
  actor_peer_process peer;
  actor_inbox_guard guard;
  client_system cs;
  std::optional<client> c;
  caf::actor actor; // the peer's, through the client's inbox proxy
  std::shared_ptr<fastpath::actor_transport> transport;

  explicit found_peer(const std::string& prefix)
    : published(prefix + "-" + std::to_string(::getpid())), peer(d, published),
      guard{d.name(), {peer.slot}} {
    REQUIRE(d.ready());
    REQUIRE(peer.ready());
    auto connected = client::connect(cs.sys, d.address(), "requester");
    REQUIRE(connected);
    c.emplace(std::move(*connected));
    guard.slots.push_back(to_slot(c->id()));
    auto found = c->find_actor(published);
    REQUIRE(found);
    REQUIRE(is_inbox_proxy(found->actor));
    actor = found->actor;
    transport = detail::actors_of(*c);
    REQUIRE(transport);
  }
};

} // namespace

TEST_CASE("a request in flight through an inbox proxy fails with request_receiver_down as soon "
          "as the proxy learns that the actor or its process is gone") {
  found_peer f{"holder"};
  auto delivered = f.peer.stat("delivered");
  auto held = hold_request(f.cs.sys, f.actor);
  // The held request reached the peer's actor (ahead of anything sent later) and is kept here.
  // (A ping from another actor would prove nothing: two senders' messages are not ordered.)
  REQUIRE(cafshm_test::wait_until([&] { return f.peer.stat("delivered") == delivered + 1; },
                                  deadline));
  CHECK(f.transport->pending().size() == 1);
  SUBCASE("its process is killed") {
    f.peer.proc.kill(SIGKILL);
  }
  SUBCASE("the actor ends without answering") {
    caf::anon_send(f.actor, actor_peer::quit_atom::value, uint32_t{0});
  }
  REQUIRE(held.wait_for(deadline) == std::future_status::ready);
  auto e = held.get();
  CHECK_MESSAGE(e == caf::sec::request_receiver_down, caf::to_string(e));
  CHECK(f.transport->counters().requests_failed.load() == 1);
  CHECK(f.transport->pending().size() == 0);
}

TEST_CASE("a request the remote actor hands back to an actor of the requesting process is "
          "answered once, and nothing stays kept for it") {
  found_peer f{"relay"};
  // The actor of this process that the peer's actor delegates to: it answers the requester
  // here, not through this process's actor inbox.
  auto local = f.cs.sys.spawn([]() -> caf::behavior {
    return {[](actor_peer::ping_atom, int32_t i) {
      return caf::make_message(actor_peer::pong_atom::value, i);
    }};
  });
  auto answers = std::make_shared<std::atomic<int>>(0);
  auto errors = std::make_shared<std::atomic<int>>(0);
  auto done = std::make_shared<std::promise<int32_t>>();
  auto got = done->get_future();
  auto requester = f.cs.sys.spawn([=, target = f.actor](caf::event_based_actor* self) {
    self->request(target, std::chrono::minutes{10}, actor_peer::relay_atom::value, local,
                  int32_t{7})
      .then(
        [=](actor_peer::pong_atom, int32_t i) {
          if (answers->fetch_add(1) == 0)
            done->set_value(i);
        },
        [=](caf::error&) { errors->fetch_add(1); });
    // Stays to receive whatever else comes for the request.
    return caf::behavior{[](actor_peer::report_atom) {}};
  });
  REQUIRE(got.wait_for(deadline) == std::future_status::ready);
  CHECK(got.get() == 7);
  // The request came back through this process's actor inbox, delegated: nothing waits for an
  // answer through the inbox any more.
  CHECK(f.transport->pending().size() == 0);
  // The peer's process dies: its proxy is killed, with no request of it left to fail.
  auto down = std::make_shared<std::promise<void>>();
  auto gone = down->get_future();
  auto watcher = f.cs.sys.spawn([=, target = f.actor](caf::event_based_actor* self) {
    self->set_down_handler([=](caf::down_msg&) { down->set_value(); });
    self->monitor(target);
    return caf::behavior{[](actor_peer::report_atom) {}};
  });
  f.peer.proc.kill(SIGKILL);
  REQUIRE(gone.wait_for(deadline) == std::future_status::ready);
  CHECK(f.transport->counters().requests_failed.load() == 0);
  CHECK(answers->load() == 1);
  CHECK(errors->load() == 0);
  for (auto& a : {local, requester, watcher})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("an answer that comes after its request was failed is dropped, not delivered twice, "
          "and requests of a requester that is gone are forgotten") {
  client_system cs;
  fastpath::pending_requests table;
  int via = 0; // a proxy's identity
  // Requests of a blocking actor to an actor that never answers: their ids are real ones.
  auto silent = cs.sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {[self](actor_peer::hold_atom) { return self->make_response_promise(); }};
  });
  caf::scoped_actor self{cs.sys};
  auto requester = caf::actor_cast<caf::strong_actor_ptr>(self);
  auto request_of = [](caf::message_id response) {
    return caf::message_id{response.integer_value() & ~caf::message_id::response_flag_mask};
  };
  // An answer through the inbox finds its request: expected, and then it is gone.
  auto first = self->request(silent, deadline, actor_peer::hold_atom::value);
  table.add(requester, request_of(first.id()), &via);
  CHECK(table.size() == 1);
  CHECK(table.answered(self->id(), first.id()) == fastpath::pending_requests::answer::expected);
  CHECK(table.size() == 0);
  // Failed by the kill of its proxy: the requester gets the error, the late answer is dropped
  // once, and then it is an answer this table knows nothing of.
  auto second = self->request(silent, deadline, actor_peer::hold_atom::value);
  table.add(requester, request_of(second.id()), &via);
  CHECK(table.fail_all(&via, caf::make_error(caf::sec::request_receiver_down)) == 1);
  caf::error got;
  second.receive([](caf::message&) {}, [&](caf::error& e) { got = std::move(e); });
  CHECK(got == caf::sec::request_receiver_down);
  CHECK(table.answered(self->id(), second.id()) == fastpath::pending_requests::answer::late);
  CHECK(table.answered(self->id(), second.id()) == fastpath::pending_requests::answer::unknown);
  // A request failed by a kill while its record was being written is not answered again.
  auto third = self->request(silent, deadline, actor_peer::hold_atom::value);
  table.add(requester, request_of(third.id()), &via);
  CHECK(table.fail_all(&via, caf::make_error(caf::sec::request_receiver_down)) == 1);
  CHECK_FALSE(table.remove(self->id(), request_of(third.id())));
  // Requests of a requester that is gone (never answered: its actor kept them) leave the
  // table at the sweep of a later add.
  {
    caf::weak_actor_ptr gone_weak;
    {
      auto brief = cs.sys.spawn([](caf::event_based_actor*) -> caf::behavior {
        return {[](actor_peer::hold_atom) {}};
      });
      auto strong = caf::actor_cast<caf::strong_actor_ptr>(brief);
      gone_weak = caf::weak_actor_ptr{strong.get()};
      for (uint64_t i = 1; i <= 1024; ++i)
        table.add(strong, caf::message_id{i}, &via);
      caf::anon_send_exit(brief, caf::exit_reason::user_shutdown);
    }
    CHECK(table.size() == 1024);
    REQUIRE(cafshm_test::wait_until([&] { return !gone_weak.lock(); }, deadline));
    auto fourth = self->request(silent, deadline, actor_peer::hold_atom::value);
    table.add(requester, request_of(fourth.id()), &via);
    CHECK(table.size() == 1);
  }
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
}
