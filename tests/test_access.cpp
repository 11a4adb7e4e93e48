// Access and leakage: a process never reads or maps another process's block without a grant —
// through the engine, through views, with forged or replayed block_refs (every block index with
// several generations, forged engine ids), with forged sessions; a block that changes hands is
// scrubbed; the shared-memory objects have the configured owner, group and mode, and a process of
// another Unix user cannot open them (one of the configured engine.group can).
#include "test_names.hpp"

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <variant>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <vector>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "memory_manager.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"
#include "support/fake_peer.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::child_process;
using test::client_system;
using test::daemon_process;
using test::eventually;

namespace {

std::string attacker_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-attacker";
}

std::string transport_name(local_transport t) {
  return t == local_transport::shm ? "shm" : "basp";
}

// A cafshm-attacker process: one command line in, one answer line out.
struct attacker {
  child_process process;
  process_id slot{};
  uint64_t engine_id = 0;

  explicit attacker(const daemon_process& d, local_transport transport,
                    const std::string& name = "attacker")
    : process({attacker_bin(), "--engine", d.address_text(), "--name",
               name, "--transport", transport_name(transport)}) {
    auto ready = process.wait_for_line("ready ", 30s);
    REQUIRE(ready);
    std::istringstream in{*ready};
    std::string used;
    uint32_t n = 0;
    in >> n >> engine_id >> used;
    slot = process_id{n}; // as the attacker printed it
    CHECK(used == transport_name(transport)); // its requests take the path under test
  }

  std::string ask(const std::string& command) {
    REQUIRE(process.write_stdin(command + "\n"));
    auto answer = process.read_line(120s);
    REQUIRE(answer);
    return *answer;
  }

  static std::string ref(const block_ref& r) {
    return std::to_string(r.engine) + " " + std::to_string(r.block) + " "
           + std::to_string(r.generation) + " " + std::to_string(r.size);
  }
};

const std::string all_denied = "probe read=access_denied map=access_denied "
                               "map_rw=access_denied write=access_denied copy=access_denied "
                               "free=access_denied share=access_denied "
                               "transfer=access_denied name=access_denied export=access_denied";

std::string stale_everything() {
  std::string out = "probe";
  for (const char* op : {"read", "map", "map_rw", "write", "copy", "free", "share", "transfer",
                         "name", "export"})
    out += std::string{" "} + op + "=stale_block";
  return out;
}

} // namespace

