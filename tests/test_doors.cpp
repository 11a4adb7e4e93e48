// Who may talk to an engine, through which door: local processes only with a ticket of the
// engine's Unix-domain socket (the kernel's uid, gid and pid), peer engines only through the
// peer gateway, after proving their engine id, and then only with the link token the receiving
// engine issued; the engine dials only what its configuration allows; quotas of a user bound
// all its processes together; liveness by the pidfd of the kernel's pid. Attackers are
// real processes (tests/helpers/cafshm-attacker.cpp), other Unix users and pid namespaces are
// created by the test where the machine allows it.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include <arpa/inet.h>
#include <cerrno>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pwd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"
#include "door_protocol.hpp"
#include "memory_manager.hpp"
#include "process_identity.hpp"
#include "ticket_office.hpp"
#include "testing/child_process.hpp"
#include "support/client_system.hpp"
#include "support/fake_peer.hpp"
#include "testing/daemon_process.hpp"
#include "support/peer_key.hpp"
#include "support/tcp_proxy.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::child_process;
using test::client_system;
using test::daemon_process;
using test::peer_key;
using test::eventually;
using test::unique_name;

namespace {

std::string bin(const std::string& program) {
  return std::string{CAFSHM_BIN_DIR} + "/" + program;
}

// An attacker process (see cafshm-attacker.cpp), optionally started through a wrapper such as
// `setpriv` or `unshare`.
struct attacker {
  child_process process;
  std::string first; // its first line: "ready ...", "ready unregistered" or "refused <errc>"

  attacker(std::vector<std::string> argv) : process(std::move(argv)) {
    first = process.read_line(20s).value_or("");
  }

  std::string ask(const std::string& command) {
    REQUIRE(process.write_stdin(command + "\n"));
    return process.read_line(20s).value_or("(no answer)");
  }
};

std::vector<std::string> attacker_argv(uint16_t port, bool registered = true) {
  std::vector<std::string> argv{bin("cafshm-attacker"), "--engine",
                                "127.0.0.1:" + std::to_string(port)};
  if (!registered)
    argv.push_back("--no-register");
  return argv;
}

// "ready SLOT ENGINE_ID" -> the process
process_id process_of(const std::string& ready) {
  return process_id{static_cast<uint32_t>(std::stoul(ready.substr(6)))};
}

const process_stats* find_process(const engine_stats& st, process_id who) {
  for (const auto& p : st.process_list)
    if (p.id == who)
      return &p;
  return nullptr;
}

// An engine in this process (remote.unauthenticated_peers), for raw peer messages from scoped
// actors: they go to its peer gateway, everything else to the engine.
struct local_engine_env {
  std::string name = unique_name("cafshm-test-door");
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  engine_actor engine;
  peer_actor gateway;
  std::shared_ptr<memory_manager> mm;

  local_engine_env() {
    cfg.load<cafshm::module>();
    settings s;
    s.engine.name = name;
    s.engine.arena_bytes = 4 << 20;
    s.remote.cache_bytes = 1 << 20;
    s.remote.unauthenticated_peers = true;
    module::configure(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto e = local_engine(*sys);
    REQUIRE_MESSAGE(e, (e ? std::string{} : describe(e.error())));
    engine = *e;
    mm = module::of(*sys)->memory();
    caf::scoped_actor self{*sys, true};
    auto gw = ask<caf::actor>(self, gateway_atom::value);
    REQUIRE(gw);
    gateway = caf::actor_cast<peer_actor>(std::get<0>(*gw));
  }

  template <class Atom, class... Ts>
  caf::actor destination(const Atom&, const Ts&...) {
    if constexpr (std::is_same_v<Atom, offer_atom> || std::is_same_v<Atom, chunk_atom>
                  || std::is_same_v<Atom, commit_atom> || std::is_same_v<Atom, abort_atom>
                  || std::is_same_v<Atom, version_atom> || std::is_same_v<Atom, pull_atom>
                  || std::is_same_v<Atom, hello_atom> || std::is_same_v<Atom, challenge_atom>)
      return caf::actor_cast<caf::actor>(gateway);
    else
      return caf::actor_cast<caf::actor>(engine);
  }

  template <class... Rs, class... Ts>
  caf::expected<std::tuple<Rs...>> ask(caf::scoped_actor& self, Ts&&... xs) {
    caf::expected<std::tuple<Rs...>> result{caf::error{}};
    self->request(destination(xs...), 5s, std::forward<Ts>(xs)...)
      .receive([&](Rs&... rs) { result = std::make_tuple(std::move(rs)...); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  /// Links `self` as peer engine `id` (challenge, then hello without a proof): the link, with
  /// the token the engine issued and the keys to seal messages with.
  caf::expected<test::fake_peer_link> link_as(caf::scoped_actor& self, uint64_t id) {
    caf::error err;
    auto link = test::handshake_as(
      self, gateway, caf::actor_cast<caf::actor>(self), id,
      [](const std::vector<unsigned char>&) { return peer_proof{}; }, err, uint64_t{7});
    if (link.token == 0)
      return err;
    return link;
  }

  engine_stats stats() {
    caf::scoped_actor self{*sys, true};
    auto st = ask<engine_stats>(self, stats_atom::value);
    REQUIRE(st);
    return std::get<0>(*st);
  }
};

// The ticket in an attacker's "knock ticket <hex>" answer.
std::optional<door_ticket> ticket_in(const std::string& answer) {
  const std::string prefix = "knock ";
  if (answer.rfind(prefix, 0) != 0)
    return std::nullopt;
  auto reply = door::parse_reply(answer.substr(prefix.size()) + "\n");
  if (const auto* t = std::get_if<door_ticket>(&reply))
    return *t;
  return std::nullopt;
}

// Open pidfds of this process that name `pid` (by the "Pid:" line of their fdinfo).
int pidfds_naming(pid_t pid) {
  int found = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  std::vector<int> fds;
  while (auto* entry = ::readdir(dir))
    if (entry->d_name[0] != '.')
      fds.push_back(std::atoi(entry->d_name));
  ::closedir(dir);
  for (int fd : fds)
    if (pid_of_pidfd(fd) == pid)
      ++found;
  return found;
}

// Whether the running kernel is at least major.minor.
bool kernel_at_least(int major, int minor) {
  utsname u{};
  int have_major = 0, have_minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2)
    return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

// Polls `pred` until it holds or `deadline` passes.
template <class Pred>
bool within(std::chrono::milliseconds deadline, Pred pred) {
  auto end = std::chrono::steady_clock::now() + deadline;
  do {
    if (pred())
      return true;
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < end);
  return pred();
}

// A Unix user that exists for one test.
struct temporary_user {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  bool ok = false;

  temporary_user() : name("cafshmt" + std::to_string(::getpid() % 100000)) {
    if (::geteuid() != 0)
      return;
    std::string cmd = "useradd -M -r -s /usr/sbin/nologin " + name + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      return;
    if (auto* pw = ::getpwnam(name.c_str())) {
      uid = pw->pw_uid;
      gid = pw->pw_gid;
      ok = true;
    }
  }

  ~temporary_user() {
    if (ok)
      (void) !std::system(("userdel " + name + " >/dev/null 2>&1").c_str());
  }

  std::vector<std::string> as(std::vector<std::string> argv) const {
    std::vector<std::string> out{"/usr/bin/setpriv", "--reuid=" + std::to_string(uid),
                                 "--regid=" + std::to_string(gid), "--clear-groups"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
};

} // namespace

TEST_CASE("peer links: a caller at A's client port cannot link as engine B, gets nothing meant "
          "for B and forges no receipt") {
  peer_key key;
  daemon_process a{unique_name("cafshm-test-da"), "16MiB", 0, key.yaml("  cache: 0\n")};
  daemon_process b{unique_name("cafshm-test-db"), "16MiB", 0, key.yaml("  cache: 0\n")};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs;
  auto producer = client::connect(cs.sys, a.address(), "producer");
  auto sink = client::connect(cs.sys, b.address(), "sink");
  REQUIRE_MESSAGE(producer, (producer ? std::string{} : describe(producer.error())));
  REQUIRE_MESSAGE(sink, (sink ? std::string{} : describe(sink.error())));
  auto b_id = sink->info().engine_id;
  // The impostor tries to link as B at A's client port before A ever linked to B: the engine
  // actor takes no peer message, the gateway wants a proof, a forward needs the gateway's key.
  attacker evil{attacker_argv(a.port(), false)};
  REQUIRE(evil.first == "ready unregistered");
  CHECK(evil.ask("impersonate " + std::to_string(b_id))
        == "impersonate engine=refused gateway=access_denied forward=access_denied");
  auto ref = producer->allocate(100000);
  REQUIRE(ref);
  std::vector<char> bytes(100000);
  std::mt19937 rng{7};
  for (auto& c : bytes)
    c = static_cast<char>(rng());
  REQUIRE(producer->write(*ref, 0, bytes));
  transmit_target target;
  target.process = "sink";
  auto receipt = producer->transmit(*ref, b.address_text(), target, 30s);
  REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
  CHECK(receipt->remote.engine == b_id);
  auto got = sink->read(receipt->remote, 0, bytes.size()); // the real B holds the real bytes
  REQUIRE_MESSAGE(got, (got ? std::string{} : describe(got.error())));
  CHECK(*got == bytes);
  CHECK(evil.ask("impostor") == "impostor offers=0 chunks=0 commits=0");
  auto st = producer->stats();
  REQUIRE(st);
  CHECK(st->peers.size() == 1); // B, dialed; nothing the impostor said
}

TEST_CASE("peer links: with remote.peer_key_file only holders of the key link, a caller without "
          "it gets no link and no offer through") {
  peer_key key;
  peer_key other{"cafshm-test-otherkey"};
  daemon_process a{unique_name("cafshm-test-dk"), "16MiB", 0, key.yaml()};
  daemon_process b{unique_name("cafshm-test-dk"), "16MiB", 0, key.yaml()};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs;
  auto watcher = client::connect(cs.sys, b.address(), "watcher");
  REQUIRE(watcher);
  auto before = watcher->stats();
  REQUIRE(before);
  attacker evil{attacker_argv(b.port(), false)};
  REQUIRE(evil.first == "ready unregistered");
  CHECK(evil.ask("peerlink 4242 none") == "peerlink access_denied");
  CHECK(evil.ask("peerlink 4242 key " + other.path()) == "peerlink access_denied");
  CHECK(evil.ask("offer") == "offer access_denied"); // no token was issued to it
  auto st = watcher->stats();
  REQUIRE(st);
  CHECK(st->peers.empty());
  CHECK(st->transmits_in == 0);
  CHECK(st->free_bytes == before->free_bytes);
  // Control: the key is what counts. A holder of the key is a peer (so the key is a secret of
  // all engines alike), and engines with it link.
  CHECK(evil.ask("peerlink 4242 key " + key.path()) == "peerlink ok");
  CHECK(evil.ask("offer") == "offer ok");
  auto sender = client::connect(cs.sys, a.address(), "sender");
  REQUIRE(sender);
  auto ref = sender->allocate(4096);
  REQUIRE(ref);
  auto receipt = sender->transmit(*ref, b.address_text(), transmit_target{"watcher", "", {}}, 30s);
  REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
  REQUIRE(watcher->free(receipt->remote));
}

TEST_CASE("peer links: an engine with neither remote.tls, a peer key nor unauthenticated_peers "
          "links with no peer, either way") {
  daemon_process closed{unique_name("cafshm-test-dc"), "16MiB", 0,
                        "remote: {unauthenticated_peers: false}\n"};
  daemon_process open{unique_name("cafshm-test-do"), "16MiB", 0,
                      "remote: {unauthenticated_peers: true}\n"};
  REQUIRE(closed.ready());
  REQUIRE(open.ready());
  client_system cs;
  auto at_closed = client::connect(cs.sys, closed.address(), "one");
  auto at_open = client::connect(cs.sys, open.address(), "two");
  REQUIRE(at_closed);
  REQUIRE(at_open);
  auto out = at_closed->link("127.0.0.1", open.port());
  REQUIRE_FALSE(out);
  CHECK(code_of(out.error()) == errc::access_denied);
  CHECK(describe(out.error()).find("remote.peer_key_file") != std::string::npos);
  auto in = at_open->link("127.0.0.1", closed.port());
  REQUIRE_FALSE(in);
  CHECK(code_of(in.error()) == errc::access_denied);
  attacker evil{attacker_argv(closed.port(), false)};
  REQUIRE(evil.first == "ready unregistered");
  CHECK(evil.ask("peerlink 4242 none") == "peerlink access_denied");
  CHECK(at_closed->stats()->peers.empty());
}

TEST_CASE("peer links: remote.peer_key_file must be the engine user's own, unreadable by others") {
  peer_key key;
  settings s;
  s.remote.peer_key_file = key.path();
  CHECK_FALSE(validate(s));
  ::chmod(key.path().c_str(), 0640);
  auto why = validate(s);
  REQUIRE(why);
  CHECK_MESSAGE(why->find("remote.peer_key_file") != std::string::npos, *why);
  CHECK_MESSAGE(why->find("chmod 600") != std::string::npos, *why);
  ::chmod(key.path().c_str(), 0600);
  { std::ofstream{key.path(), std::ios::trunc} << "short"; }
  why = validate(s);
  REQUIRE(why);
  CHECK_MESSAGE(why->find("5 bytes") != std::string::npos, *why);
  s.remote.peer_key_file = key.path() + ".absent";
  CHECK(validate(s));
}

TEST_CASE("peer messages: no valid link token, no effect, one engine cannot end or "
          "finish another's transfer, a cache fill nobody asked for is refused") {
  local_engine_env env;
  caf::scoped_actor x{*env.sys, true};
  caf::scoped_actor y{*env.sys, true};
  std::vector<char> data(4096, 'x');
  transmit_offer o;
  o.id = 5;
  o.size = data.size();
  o.hash = XXH3_64bits(data.data(), data.size());
  o.chunk_bytes = 4096;
  // no token, or a token nobody issued
  for (uint64_t token : {uint64_t{0}, uint64_t{0x123456789}}) {
    link_sealer guessed{token, std::vector<unsigned char>(link_mac_key_bytes, 'g')};
    auto r = env.ask<transmit_receipt, peer_seal>(x, offer_atom::value,
                                                  guessed.seal(offer_atom::value, o), o);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::access_denied);
    auto v = env.ask<uint64_t, peer_seal>(x, version_atom::value,
                               guessed.seal(version_atom::value, block_ref{}), block_ref{});
    REQUIRE_FALSE(v);
    CHECK(code_of(v.error()) == errc::access_denied);
  }
  auto hx = env.link_as(x, 0x1111);
  auto hy = env.link_as(y, 0x2222);
  REQUIRE(hx);
  REQUIRE(hy);
  auto& tx = *hx;
  auto& ty = *hy;
  CHECK(tx.token != ty.token);
  // x starts a transfer with id 5
  auto open = env.ask<transmit_receipt, peer_seal>(x, offer_atom::value,
                                                   tx.seal(offer_atom::value, o), o);
  REQUIRE_MESSAGE(open, (open ? std::string{} : describe(open.error())));
  CHECK_FALSE(std::get<0>(*open).remote.valid());
  CHECK(env.stats().transmits_in == 1);
  // y knows the id: its chunk, commit and abort reach nothing
  transmit_chunk c{0, 5, 0, XXH3_64bits(data.data(), data.size()), data};
  auto yc = env.ask<done_atom, peer_seal>(y, chunk_atom::value,
                                          ty.seal(chunk_atom::value, c), c);
  REQUIRE_FALSE(yc);
  CHECK(code_of(yc.error()) == errc::stale_block);
  y->send(env.gateway, abort_atom::value, ty.seal(abort_atom::value, uint64_t{5}), uint64_t{5});
  auto ycommit = env.ask<transmit_receipt, peer_seal>(
    y, commit_atom::value, ty.seal(commit_atom::value, uint64_t{5}, o.hash), uint64_t{5}, o.hash);
  REQUIRE_FALSE(ycommit);
  CHECK(env.stats().transmits_in == 1); // still open: y's abort came before its commit
  // x finishes it
  REQUIRE(env.ask<done_atom, peer_seal>(x, chunk_atom::value, tx.seal(chunk_atom::value, c),
                                        c));
  auto done = env.ask<transmit_receipt, peer_seal>(
    x, commit_atom::value, tx.seal(commit_atom::value, uint64_t{5}, o.hash), uint64_t{5}, o.hash);
  REQUIRE_MESSAGE(done, (done ? std::string{} : describe(done.error())));
  CHECK(std::get<0>(*done).hash == o.hash);
  // a cache fill (what answers a remote read) that this engine never asked x for
  transmit_offer fill = o;
  fill.id = 6;
  fill.cache_fill = true;
  fill.source = block_ref{0x1111, 3, 1, data.size()};
  fill.source_version = 1;
  auto poisoned = env.ask<transmit_receipt, peer_seal>(x, offer_atom::value,
                                                       tx.seal(offer_atom::value, fill), fill);
  REQUIRE_FALSE(poisoned);
  CHECK(code_of(poisoned.error()) == errc::access_denied);
  CHECK(env.stats().transmits_in == 0);
  CHECK(env.mm->check() == "");
}

TEST_CASE("peer reads: version and pull of a hidden engine copy are refused as if absent") {
  local_engine_env env;
  auto engine = env.mm->engine_session();
  auto hidden = env.mm->allocate(engine, 4096);
  auto published = env.mm->allocate(engine, 4096);
  REQUIRE(hidden);
  REQUIRE(published);
  env.mm->conceal(*hidden, true); // as the engine keeps cached copies of other processes' data
  caf::scoped_actor x{*env.sys, true};
  auto hx = env.link_as(x, 0x1111);
  REQUIRE(hx);
  auto& tx = *hx;
  auto absent = *hidden;
  absent.generation += 1;
  for (const auto& ref : {*hidden, absent}) {
    auto v = env.ask<uint64_t, peer_seal>(x, version_atom::value,
                                          tx.seal(version_atom::value, ref), ref);
    REQUIRE_FALSE(v);
    CHECK(code_of(v.error()) == errc::stale_block);
    auto p = env.ask<uint64_t, peer_seal>(x, pull_atom::value, tx.seal(pull_atom::value, ref),
                                          ref);
    REQUIRE_FALSE(p);
    CHECK(code_of(p.error()) == errc::stale_block);
  }
  // control: a published engine-held block is exported
  CHECK(env.ask<uint64_t, peer_seal>(x, version_atom::value,
                                     tx.seal(version_atom::value, *published), *published));
  REQUIRE(env.mm->free(engine, *hidden));
  REQUIRE(env.mm->free(engine, *published));
}

TEST_CASE("door: no registration without its ticket, anonymous stats show only aggregates, "
          "link needs a session") {
  daemon_process d{unique_name("cafshm-test-dd")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "owner");
  REQUIRE_MESSAGE(me, (me ? std::string{} : describe(me.error())));
  auto ref = me->allocate(4096);
  REQUIRE(ref);
  REQUIRE(me->name(*ref, "precious"));
  attacker evil{attacker_argv(d.port(), false)};
  REQUIRE(evil.first == "ready unregistered");
  CHECK(evil.ask("register") == "register access_denied");
  CHECK(evil.ask("stats") == "stats processes=1 listed=0 names=0");
  auto full = me->stats();
  REQUIRE(full);
  CHECK(full->name_list.size() == 1);
  REQUIRE(find_process(*full, me->id()) != nullptr);
  CHECK(find_process(*full, me->id())->pid == ::getpid()); // what the kernel said at the door
  // link without a session is not a request the engine knows
  caf::scoped_actor self{cs.sys, true};
  caf::error refused;
  self->request(caf::actor_cast<caf::actor>(me->engine()), 5s, link_atom::value,
                std::string{"127.0.0.1"}, uint16_t{9})
    .receive([](const caf::message&) { FAIL("an anonymous link was served"); },
             [&](caf::error& e) { refused = std::move(e); });
  CHECK(refused);
  CHECK(me->stats()->peers.empty());
}

TEST_CASE("door: another Unix user cannot register, unless engine.allow_users names it") {
  temporary_user user;
  if (!user.ok) {
    MESSAGE("skipped: needs root and useradd to create another Unix user");
    return;
  }
  {
    daemon_process d{unique_name("cafshm-test-du")};
    REQUIRE(d.ready());
    attacker other{user.as(attacker_argv(d.port()))};
    CHECK(other.first == "refused access_denied");
  }
  // (indented: continues the daemon's engine: section)
  daemon_process d{unique_name("cafshm-test-du"), "64MiB", 0,
                   "  allow_users: [" + user.name + "]\n"};
  REQUIRE(d.ready());
  attacker allowed{user.as(attacker_argv(d.port()))};
  CHECK_MESSAGE(allowed.first.rfind("ready ", 0) == 0, allowed.first);
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(me);
  auto st = me->stats();
  REQUIRE(st);
  CHECK(st->processes == 2);
}

TEST_CASE("liveness: a client in another pid namespace is watched by its real pid") {
  if (::geteuid() != 0 || std::system("unshare --pid --fork true >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: needs root and unshare --pid");
    return;
  }
  daemon_process d{unique_name("cafshm-test-dn")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  auto argv = attacker_argv(d.port());
  argv.insert(argv.begin(), {"/usr/bin/unshare", "--pid", "--fork", "--kill-child"});
  attacker inside{argv};
  REQUIRE_MESSAGE(inside.first.rfind("ready ", 0) == 0, inside.first);
  auto st = me->stats();
  REQUIRE(st);
  const auto* p = find_process(*st, process_of(inside.first));
  REQUIRE(p != nullptr);
  // the pid in the engine's namespace: the attacker, not pid 1 of its own namespace
  CHECK(p->pid != 1);
  std::ifstream cmdline{"/proc/" + std::to_string(p->pid) + "/cmdline"};
  std::string first_arg;
  std::getline(cmdline, first_arg, '\0');
  CHECK(first_arg.find("cafshm-attacker") != std::string::npos);
  inside.process.kill(SIGKILL); // unshare --kill-child takes the attacker with it
  inside.process.wait(10s);
  CHECK(eventually(*me, 5s, [&](const engine_stats& s) {
    return s.processes == before->processes && s.blocks == before->blocks;
  }));
}

TEST_CASE("liveness: a live client whose connection breaks keeps its session and blocks "
          "until it exits") {
  daemon_process d{unique_name("cafshm-test-dl")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  test::tcp_proxy proxy{d.port()};
  REQUIRE(proxy.port() != 0);
  attacker far{attacker_argv(proxy.port())};
  REQUIRE_MESSAGE(far.first.rfind("ready ", 0) == 0, far.first);
  CHECK(me->stats()->processes == before->processes + 1);
  proxy.cut(); // both sides see the connection reset; the client lives on
  // over a new connection the same session still works: nothing was reclaimed
  CHECK(far.ask("reattach " + d.address_text()) == "reattach ok");
  auto st = me->stats();
  REQUIRE(st);
  CHECK(st->processes == before->processes + 1);
  CHECK(st->blocks == before->blocks + 1); // its scratch block
  far.process.kill(SIGKILL);
  far.process.wait(10s);
  CHECK(eventually(*me, 5s, [&](const engine_stats& s) {
    return s.processes == before->processes && s.blocks == before->blocks;
  }));
}

TEST_CASE("peer links: hellos cannot grow the peer table without bound") {
  local_engine_env env;
  auto observer = client::connect(*env.sys, "observer");
  REQUIRE(observer);
  caf::scoped_actor x{*env.sys, true};
  // one engine id saying hello again and again holds one link
  for (int i = 0; i < 1000; ++i)
    REQUIRE(env.link_as(x, 0x1111));
  CHECK(observer->stats()->peers.size() == 1);
  // distinct ids: up to the bound, then capacity_exceeded
  size_t accepted = 1, refused = 0;
  for (uint64_t id = 2; id < 400; ++id) {
    auto r = env.link_as(x, id);
    if (r)
      ++accepted;
    else if (code_of(r.error()) == errc::capacity_exceeded)
      ++refused;
  }
  CHECK(accepted == 256);
  CHECK(refused == 400 - 2 + 1 - 256);
  CHECK(observer->stats()->peers.size() == 256);
}

TEST_CASE("dialing: a registered process makes its engine dial only configured peers and hosts "
          "of remote.allow_dial") {
  daemon_process target{unique_name("cafshm-test-dt")};
  REQUIRE(target.ready());
  // A port that records whether anything connected to it.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 8) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  auto trap = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  {
    daemon_process strict{unique_name("cafshm-test-ds"), "16MiB", 0,
                          "remote: {allow_dial: ['10.0.0.0/8', '*.cluster.invalid']}\n"};
    REQUIRE(strict.ready());
    attacker evil{attacker_argv(strict.port())};
    REQUIRE_MESSAGE(evil.first.rfind("ready ", 0) == 0, evil.first);
    CHECK(evil.ask("dial " + trap) == "dial peer_not_allowed");
    CHECK(evil.ask("dial " + target.address_text()) == "dial peer_not_allowed");
    CHECK(evil.ask("dial localhost:" + std::to_string(target.port())) == "dial peer_not_allowed");
    client_system cs;
    auto me = client::connect(cs.sys, strict.address(), "owner");
    REQUIRE(me);
    auto ref = me->allocate(4096);
    REQUIRE(ref);
    auto sent = me->transmit(*ref, target.address_text(), transmit_target{}, 10s);
    REQUIRE_FALSE(sent);
    CHECK(code_of(sent.error()) == errc::peer_not_allowed);
    CHECK(me->stats()->peers.empty());
    // the engine answered before dialing: nothing ever connected to the trap
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    CHECK(::accept(listener, reinterpret_cast<sockaddr*>(&from), &from_len) < 0);
    CHECK((errno == EAGAIN || errno == EWOULDBLOCK));
  }
  ::close(listener);
  // an address range that holds the target, and a configured peer, are dialed
  daemon_process ranged{unique_name("cafshm-test-dr"), "16MiB", 0,
                        "remote: {allow_dial: ['127.0.0.0/8']}\n"};
  daemon_process named{unique_name("cafshm-test-dp"), "16MiB", 0,
                       "remote:\n  allow_dial: []\n  peers:\n    - {name: t, host: 127.0.0.1, port: "
                         + std::to_string(target.port()) + "}\n"};
  REQUIRE(ranged.ready());
  REQUIRE(named.ready());
  attacker in_range{attacker_argv(ranged.port())};
  REQUIRE_MESSAGE(in_range.first.rfind("ready ", 0) == 0, in_range.first);
  CHECK(in_range.ask("dial " + target.address_text()) == "dial ok");
  attacker to_peer{attacker_argv(named.port())};
  REQUIRE_MESSAGE(to_peer.first.rfind("ready ", 0) == 0, to_peer.first);
  CHECK(to_peer.ask("dial " + target.address_text()) == "dial ok");
  CHECK(to_peer.ask("dial " + ranged.address_text()) == "dial peer_not_allowed");
}

TEST_CASE("quotas: a user's engine.quotas entry bounds all live processes of that user "
          "together") {
  // (indented: continues the daemon's engine: section)
  daemon_process d{unique_name("cafshm-test-dq"), "16MiB", 0,
                   "  quotas: [{user: " + std::to_string(::getuid()) + ", bytes: 1MiB}]\n"};
  REQUIRE(d.ready());
  // Three processes of this user; each holds its 8 KiB scratch block.
  auto named = [&](const std::string& name) {
    auto argv = attacker_argv(d.port());
    argv.insert(argv.end(), {"--name", name});
    return argv;
  };
  attacker one{named("first")};
  attacker two{named("second")};
  REQUIRE_MESSAGE(one.first.rfind("ready ", 0) == 0, one.first);
  REQUIRE_MESSAGE(two.first.rfind("ready ", 0) == 0, two.first);
  CHECK(one.ask("hold 400000") == "hold ok");
  CHECK(two.ask("hold 400000") == "hold ok");
  attacker three{named("third")};
  REQUIRE_MESSAGE(three.first.rfind("ready ", 0) == 0, three.first);
  // 2 x (8 KiB + 400000 bytes in 4 KiB pages) + 8 KiB in use: 400000 more exceed 1 MiB, although
  // each process is far below it
  CHECK(three.ask("hold 400000") == "hold quota_exceeded");
  CHECK(three.ask("hold 100000") == "hold ok"); // what is left of the user's quota
  // when a process of the user ends, its share comes back
  one.process.kill(SIGKILL);
  one.process.wait(10s);
  client_system cs;
  auto observer = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(observer);
  CHECK(eventually(*observer, 5s, [](const engine_stats& s) { return s.processes == 3; }));
  CHECK(three.ask("hold 400000") == "hold ok");
}

TEST_CASE("door: the pidfd of a ticket names the process that connected, and the engine watches "
          "it") {
  local_engine_env env;
  auto* mod = module::of(*env.sys);
  attacker knocker{{bin("cafshm-attacker"), "--door", mod->door_path()}};
  REQUIRE(knocker.first == "ready door");
  const pid_t pid = knocker.process.pid();
  auto first = ticket_in(knocker.ask("knock"));
  REQUIRE(first);
  auto creds = mod->tickets()->redeem(*first);
  REQUIRE(creds);
  CHECK(creds->pid == pid);
  CHECK(creds->uid == ::geteuid());
  REQUIRE(creds->pidfd >= 0);
  CHECK(pid_of_pidfd(creds->pidfd) == pid);
  CHECK_FALSE(has_exited(creds->pidfd));
  // Linux 6.5 and later give the door a pidfd with the connection (SO_PEERPIDFD): no pid
  // lookup after the fact
  if (kernel_at_least(6, 5))
    CHECK(creds->pidfd_of_connection);
  else
    MESSAGE("kernel before 6.5: the door opened the pidfd by pid (pidfd_open)");
  ::close(creds->pidfd);
  // registered with a second ticket, the engine holds that process's pidfd
  auto second = ticket_in(knocker.ask("knock"));
  REQUIRE(second);
  caf::scoped_actor self{*env.sys, true};
  auto reg = env.ask<registration>(self, register_atom::value, std::string{"knocker"},
                                   uint64_t{0}, *second, protocol_version);
  REQUIRE_MESSAGE(reg, (reg ? std::string{} : describe(reg.error())));
  CHECK(env.mm->pid_of(std::get<0>(*reg).session.process) == pid);
  CHECK(pidfds_naming(pid) == 1);
  CHECK(env.stats().processes == 1);
  knocker.process.kill(SIGKILL);
  knocker.process.wait(10s);
  // the liveness check sees the pidfd say "exited" and reclaims, closing it
  CHECK(within(10s, [&] { return env.stats().processes == 0; }));
  CHECK(pidfds_naming(pid) == 0);
}

TEST_CASE("door: a caller that has exited is never registered: not after its ticket, not "
          "through a connection it left behind") {
  local_engine_env env;
  auto* mod = module::of(*env.sys);
  auto office = mod->tickets();
  caf::scoped_actor self{*env.sys, true};
  {
    // a ticket issued while the caller lived, redeemed after it exited
    attacker gone{{bin("cafshm-attacker"), "--door", mod->door_path()}};
    REQUIRE(gone.first == "ready door");
    auto ticket = ticket_in(gone.ask("knock"));
    REQUIRE(ticket);
    gone.process.close_stdin();
    REQUIRE(gone.process.wait(10s) == 0); // exited and reaped
    auto reg = env.ask<registration>(self, register_atom::value, std::string{"ghost"},
                                     uint64_t{0}, *ticket, protocol_version);
    REQUIRE_FALSE(reg);
    CHECK(code_of(reg.error()) == errc::process_exited);
    CHECK(describe(reg.error()).find("pid " + std::to_string(gone.process.pid()))
          != std::string::npos);
    CHECK(env.stats().processes == 0);
    CHECK(office->open_tickets() == 0);
  }
  // a child connects and exits; its parent asks over the child's connection, once the child
  // has exited (a zombie) and once it has been reaped (its pid free for another process)
  attacker parent{{bin("cafshm-attacker"), "--door", mod->door_path()}};
  REQUIRE(parent.first == "ready door");
  for (const std::string command : {"zombie", "orphan"}) {
    auto answer = parent.ask(command);
    INFO(answer);
    CHECK(answer.rfind(command + " denied the asking process has exited", 0) == 0);
  }
  CHECK(office->open_tickets() == 0);
  CHECK(env.stats().processes == 0);
  // control: the parent's own knock gets a ticket
  CHECK(ticket_in(parent.ask("knock")));
}

TEST_CASE("quotas: engine.default_quota and engine.max_processes_per_user bound a user's "
          "processes together, another user's are unaffected") {
  temporary_user user;
  if (!user.ok)
    MESSAGE("another user's part skipped: needs root and useradd to create a Unix user");
  // (indented: continues the daemon's engine: section)
  std::string engine_settings = "  default_quota: 1MiB\n  max_processes_per_user: 3\n";
  if (user.ok)
    engine_settings += "  allow_users: [" + user.name + "]\n";
  daemon_process d{unique_name("cafshm-test-dp"), "16MiB", 0, engine_settings};
  REQUIRE(d.ready());
  auto named = [&](const std::string& name, uint16_t port) {
    auto argv = attacker_argv(port);
    argv.insert(argv.end(), {"--name", name});
    return argv;
  };
  // the first process reaches the engine through a relay that can break its connection
  test::tcp_proxy proxy{d.port()};
  REQUIRE(proxy.port() != 0);
  attacker one{named("first", proxy.port())};
  attacker two{named("second", d.port())};
  attacker three{named("third", d.port())};
  REQUIRE_MESSAGE(one.first.rfind("ready ", 0) == 0, one.first);
  REQUIRE_MESSAGE(two.first.rfind("ready ", 0) == 0, two.first);
  REQUIRE_MESSAGE(three.first.rfind("ready ", 0) == 0, three.first);
  {
    attacker fourth{named("fourth", d.port())};
    CHECK(fourth.first == "refused too_many_processes");
  }
  // each holds its 8 KiB scratch block: 2 x (8 KiB + 400000 bytes in 4 KiB pages) + 8 KiB in
  // use, so 400000 more exceed the user's 1 MiB although each process is far below it
  CHECK(one.ask("hold 400000") == "hold ok");
  CHECK(two.ask("hold 400000") == "hold ok");
  CHECK(three.ask("hold 400000") == "hold quota_exceeded");
  // a detached process still counts, with its bytes; re-attaching is no new registration
  proxy.cut();
  {
    attacker fourth{named("fourth", d.port())};
    CHECK(fourth.first == "refused too_many_processes");
  }
  CHECK(three.ask("hold 400000") == "hold quota_exceeded");
  CHECK(one.ask("reattach " + d.address_text()) == "reattach ok");
  CHECK(three.ask("hold 100000") == "hold ok"); // what is left of the user's quota
  CHECK(three.ask("hold 200000") == "hold quota_exceeded");
  if (user.ok) { // another user: its own three processes, its own 1 MiB
    attacker x{user.as(named("x", d.port()))};
    attacker y{user.as(named("y", d.port()))};
    attacker z{user.as(named("z", d.port()))};
    REQUIRE_MESSAGE(x.first.rfind("ready ", 0) == 0, x.first);
    REQUIRE_MESSAGE(y.first.rfind("ready ", 0) == 0, y.first);
    REQUIRE_MESSAGE(z.first.rfind("ready ", 0) == 0, z.first);
    CHECK(x.ask("hold 400000") == "hold ok");
    CHECK(y.ask("hold 400000") == "hold ok");
    attacker w{user.as(named("w", d.port()))};
    CHECK(w.first == "refused too_many_processes");
  }
  // an ended process gives back its place and its bytes
  one.process.kill(SIGKILL);
  one.process.wait(10s);
  attacker fifth{named("fifth", d.port())};
  REQUIRE_MESSAGE(fifth.first.rfind("ready ", 0) == 0, fifth.first);
  CHECK(three.ask("hold 300000") == "hold ok");
}

namespace {

// A re-attach sent by this process (not by the process the ticket stands for).
caf::expected<registration> reattach(client_system& cs, const engine_actor& engine,
                                     const session& s, uint64_t engine_id,
                                     const door_ticket& ticket) {
  caf::expected<registration> result{caf::error{}};
  caf::scoped_actor self{cs.sys, true};
  self->request(engine, 10s, reattach_atom::value, s, engine_id, ticket, protocol_version)
    .receive([&](registration& r) { result = std::move(r); },
             [&](caf::error& e) { result = std::move(e); });
  return result;
}

// What the engine answers an allocation with session `s`: nullopt if it allocated (and freed).
std::optional<errc> allocate_as(client_system& cs, const engine_actor& engine, const session& s) {
  std::optional<errc> refused;
  caf::scoped_actor self{cs.sys, true};
  self->request(engine, 10s, allocate_atom::value, s, uint64_t{4096})
    .receive(
      [&](block_ref& r) {
        refused = std::nullopt;
        self->request(engine, 10s, free_atom::value, s, r).receive([](done_atom) {},
                                                                  [](caf::error&) {});
      },
      [&](caf::error& e) { refused = code_of(e); });
  return refused;
}

} // namespace

TEST_CASE("liveness: a process whose connection broke and that has exited cannot be re-attached, "
          "even with a ticket and session it handed on") {
  daemon_process d{unique_name("cafshm-test-dx")};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  test::tcp_proxy proxy{d.port()};
  REQUIRE(proxy.port() != 0);
  attacker gone{attacker_argv(proxy.port())};
  REQUIRE_MESSAGE(gone.first.rfind("ready ", 0) == 0, gone.first);
  CHECK(gone.ask("hold 100000") == "hold ok");
  proxy.cut(); // the engine detaches it: it lives, its session and blocks stay
  CHECK(me->stats()->processes == before->processes + 1);
  // it gets a door ticket (its own pid), hands ticket and session on and exits
  auto handoff = gone.ask("handoff " + d.address_text());
  REQUIRE_MESSAGE(handoff.rfind("handoff ", 0) == 0, handoff);
  std::istringstream words{handoff.substr(8)};
  session s;
  uint32_t slot = 0;
  uint64_t engine_id = 0;
  std::string ticket_word, ticket_hex;
  words >> slot >> s.token >> engine_id >> ticket_word >> ticket_hex;
  s.process = process_id{slot};
  auto reply = door::parse_reply(ticket_word + " " + ticket_hex + "\n");
  const auto* ticket = std::get_if<door_ticket>(&reply);
  REQUIRE_MESSAGE(ticket != nullptr, handoff);
  REQUIRE(gone.process.wait(10s) == 0); // exited and reaped
  auto reg = reattach(cs, me->engine(), s, engine_id, *ticket);
  REQUIRE_FALSE(reg);
  CHECK(code_of(reg.error()) == errc::process_exited);
  CHECK(describe(reg.error()).find("pid " + std::to_string(gone.process.pid()))
        != std::string::npos);
  // the slot is reclaimed with everything it held; the session stays dead
  CHECK(eventually(*me, 10s, [&](const engine_stats& st) {
    return st.processes == before->processes && st.blocks == before->blocks
           && st.used_bytes == before->used_bytes;
  }));
  CHECK(allocate_as(cs, me->engine(), s) == errc::unknown_process);
}

TEST_CASE("liveness: a pid taken over by a new process while the engine was stopped does not "
          "keep the dead process's slot, and the newcomer cannot act as it") {
  const std::string name = unique_name("cafshm-test-dr");
  daemon_process d{name};
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  attacker victim{attacker_argv(d.port())};
  REQUIRE_MESSAGE(victim.first.rfind("ready ", 0) == 0, victim.first);
  const pid_t pid = victim.process.pid();
  CHECK(victim.ask("hold 300000") == "hold ok");
  auto words = victim.ask("session");
  REQUIRE(words.rfind("session ", 0) == 0);
  session old;
  uint32_t slot = 0;
  uint64_t engine_id = 0;
  std::istringstream{words.substr(8)} >> slot >> old.token >> engine_id;
  old.process = process_id{slot};
  auto held = me->stats();
  REQUIRE(held);
  REQUIRE(find_process(*held, old.process) != nullptr);
  CHECK(find_process(*held, old.process)->pid == pid);
  CHECK(held->used_bytes > before->used_bytes);
  {
    test::paused_process engine{d.process()};
    REQUIRE(engine);
    victim.process.kill(SIGKILL);
    REQUIRE(victim.process.wait(10s)); // reaped: its pid is free
    // a new process with the same pid, which knocks at the engine's door
    child_process newcomer{{bin("cafshm-attacker"), "--door", "/dev/shm/" + name + ".sock"}, pid};
    if (newcomer.pid() != pid) {
      MESSAGE("pid reuse part skipped: cannot create a process with a chosen pid (clone3 "
              "set_tid: " << std::strerror(newcomer.start_error()) << ")");
      return;
    }
    REQUIRE(newcomer.read_line(20s) == "ready door");
    engine.resume();
    // the engine reclaims the dead process (its pidfd says it exited) although a live process
    // has its pid now: every block and byte it held comes back, exactly
    CHECK(eventually(*me, 10s, [&](const engine_stats& st) {
      return st.processes == before->processes && st.blocks == before->blocks
             && st.used_bytes == before->used_bytes && find_process(st, old.process) == nullptr;
    }));
    // the newcomer's ticket names the same pid, but it is not the process of the old slot
    REQUIRE(newcomer.write_line("knock"));
    auto knock = newcomer.read_line(20s);
    REQUIRE(knock);
    auto ticket = ticket_in(*knock);
    REQUIRE_MESSAGE(ticket, *knock);
    auto reg = reattach(cs, me->engine(), old, engine_id, *ticket);
    REQUIRE_FALSE(reg);
    CHECK(code_of(reg.error()) == errc::unknown_process);
    CHECK(allocate_as(cs, me->engine(), old) == errc::unknown_process);
    auto after = me->stats();
    REQUIRE(after);
    CHECK(after->processes == before->processes);
    CHECK(after->used_bytes == before->used_bytes);
  }
}

TEST_CASE("peer messages: a link token without the link's key gets nothing in, a captured "
          "message replayed is refused, the transfer under way is unaffected") {
  daemon_process d{unique_name("cafshm-test-dm")}; // remote.unauthenticated_peers
  REQUIRE(d.ready());
  client_system cs;
  auto me = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(me);
  auto before = me->stats();
  REQUIRE(before);
  CHECK(before->peer_messages_refused == 0);
  caf::scoped_actor x{cs.sys, true};
  caf::error link_error;
  auto link = test::link_fake_peer(x, me->engine(), 0x4280, link_error);
  REQUIRE_MESSAGE(link.token != 0, describe(link_error));
  // A peer message from `who` and its outcome (the answer's type is what the atom asks for).
  auto ask = [&](caf::scoped_actor& who, auto atom, const peer_seal& seal, const auto&... xs) {
    caf::error err;
    auto on_error = [&](caf::error& e) { err = std::move(e); };
    auto request = who->request(link.gateway, 10s, atom, seal, xs...);
    if constexpr (std::is_same_v<decltype(atom), chunk_atom>)
      request.receive([](done_atom, peer_seal&) {}, on_error);
    else
      request.receive([](transmit_receipt&, peer_seal&) {}, on_error);
    return err;
  };
  auto send = [&](auto atom, const peer_seal& seal, const auto&... xs) {
    return ask(x, atom, seal, xs...);
  };
  auto pattern = [](size_t n, char seed) {
    std::vector<char> v(n);
    for (size_t i = 0; i < n; ++i)
      v[i] = static_cast<char>(seed + i * 31 + (i >> 7));
    return v;
  };
  // the peer publishes a block (held by the engine, exported to peers)
  auto small = pattern(4096, 'p');
  auto small_hash = XXH3_64bits(small.data(), small.size());
  transmit_offer first{0x4280, 8, small.size(), small_hash, 4096, {"", "published", {}}, {}, 0,
                       false};
  auto published_offer = send(offer_atom::value, link.seal(offer_atom::value, first), first);
  REQUIRE_MESSAGE(!published_offer, describe(published_offer));
  transmit_chunk only{0x4280, 8, 0, small_hash, small};
  REQUIRE_FALSE(send(chunk_atom::value, link.seal(chunk_atom::value, only), only));
  REQUIRE_FALSE(send(commit_atom::value, link.seal(commit_atom::value, uint64_t{8}, small_hash),
                     uint64_t{8}, small_hash));
  auto published = me->lookup("published");
  REQUIRE(published);
  // a transfer of two chunks under way; the test keeps its offer and first chunk as sent
  auto data = pattern(8192, 's');
  auto hash = XXH3_64bits(data.data(), data.size());
  transmit_offer offer{0x4280, 9, data.size(), hash, 4096, {"", "sealed", {}}, {}, 0, false};
  auto offer_seal = link.seal(offer_atom::value, offer);
  REQUIRE_FALSE(send(offer_atom::value, offer_seal, offer));
  std::vector<char> half(data.begin(), data.begin() + 4096);
  transmit_chunk chunk1{0x4280, 9, 0, XXH3_64bits(half.data(), half.size()), half};
  auto chunk1_seal = link.seal(chunk_atom::value, chunk1);
  REQUIRE_FALSE(send(chunk_atom::value, chunk1_seal, chunk1));
  CHECK(me->stats()->transmits_in == 1);
  // an attacker process that knows the link token (read here, where the test can) but not the
  // key: its offer, chunk, commit, abort, version and pull are all refused
  attacker forger{attacker_argv(d.port(), false)};
  REQUIRE(forger.first == "ready unregistered");
  std::ostringstream ref;
  ref << published->engine << " " << published->block << " " << published->generation << " "
      << published->size;
  CHECK(forger.ask("forge " + std::to_string(link.token) + " 9 " + ref.str())
        == "forge offer=access_denied chunk=access_denied commit=access_denied "
           "version=access_denied pull=access_denied");
  // the messages the peer sent, captured and sent again (here by another actor): refused
  caf::scoped_actor replayer{cs.sys, true};
  auto replay = [&](auto atom, const peer_seal& seal, const auto&... xs) {
    return ask(replayer, atom, seal, xs...);
  };
  CHECK(code_of(replay(offer_atom::value, offer_seal, offer)) == errc::access_denied);
  CHECK(code_of(replay(chunk_atom::value, chunk1_seal, chunk1)) == errc::access_denied);
  // the transfer goes on as if nothing happened and delivers exactly the sent bytes
  auto st = me->stats();
  REQUIRE(st);
  CHECK(st->transmits_in == 1);
  CHECK(st->peer_messages_refused == 8); // 6 forged (the abort too), 2 replayed
  std::vector<char> rest(data.begin() + 4096, data.end());
  transmit_chunk chunk2{0x4280, 9, 4096, XXH3_64bits(rest.data(), rest.size()), rest};
  REQUIRE_FALSE(send(chunk_atom::value, link.seal(chunk_atom::value, chunk2), chunk2));
  REQUIRE_FALSE(send(commit_atom::value, link.seal(commit_atom::value, uint64_t{9}, hash),
                     uint64_t{9}, hash));
  auto sealed = me->lookup("sealed");
  REQUIRE(sealed);
  auto bytes = me->read(*sealed, 0, sealed->size);
  REQUIRE(bytes);
  CHECK(*bytes == data);
  // control: the peer's own version request, sealed with the link's key, is answered
  caf::error version_error;
  x->request(link.gateway, 10s, version_atom::value, link.seal(version_atom::value, *published),
             *published)
    .receive(
      [&](uint64_t v, peer_seal& seal) {
        // the engine's answer is sealed with its key of the link
        CHECK_FALSE(link.answers.open_answer(seal, version_atom::value, v));
      },
      [&](caf::error& e) { version_error = std::move(e); });
  CHECK_MESSAGE(!version_error, describe(version_error));
  REQUIRE(me->remove("published"));
  REQUIRE(me->remove("sealed"));
  auto after = me->stats();
  REQUIRE(after);
  CHECK(after->peer_messages_refused == 8);
  CHECK(after->blocks == before->blocks + after->cache_entries - before->cache_entries);
  CHECK(after->transmits_in == 0);
}