void attacker_never_gets_in(local_transport transport) {
  // 256 blocks, so that every index can be tried with several generations.
  daemon_process d{test::unique_name("cafshm-test-acc"), "16MiB", 0, "  max_blocks: 256\n"};
  REQUIRE(d.ready());
  client_system cs{transport};
  auto victim = client::connect(cs.sys, d.address(), "victim");
  REQUIRE(victim);
  CHECK(victim->transport() == transport);
  // Churn, so that generations 0..3 exist at many indexes, then the secret.
  for (int round = 0; round < 3; ++round) {
    std::vector<block_ref> refs;
    for (int i = 0; i < 40; ++i) {
      auto r = victim->allocate(4096);
      REQUIRE(r);
      refs.push_back(*r);
    }
    for (auto& r : refs)
      REQUIRE(victim->free(r));
  }
  constexpr uint64_t secret_size = 12345;
  auto secret = victim->allocate(secret_size);
  REQUIRE(secret);
  std::string text(secret_size, 's');
  REQUIRE(victim->write(*secret, 0, text));
  auto bystander = victim->allocate(secret_size); // a second one, written through a view
  REQUIRE(bystander);
  {
    auto v = victim->map(*bystander, access_mode::read_write);
    REQUIRE(v);
    std::memset(v->data(), 'b', v->size());
    REQUIRE(victim->unmap(std::move(*v)));
  }
  attacker a{d, transport};
  CHECK(a.engine_id == victim->info().engine_id);
  auto engine = std::to_string(a.engine_id);

  SUBCASE("every index x 6 generations with the exact size: nothing readable or mappable") {
    auto answer = a.ask("brute " + engine + " " + std::to_string(secret_size) + " 256 6");
    CHECK(answer.find(" allowed=none ") != std::string::npos);
    // Only the two answers that reveal nothing: no such block, or not yours.
    CHECK(answer.substr(answer.find("codes=")) == "codes=access_denied,stale_block");
  }
  SUBCASE("forged engine ids: nothing") {
    for (uint64_t forged : {a.engine_id ^ 1, a.engine_id + 1, uint64_t{0}, ~a.engine_id}) {
      auto answer = a.ask("brute " + std::to_string(forged) + " " + std::to_string(secret_size)
                          + " 256 2");
      CHECK(answer.find(" allowed=none ") != std::string::npos);
      CHECK(answer.substr(answer.find("codes=")) == "codes=stale_block");
    }
  }
  SUBCASE("the exact ref, every request: denied") {
    CHECK(a.ask("probe " + attacker::ref(*secret)) == all_denied);
    CHECK(a.ask("hash " + attacker::ref(*bystander)) == "denied access_denied");
  }
  SUBCASE("forged sessions of the victim's slot: refused, the victim keeps working") {
    auto answer = a.ask("sessions " + to_string(victim->id()) + " 300");
    CHECK(answer == "sessions tried=900 accepted=0");
    if (transport == local_transport::shm) // straight into the engine's request inbox too
      CHECK(a.ask("forge " + to_string(victim->id()) + " 100") == "forge sent=700");
    auto back = victim->read(*secret, 0, 5);
    REQUIRE(back);
    CHECK(std::string(back->begin(), back->end()) == "sssss");
  }
  SUBCASE("a grant gives exactly its right; after revoke and free, replayed refs are refused") {
    REQUIRE(victim->share(*secret, a.slot, access_mode::read));
    CHECK(a.ask("probe " + attacker::ref(*secret))
          == "probe read=ok map=ok map_rw=access_denied write=access_denied copy=ok "
             "free=access_denied share=access_denied transfer=access_denied "
             "name=access_denied export=access_denied");
    CHECK(a.ask("hash " + attacker::ref(*secret))
          == "hash " + [&] {
               char buf[17];
               std::snprintf(buf, sizeof(buf), "%016llx",
                             static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
               return std::string{buf};
             }());
    REQUIRE(victim->share(*secret, a.slot, access_mode::read_write));
    auto rw = a.ask("probe " + attacker::ref(*secret));
    CHECK(rw.find("map_rw=ok write=ok") != std::string::npos);
    CHECK(rw.find("free=access_denied share=access_denied transfer=access_denied") != std::string::npos);
    REQUIRE(victim->revoke(*secret, a.slot));
    CHECK(a.ask("probe " + attacker::ref(*secret)) == all_denied); // the replayed ref
    // Freed and the index reused by a new block of the same size: the old ref is stale, the
    // new one (next generation) is not the attacker's either.
    auto old = *secret;
    REQUIRE(victim->free(*secret));
    auto reused = victim->allocate(secret_size);
    REQUIRE(reused);
    CHECK(a.ask("probe " + attacker::ref(old)) == stale_everything());
    CHECK(a.ask("probe " + attacker::ref(*reused)) == all_denied);
    auto answer = a.ask("brute " + engine + " " + std::to_string(secret_size) + " 256 8");
    CHECK(answer.find(" allowed=none ") != std::string::npos);
    secret = reused;
  }
  // The victim's blocks are intact and the denied attempts changed nothing.
  auto back = victim->read(*bystander, 0, 3);
  REQUIRE(back);
  CHECK(std::string(back->begin(), back->end()) == "bbb");
  auto st = victim->stats();
  REQUIRE(st);
  CHECK(st->processes == 2);
  CHECK(st->blocks == 3); // secret, bystander, the attacker's scratch block
  CHECK(st->grants == 0);
  CHECK(st->names == 0);
}

TEST_CASE("access: an attacker process never gets at a victim's block without a grant [shm]") {
  attacker_never_gets_in(local_transport::shm);
}

TEST_CASE("access: an attacker process never gets at a victim's block without a grant [basp]") {
  attacker_never_gets_in(local_transport::basp);
}

void held_copies_stay_hidden(local_transport transport) {
  // B keeps a cached copy of every block it receives, and holds blocks being received; both
  // are held by the engine, whose published blocks every process may read: these must not be.
  daemon_process a{test::unique_name("cafshm-test-acc"), "16MiB", 0, "remote:\n  cache: 0\n"};
  daemon_process b{test::unique_name("cafshm-test-acc"), "16MiB", 0,
                   "  max_blocks: 256\nremote:\n  cache: 8MiB\n"};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs{transport};
  auto sender = client::connect(cs.sys, a.address(), "sender");
  auto sink = client::connect(cs.sys, b.address(), "sink");
  REQUIRE(sender);
  REQUIRE(sink);
  attacker thief{b, transport};
  auto engine = std::to_string(thief.engine_id);
  constexpr uint64_t size = 20000;
  auto ref = sender->allocate(size);
  REQUIRE(ref);
  REQUIRE(sender->write(*ref, 0, std::string(size, 'p')));
  auto to_b = b.address_text();
  transmit_target target;
  target.process = "sink";
  auto receipt = sender->transmit(*ref, to_b, target);
  REQUIRE_MESSAGE(receipt, cafshm_test::why(receipt));
  auto st = sink->stats();
  REQUIRE(st);
  CHECK(st->cache_entries == 1); // the engine's own copy, besides the sink's block
  auto brute = "brute " + engine + " " + std::to_string(size) + " 256 4";
  auto answer = thief.ask(brute);
  CHECK(answer.find(" allowed=none ") != std::string::npos);
  // A block in flight: a peer's offer (played by this test) is held by B until committed.
  auto b_engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(b_engine);
  caf::scoped_actor self{cs.sys, true};
  constexpr uint64_t partial = 30000;
  caf::error link_error;
  auto link = test::link_fake_peer(self, *b_engine, 4242, link_error);
  REQUIRE_MESSAGE(link.token != 0, describe(link_error));
  auto token = link.token;
  // With a digest (B keeps a cache, which asks for one); never committed, so any will do.
  transmit_offer offer{4242, 1, partial, 0x5ec2e7, 4096, {}, {}, 0, false};
  self->request(link.gateway, 10s, offer_atom::value, token, offer)
    .receive([](transmit_receipt&) {}, [](caf::error& e) { FAIL(describe(e)); });
  self->request(link.gateway, 10s, chunk_atom::value, token,
                transmit_chunk{4242, 1, 0, XXH3_64bits("secret", 6), std::vector<char>{'s', 'e', 'c', 'r', 'e', 't'}})
    .receive([](done_atom) {}, [](caf::error& e) { FAIL(describe(e)); });
  answer = thief.ask("brute " + engine + " " + std::to_string(partial) + " 256 4");
  CHECK(answer.find(" allowed=none ") != std::string::npos);
  self->send(link.gateway, abort_atom::value, token, uint64_t{1});
  // The control: a block sent to B without a target process is published there (held by the
  // engine for every process): the same search finds it, so the searches above were real.
  auto published = sender->transmit(*ref, to_b, transmit_target{});
  REQUIRE(published);
  answer = thief.ask(brute);
  CHECK(answer.find(" allowed=" + std::to_string(published->remote.block) + ":"
                    + std::to_string(published->remote.generation))
        != std::string::npos);
  REQUIRE(sink->free(receipt->remote));
  REQUIRE(sender->free(*ref));
}

TEST_CASE("access: copies an engine holds for others (transfers in flight, cache) stay hidden [shm]") {
  held_copies_stay_hidden(local_transport::shm);
}

TEST_CASE("access: copies an engine holds for others (transfers in flight, cache) stay hidden [basp]") {
  held_copies_stay_hidden(local_transport::basp);
}

void scrubbed_for_next_owner(local_transport transport) {
  for (const char* scrub : {"on-free", "on-allocate"}) {
    CAPTURE(scrub);
    daemon_process d{test::unique_name("cafshm-test-acc"), "16MiB", 0,
                     std::string{"  scrub: "} + scrub + "\n"};
    REQUIRE(d.ready());
    client_system cs{transport};
    auto victim = client::connect(cs.sys, d.address(), "victim");
    REQUIRE(victim);
    // Blocks written by request and through views, then freed; one freed while its view is
    // open (drained on unmap); one transferred to a process that is then killed.
    std::vector<block_ref> refs;
    for (uint64_t size : {uint64_t{1} << 20, uint64_t{3} << 20, uint64_t{4096}, uint64_t{100000}}) {
      auto r = victim->allocate(size);
      REQUIRE(r);
      auto v = victim->map(*r, access_mode::read_write);
      REQUIRE(v);
      std::memset(v->data(), 0xA5, v->size());
      REQUIRE(victim->unmap(std::move(*v)));
      REQUIRE(victim->write(*r, 0, std::string(std::min<uint64_t>(size, 5000), 'w')));
      refs.push_back(*r);
    }
    auto draining = victim->map(refs[1], access_mode::read_write);
    REQUIRE(draining);
    for (auto& r : refs)
      REQUIRE(victim->free(r));
    std::memset(draining->data(), 0x5A, draining->size()); // still mapped: writes after free
    REQUIRE(victim->unmap(std::move(*draining)));
    child_process writer{{std::string{CAFSHM_BIN_DIR} + "/cafshm-test-peer", "writer",
                          "--engine", d.address_text(), "--name",
                          "writer", "--blocks", "5", "--size", std::to_string(1 << 20)}};
    REQUIRE(writer.wait_for_line("writing ", 30s));
    writer.kill(SIGKILL);
    REQUIRE(writer.wait(20s));
    // Once everything is back, a new process takes the whole arena in one block: all zeros.
    REQUIRE(eventually(*victim, 10s, [](const engine_stats& st) {
      return st.processes == 1 && st.free_bytes == st.arena_bytes;
    }));
    attacker a{d, transport};
    // (but for the attacker's own 8 KiB scratch block)
    CHECK(a.ask("fill") == "fill nonzero=0 bytes=" + std::to_string((16 << 20) - 8192));
    CHECK(a.ask("fresh 12345") == "fresh nonzero=0");
  }
}

TEST_CASE("scrubbing: what one process wrote is zeros for the next owner, in every way it ends [shm]") {
  scrubbed_for_next_owner(local_transport::shm);
}

TEST_CASE("scrubbing: what one process wrote is zeros for the next owner, in every way it ends [basp]") {
  scrubbed_for_next_owner(local_transport::basp);
}

namespace {

// Mode and owner of /dev/shm/<object>.
struct stat shm_stat(const std::string& object) {
  struct stat st {};
  REQUIRE(::stat(("/dev/shm/" + object).c_str(), &st) == 0);
  return st;
}

// Whether a process with uid/gid `id` (supplementary groups `groups`) can open `object` with
// `flags`: forks (this test process runs no other threads here), drops privileges, tries.
bool can_open_as(const std::string& object, int flags, uid_t id, std::vector<gid_t> groups) {
  auto path = "/" + object; // no allocation after fork
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(id) != 0 || ::setuid(id) != 0)
      ::_exit(2);
    int fd = ::shm_open(path.c_str(), flags, 0);
    ::_exit(fd >= 0 ? 0 : errno == EACCES ? 1 : 3);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) <= 1);
  return WEXITSTATUS(status) == 0;
}

constexpr uid_t nobody = 65534;

// A group other than this process's own, for engine.group.
std::optional<std::pair<std::string, gid_t>> other_group() {
  for (const char* name : {"users", "daemon", "staff", "nogroup"})
    if (auto* g = ::getgrnam(name); g != nullptr && g->gr_gid != ::getegid())
      return std::make_pair(std::string{name}, g->gr_gid);
  return std::nullopt;
}

} // namespace

TEST_CASE("segment permissions: 0600 by default, engine.permissions, owned by the engine's user") {
  for (uint32_t mode : {0600u, 0640u}) {
    engine_settings s;
    s.name = cafshm::test::unique_name("cafshm-test-perm");
    s.arena_bytes = 1 << 20;
    s.permissions = mode;
    cafshm_test::segment_guard guard{s.name};
    auto mm = memory_manager::create(s);
    REQUIRE(mm);
    for (const auto& object : {guard.data(), guard.admin()}) {
      auto st = shm_stat(object);
      CHECK((st.st_mode & 07777) == mode);
      CHECK(st.st_uid == ::geteuid());
      CHECK(st.st_gid == ::getegid());
    }
    if (::geteuid() == 0) { // another user (nobody) cannot open them, not even read-only
      CHECK_FALSE(can_open_as(guard.data(), O_RDONLY, nobody, {}));
      CHECK_FALSE(can_open_as(guard.admin(), O_RDONLY, nobody, {}));
    }
  }
}

TEST_CASE("engine.group: both segments get the group and group rw, only its members open them") {
  auto group = other_group();
  if (!group) {
    MESSAGE("no second group on this system: skipped");
    return;
  }
  engine_settings s;
  s.name = cafshm::test::unique_name("cafshm-test-group");
  s.arena_bytes = 1 << 20;
  s.group = group->first;
  cafshm_test::segment_guard guard{s.name};
  auto mm = memory_manager::create(s);
  if (!mm && ::geteuid() != 0) {
    MESSAGE("this user is not a member of " << group->first << ": " << cafshm_test::why(mm));
    CHECK(code_of(mm.error()) == errc::segment_error);
    return;
  }
  REQUIRE_MESSAGE(mm, cafshm_test::why(mm));
  for (const auto& object : {guard.data(), guard.admin()}) {
    auto st = shm_stat(object);
    CHECK((st.st_mode & 07777) == 0660);
    CHECK(st.st_gid == group->second);
  }
  if (::geteuid() == 0) {
    CHECK(can_open_as(guard.data(), O_RDWR, nobody, {group->second}));
    CHECK(can_open_as(guard.admin(), O_RDONLY, nobody, {group->second}));
    CHECK_FALSE(can_open_as(guard.data(), O_RDONLY, nobody, {}));
    CHECK_FALSE(can_open_as(guard.admin(), O_RDONLY, nobody, {}));
  }
}

TEST_CASE("engine.group: an unknown group is a configuration error, in YAML and at creation") {
  auto result = parse_config("engine:\n  group: no-such-group-cafshm\n", "g.yaml");
  REQUIRE(std::holds_alternative<config_error>(result));
  auto err = std::get<config_error>(result);
  CHECK(err.key == "engine.group");
  CHECK(err.line == 2);
  CHECK(err.reason.find("no-such-group-cafshm") != std::string::npos);
  engine_settings s;
  s.name = cafshm::test::unique_name("cafshm-test-group");
  s.group = "no-such-group-cafshm";
  cafshm_test::segment_guard guard{s.name};
  auto mm = memory_manager::create(s);
  REQUIRE_FALSE(mm);
  CHECK(code_of(mm.error()) == errc::config_error);
  CHECK_FALSE(shm_segment::exists(guard.data()));
  if (auto group = other_group()) {
    auto ok = parse_config("engine:\n  group: " + group->first + "\n");
    REQUIRE(std::holds_alternative<settings>(ok));
    CHECK(std::get<settings>(ok).engine.group == group->first);
  }
}

namespace {

// A Unix user that exists for one test: useradd when made, userdel when it goes out of scope
// (also when the test fails). Needs root; `uid` is 0 when it could not be created.
struct temporary_user {
  std::string name = "cafshmt" + std::to_string(::getpid());
  uid_t uid = 0;
  gid_t gid = 0;
  temporary_user() {
    if (::geteuid() != 0)
      return;
    auto cmd = "useradd --system --no-create-home --shell /usr/sbin/nologin " + name
               + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      return;
    if (auto* pw = ::getpwnam(name.c_str()); pw != nullptr) {
      uid = pw->pw_uid;
      gid = pw->pw_gid;
    }
  }
  ~temporary_user() {
    if (::geteuid() == 0)
      std::system(("userdel " + name + " >/dev/null 2>&1").c_str());
  }
  explicit operator bool() const { return uid != 0; }
};

// As `user` (in a child process): creates /dev/shm/<object> with a formatted-looking admin
// header that names `pid` as its engine, mode 0644 so that anyone may read it.
void squat_as(const temporary_user& user, const std::string& object, int32_t pid) {
  admin::admin_header h{};
  h.magic = admin::magic;
  h.layout_version = admin::layout_version;
  h.header_bytes = sizeof(h);
  h.engine_id = 42;
  h.engine_pid = pid;
  auto path = "/" + object;
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0)
      ::_exit(2);
    int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || ::fchmod(fd, 0644) != 0
        || ::write(fd, &h, sizeof(h)) != static_cast<ssize_t>(sizeof(h)))
      ::_exit(3);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

} // namespace

TEST_CASE("squatting: segments of another user are neither adopted nor removed, and the engine "
          "says whose they are") {
  temporary_user squatter;
  if (!squatter) {
    MESSAGE("needs root and useradd to create a second user: skipped");
    return;
  }
  engine_settings s;
  s.name = cafshm::test::unique_name("cafshm-test-squat");
  s.arena_bytes = 1 << 20;
  cafshm_test::segment_guard guard{s.name};
  SUBCASE("a pre-created admin segment with pid 1 as its engine") {
    squat_as(squatter, guard.admin(), 1);
  }
  SUBCASE("a pre-created data segment") {
    squat_as(squatter, guard.data(), 1);
  }
  auto mm = memory_manager::create(s);
  REQUIRE_FALSE(mm);
  CHECK(code_of(mm.error()) == errc::segment_error);
  auto text = describe(mm.error());
  CHECK_MESSAGE(text.find("uid " + std::to_string(squatter.uid)) != std::string::npos, text);
  CHECK_MESSAGE(text.find("rm /dev/shm/") != std::string::npos, text);
  CHECK(text.find("running engine") == std::string::npos); // not mistaken for a live engine
  // left as it was: still there, still the squatter's
  auto object = shm_segment::exists(guard.admin()) ? guard.admin() : guard.data();
  struct stat st {};
  REQUIRE(::stat(("/dev/shm/" + object).c_str(), &st) == 0);
  CHECK(st.st_uid == squatter.uid);
  // once the owner (here root, for it) removes it, the engine starts
  shm_segment::remove(guard.admin());
  shm_segment::remove(guard.data());
  auto started = memory_manager::create(s);
  REQUIRE_MESSAGE(started, cafshm_test::why(started));
  CHECK((*started)->header().engine_pid == ::getpid());
}

void limits_through_cafshmd(local_transport transport) {
  daemon_process d{cafshm::test::unique_name("cafshm-test-limits"), "64MiB", 0,
                   "  default_quota: 32MiB\n  max_copy_ranges: 1024\n"};
  client_system cs{transport};
  SUBCASE("a client asking for 2^62 bytes of quota is refused, a smaller quota is kept") {
    attacker a{d, transport};
    CHECK(a.ask("quota 4611686018427387904") == "quota quota_exceeded 0");
    CHECK(a.ask("quota 0") == "quota ok 33554432");
    CHECK(a.ask("quota 65536") == "quota ok 65536");
  }
  SUBCASE("an attacker registered first as \"consumer\": the real consumer is refused, "
          "find_process finds the only one") {
    attacker a{d, transport, "consumer"};
    auto consumer = client::connect(cs.sys, endpoint{"127.0.0.1", d.port()}, "consumer");
    REQUIRE_FALSE(consumer);
    CHECK(code_of(consumer.error()) == errc::process_name_taken);
    client_options unique;
    unique.unique_name = true;
    auto second = client::connect(cs.sys, endpoint{"127.0.0.1", d.port()}, "consumer", unique);
    REQUIRE_OK(second);
    auto producer = client::connect(cs.sys, endpoint{"127.0.0.1", d.port()}, "producer");
    REQUIRE_OK(producer);
    CHECK(*producer->find_process("consumer") == a.slot);
    CHECK(*producer->find_process("consumer-2") == second->id());
  }
  SUBCASE("8000 ranges of 16 MiB in one copy are refused at once; another client is served") {
    attacker a{d, transport};
    auto victim = client::connect(cs.sys, endpoint{"127.0.0.1", d.port()}, "victim");
    REQUIRE_OK(victim);
    CHECK(a.ask("copyflood 8000 16777216") == "copyflood request_too_large");
    CHECK(a.ask("copyflood 1025 4096") == "copyflood request_too_large");
    CHECK(a.ask("copyflood 1024 4096") == "copyflood ok");
    CHECK_OK(victim->stats());
  }
}

TEST_CASE("limits through cafshmd: quota asked by the client, a name squatted first, a copy flood [shm]") {
  limits_through_cafshmd(local_transport::shm);
}

TEST_CASE("limits through cafshmd: quota asked by the client, a name squatted first, a copy flood [basp]") {
  limits_through_cafshmd(local_transport::basp);
}
