// Adoption of a dead engine's segments (memory_manager::create over segments whose engine died):
// what a new engine keeps (processes that still run, with their blocks, grants, names, views and
// bytes; the engine id, so old refs stay valid), what it reclaims (ended processes, zombies,
// reused pids, unverified pids, the dead engine's own views and private blocks), and when it
// refuses and starts fresh instead (another layout version, another geometry, an engine that
// died in the middle of a change, corrupt admin memory), saying why in one line.
// The dead engine runs in a forked child that ends without running any destructor, as a killed
// engine leaves its segments.

#include "test_names.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin_layout.hpp"
#include "memory_manager.hpp"
#include "process_identity.hpp"

using namespace cafshm;
using cafshm_test::segment_guard;
using cafshm_test::unique_name;

namespace {

engine_settings settings_named(const std::string& what) {
  engine_settings s;
  s.name = unique_name("cafshm-test-" + what);
  s.arena_bytes = 1 << 20;
  s.min_block_bytes = 4096;
  s.max_processes = 8;
  return s;
}

std::span<const char> bytes_of(const std::string& text) {
  return {text.data(), text.size()};
}

// What the dead engine handed out, passed from the child to the test through a pipe.
struct dead_engine_state {
  uint64_t engine_id = 0;
  session alive;       // registered with this test process's pid
  session ended;       // registered with a pid that no longer runs
  session unverified;  // registered without a pid (as engine.unauthenticated_tcp does)
  session zombie;      // registered with a process that is a zombie at adoption
  block_ref kept;      // alive's, named "kept", written, mapped by alive
  block_ref ended_block; // ended's, named "ended", shared with alive, mapped by alive
  block_ref published; // alive's, named "published", given to the engine
  block_ref hidden;    // an unnamed engine-held block (a private copy)
  bool ok = false;
};

// Runs `work` as an engine in a forked child that then ends without destructors (its segments
// stay; its lock goes with it); returns what `work` reported.
dead_engine_state run_dead_engine(const engine_settings& s,
                                  std::function<void(memory_manager&, dead_engine_state&)> work) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    dead_engine_state st;
    auto mm = memory_manager::create(s);
    if (mm) {
      st.engine_id = (*mm)->engine_id();
      work(**mm, st);
      (*mm).release(); // never run the destructor: the engine dies with its segments in place
    }
    (void) !::write(fds[1], &st, sizeof(st));
    ::_exit(0);
  }
  ::close(fds[1]);
  dead_engine_state st;
  auto n = ::read(fds[0], &st, sizeof(st));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(n == static_cast<ssize_t>(sizeof(st)));
  return st;
}

// A typical dead engine: the four processes and blocks of dead_engine_state.
void typical_work(memory_manager& mm, dead_engine_state& st, pid_t alive_pid, pid_t ended_pid,
                  pid_t zombie_pid) {
  auto must = [&](bool x) { st.ok = st.ok && x; };
  st.ok = true;
  auto alive = mm.register_process("alive", alive_pid, 0);
  auto ended = mm.register_process("ended", ended_pid, 0);
  auto unverified = mm.register_process("unverified", 0, 0);
  auto zombie = mm.register_process("zombie", zombie_pid, 0);
  must(alive && ended && unverified && zombie);
  if (!st.ok)
    return;
  st.alive = alive->session;
  st.ended = ended->session;
  st.unverified = unverified->session;
  st.zombie = zombie->session;
  auto kept = mm.allocate(st.alive, 10000);
  must(kept && mm.write(st.alive, *kept, 0, bytes_of("kept bytes")) && mm.name(st.alive, *kept, "kept")
       && mm.map(st.alive, *kept, access_mode::read_write));
  st.kept = *kept;
  auto eb = mm.allocate(st.ended, 5000);
  must(eb && mm.name(st.ended, *eb, "ended")
       && mm.share(st.ended, *eb, st.alive.process, access_mode::read)
       && mm.map(st.alive, *eb, access_mode::read));
  st.ended_block = *eb;
  auto pub = mm.allocate(st.alive, 3000);
  must(pub && mm.name(st.alive, *pub, "published"));
  auto given = mm.transfer(st.alive, *pub, process_id::engine);
  must(static_cast<bool>(given));
  st.published = *given;
  for (auto s : {st.unverified, st.zombie}) // blocks of processes that will not be kept
    must(static_cast<bool>(mm.allocate(s, 4096)));
  auto hidden = mm.allocate(mm.engine_session(), 8192);
  must(static_cast<bool>(hidden));
  mm.conceal(*hidden, true);
  st.hidden = *hidden;
  // the engine pins alive's block with a view of its own (as a transfer it sends does)
  must(static_cast<bool>(mm.map(mm.engine_session(), st.kept, access_mode::read)));
  must(mm.check().empty());
}

// A child that blocks until `release` is closed, then exits (and stays a zombie until reaped).
pid_t spawn_waiter(int& release) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[1]);
    char c;
    (void) !::read(fds[0], &c, 1);
    ::_exit(0);
  }
  ::close(fds[0]);
  release = fds[1];
  return pid;
}

bool becomes_zombie(pid_t pid) {
  for (int i = 0; i < 2000; ++i) { // up to 10 s
    if (!start_ticks_of(pid))
      return true;
    ::poll(nullptr, 0, 5);
  }
  return false;
}

pid_t ended_pid() {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0)
    ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("adoption: processes that still run keep sessions, blocks, grants, names, views, bytes") {
  auto s = settings_named("adopt");
  segment_guard guard{s.name};
  int release = -1;
  pid_t zombie = spawn_waiter(release);
  pid_t gone = ended_pid();
  auto st = run_dead_engine(s, [&](memory_manager& mm, dead_engine_state& out) {
    typical_work(mm, out, ::getppid(), gone, zombie);
  });
  REQUIRE(st.ok);
  ::close(release); // the zombie's process ends now, and is not reaped until the end
  REQUIRE(becomes_zombie(zombie));

  auto created = memory_manager::create(s);
  REQUIRE_MESSAGE(static_cast<bool>(created), cafshm_test::why(created));
  auto& mm = **created;
  CHECK(mm.adopted());
  MESSAGE(mm.start_report());
  CHECK(contains(mm.start_report(), "adopted the segments of a dead engine"));
  CHECK(contains(mm.start_report(), "1 processes kept, 3 reclaimed"));
  CHECK(contains(mm.start_report(), "1 private engine blocks freed"));
  CHECK(mm.check() == "");
  CHECK(mm.engine_id() == st.engine_id);
  CHECK(mm.header().engine_pid == ::getpid());
  CHECK(mm.header().adoptions == 1);
  CHECK(mm.live_processes() == std::vector<process_id>{st.alive.process});

  // No session is valid until its process re-attaches through the door's credentials.
  CHECK(cafshm_test::errc_of(mm.allocate(st.alive, 10)) == errc::unknown_process);
  CHECK(cafshm_test::errc_of(mm.reattach(st.alive, 1)) == errc::access_denied); // another pid
  for (auto gone_session : {st.ended, st.unverified, st.zombie})
    CHECK(cafshm_test::errc_of(mm.reattach(gone_session, ::getpid())) == errc::unknown_process);
  auto back = mm.reattach(st.alive, ::getpid());
  REQUIRE_OK(back);
  CHECK(back->engine_id == st.engine_id);
  CHECK(back->session == st.alive);
  auto other = st.alive;
  other.token ^= 1;
  CHECK(cafshm_test::errc_of(mm.reattach(other, ::getpid())) == errc::access_denied);

  // The old refs work: bytes, name, the open view (counted), the block given to the engine.
  auto bytes = mm.read(st.alive, st.kept, 0, 10);
  REQUIRE_OK(bytes);
  CHECK(std::string(bytes->begin(), bytes->end()) == "kept bytes");
  auto found = mm.lookup(st.alive, "kept");
  REQUIRE_OK(found);
  CHECK(*found == st.kept);
  CHECK(cafshm_test::errc_of(mm.lookup(st.alive, "published")) == errc::ok);
  CHECK_OK(mm.read(st.alive, st.published, 0, 16));
  CHECK(cafshm_test::errc_of(mm.lookup(st.alive, "ended")) == errc::name_not_found);
  CHECK(cafshm_test::errc_of(mm.read(st.alive, st.ended_block, 0, 1)) == errc::stale_block);
  CHECK(cafshm_test::errc_of(mm.read(mm.engine_session(), st.hidden, 0, 1)) == errc::stale_block);
  auto stats = mm.stats();
  CHECK(stats.processes == 1);
  CHECK(stats.blocks == 3); // kept, published, and the ended process's block, draining
  CHECK(stats.draining_blocks == 1);
  // alive's views: one of its own block (a transfer must wait for it), one of the drained block
  CHECK(cafshm_test::errc_of(mm.transfer(st.alive, st.kept, process_id::engine)) == errc::block_in_use);
  CHECK_OK(mm.unmap(st.alive, st.kept));
  CHECK_OK(mm.unmap(st.alive, st.ended_block));
  stats = mm.stats();
  CHECK(stats.blocks == 2);
  CHECK(stats.draining_blocks == 0);
  CHECK_OK(mm.remove(st.alive, "published"));
  CHECK_OK(mm.free(st.alive, st.kept));
  CHECK_OK(mm.unregister(st.alive));
  stats = mm.stats();
  CHECK(stats.blocks == 0);
  CHECK(stats.free_bytes == stats.arena_bytes);
  CHECK(mm.check() == "");
  ::waitpid(zombie, nullptr, 0);
}

TEST_CASE("adoption: freed memory the dead engine had not zeroed yet is zeroed before anyone "
          "else gets it, also the memory of its kept processes") {
  auto s = settings_named("adopt-scrub");
  s.scrub_delay = std::chrono::minutes{1}; // neither engine's scrubbing thread runs here
  segment_guard guard{s.name};
  std::string secret(64 * 1024, 's');
  auto st = run_dead_engine(s, [&](memory_manager& mm, dead_engine_state& out) {
    auto alive = mm.register_process("alive", ::getppid(), 0);
    out.ok = static_cast<bool>(alive);
    if (!out.ok)
      return;
    out.alive = alive->session;
    auto a = mm.allocate(out.alive, secret.size());
    auto b = mm.allocate(out.alive, secret.size());
    out.ok = a && b && mm.write(out.alive, *a, 0, bytes_of(secret))
             && mm.write(out.alive, *b, 0, bytes_of(secret)) && mm.free(out.alive, *a)
             && mm.scrub_counts().pending_bytes == secret.size();
    out.kept = b ? *b : block_ref{};
  });
  REQUIRE(st.ok);
  auto created = memory_manager::create(s);
  REQUIRE_MESSAGE(static_cast<bool>(created), cafshm_test::why(created));
  auto& mm = **created;
  REQUIRE(mm.adopted());
  // All free memory counts as written: the dead engine's bookkeeping of it is gone.
  CHECK(mm.scrub_counts().pending_bytes == mm.stats().free_bytes);
  REQUIRE_OK(mm.reattach(st.alive, ::getpid()));
  // Even the process that wrote the freed block gets zeros (who wrote it is not known now) ...
  auto again = mm.allocate(st.alive, secret.size());
  REQUIRE_OK(again);
  auto seen = mm.read(st.alive, *again, 0, secret.size());
  REQUIRE_OK(seen);
  CHECK(std::all_of(seen->begin(), seen->end(), [](char c) { return c == 0; }));
  CHECK(mm.scrub_counts().kept_for_writer == 0);
  // ... and its kept block, freed now, is zeroed for another process.
  CHECK_OK(mm.free(st.alive, st.kept));
  auto other = mm.register_process("other", ::getpid(), 0);
  REQUIRE_OK(other);
  std::vector<block_ref> taken;
  while (auto r = mm.allocate(other->session, secret.size()))
    taken.push_back(*r);
  CHECK(taken.size() >= 10);
  for (auto& r : taken) {
    auto bytes = mm.read(other->session, r, 0, secret.size());
    REQUIRE_OK(bytes);
    CHECK(std::all_of(bytes->begin(), bytes->end(), [](char c) { return c == 0; }));
  }
  CHECK(mm.scrub_counts().pending_bytes == 0);
  CHECK(mm.check() == "");
}

TEST_CASE("adoption: a pid that now belongs to a later process is reclaimed (start time differs)") {
  auto s = settings_named("adopt-reuse");
  segment_guard guard{s.name};
  auto st = run_dead_engine(s, [&](memory_manager& mm, dead_engine_state& out) {
    typical_work(mm, out, ::getppid(), ended_pid(), ended_pid());
  });
  REQUIRE(st.ok);
  { // our pid, recorded with another start time: as if we had got the pid of a dead process
    auto seg = shm_segment::open(guard.admin(), true);
    REQUIRE_OK(seg);
    admin::admin_header h;
    std::memcpy(&h, seg->data(), sizeof(h));
    auto* procs = reinterpret_cast<admin::process_entry*>(seg->data() + h.process_offset);
    procs[to_slot(st.alive.process)].start_ticks += 1;
  }
  auto created = memory_manager::create(s);
  REQUIRE_OK(created);
  auto& mm = **created;
  CHECK(mm.adopted());
  CHECK(contains(mm.start_report(), "0 processes kept, 4 reclaimed"));
  CHECK(cafshm_test::errc_of(mm.reattach(st.alive, ::getpid())) == errc::unknown_process);
  auto stats = mm.stats();
  CHECK(stats.blocks == 1); // the block given to the engine stays, charged to nobody
  CHECK(stats.processes == 0);
  CHECK(mm.check() == "");
}

TEST_CASE("adoption refused: the reason in one line, a fresh engine, nothing old readable") {
  auto s = settings_named("adopt-refuse");
  segment_guard guard{s.name};
  auto st = run_dead_engine(s, [&](memory_manager& mm, dead_engine_state& out) {
    typical_work(mm, out, ::getppid(), ended_pid(), ended_pid());
  });
  REQUIRE(st.ok);
  std::string expected;
  auto change_admin = [&](std::function<void(std::byte*, admin::admin_header&)> f) {
    auto seg = shm_segment::open(guard.admin(), true);
    REQUIRE_OK(seg);
    auto& h = *reinterpret_cast<admin::admin_header*>(seg->data());
    f(seg->data(), h);
  };
  SUBCASE("another layout version") {
    change_admin([](std::byte*, admin::admin_header& h) { h.layout_version = 2; });
    expected = "layout version 2, this engine writes version " + std::to_string(admin::layout_version);
  }
  SUBCASE("the dead engine was in the middle of a change") {
    change_admin([](std::byte*, admin::admin_header& h) { h.changing = 1; });
    expected = "died in the middle of a change to admin memory";
  }
  SUBCASE("flipped bytes in the block table") {
    change_admin([&](std::byte* base, admin::admin_header& h) {
      auto* blocks = reinterpret_cast<admin::block_entry*>(base + h.block_offset);
      blocks[st.kept.block].size ^= 0x30000; // another number of pages
    });
    expected = "admin memory is inconsistent: block " + std::to_string(st.kept.block);
  }
  SUBCASE("flipped bytes in the allocator state") {
    change_admin([](std::byte* base, admin::admin_header& h) {
      auto* state = base + h.allocator_offset;
      for (size_t i = 0; i < 64; ++i)
        state[i] = std::byte{0xa5};
    });
    expected = "admin memory is inconsistent";
  }
  SUBCASE("flipped bytes in the header's section offsets") {
    change_admin([](std::byte*, admin::admin_header& h) { h.grant_offset ^= 0xff00ff00ull; });
    expected = "admin memory is inconsistent: a section lies outside the segment";
  }
  SUBCASE("a free list that points outside its table") {
    change_admin([](std::byte*, admin::admin_header& h) { h.free_name_head = 12345; });
    expected = "admin memory is inconsistent: name free list";
  }
  SUBCASE("another arena size in the configuration") {
    s.arena_bytes = 2 << 20;
    expected = "its geometry differs from this configuration";
  }
  auto created = memory_manager::create(s);
  REQUIRE_OK(created);
  auto& mm = **created;
  CHECK_FALSE(mm.adopted());
  MESSAGE(mm.start_report());
  CHECK(contains(mm.start_report(), "not adopting the segments of a dead engine: "));
  CHECK_MESSAGE(contains(mm.start_report(), expected), mm.start_report());
  CHECK(mm.start_report().find('\n') == std::string::npos);
  CHECK(mm.engine_id() != st.engine_id);
  CHECK(mm.stats().blocks == 0);
  CHECK(mm.stats().free_bytes == s.arena_bytes);
  CHECK(cafshm_test::errc_of(mm.reattach(st.alive, ::getpid())) == errc::unknown_process);
  auto p = mm.register_process("new", ::getpid(), 0);
  REQUIRE_OK(p);
  CHECK(cafshm_test::errc_of(mm.read(p->session, st.kept, 0, 1)) == errc::stale_block);
  CHECK(cafshm_test::errc_of(mm.lookup(p->session, "kept")) == errc::name_not_found);
  CHECK(cafshm_test::errc_of(mm.allocate(st.alive, 10)) == errc::unknown_process);
  // fresh memory: the old bytes are gone
  auto fresh = mm.allocate(p->session, 10000);
  REQUIRE_OK(fresh);
  auto bytes = mm.read(p->session, *fresh, 0, 10);
  REQUIRE_OK(bytes);
  CHECK(std::string(bytes->begin(), bytes->end()) == std::string(10, '\0'));
  CHECK(mm.check() == "");
}

TEST_CASE("adoption: kept processes answer to their user's engine.quotas rule together again") {
  auto me = own_credentials();
  auto s = settings_named("adopt-quota");
  s.quotas = {{std::to_string(me.uid), "", 64 * 1024}}; // this user's processes: 64 KiB together
  segment_guard guard{s.name};
  // Two processes of this user (both the test process, as the door would have vouched for
  // it); a holds 32 KiB of the rule's 64 when the engine dies.
  auto st = run_dead_engine(s, [&](memory_manager& mm, dead_engine_state& out) {
    auto ra = mm.register_process("a", ::getppid(), 0, me);
    auto rb = mm.register_process("b", ::getppid(), 0, me);
    out.ok = ra && rb && mm.allocate(ra->session, 32 * 1024);
    if (out.ok) {
      out.alive = ra->session;
      out.ended = rb->session; // not ended: the second process of the user, kept as well
    }
  });
  REQUIRE(st.ok);
  auto a = st.alive;
  auto b = st.ended;
  auto created = memory_manager::create(s);
  REQUIRE_OK(created);
  auto& mm = **created;
  REQUIRE(mm.adopted());
  CHECK(contains(mm.start_report(), "2 processes kept, 0 reclaimed"));
  REQUIRE_OK(mm.reattach(a, ::getpid()));
  REQUIRE_OK(mm.reattach(b, ::getpid()));
  // Each alone is within its own 64 KiB; together with a's 32 KiB, 48 more exceed the rule.
  CHECK_ERRC(mm.allocate(b, 48 * 1024), errc::quota_exceeded);
  auto fits = mm.allocate(b, 32 * 1024);
  REQUIRE_OK(fits);
  CHECK_ERRC(mm.allocate(a, 4096), errc::quota_exceeded);
  // A process of the same user registering after the adoption counts with the kept ones.
  auto c = mm.register_process("c", ::getpid(), 0, me);
  REQUIRE_OK(c);
  CHECK_ERRC(mm.allocate(c->session, 4096), errc::quota_exceeded);
  CHECK_OK(mm.free(b, *fits));
  CHECK_OK(mm.allocate(c->session, 4096));
  CHECK(mm.check() == "");
}

TEST_CASE("adoption: kept processes count for their user's engine.default_quota and "
          "engine.max_processes_per_user again") {
  auto me = own_credentials();
  auto s = settings_named("adopt-per-user");
  s.default_quota_bytes = 64 * 1024; // per user: no rule applies to this one
  s.max_processes_per_user = 2;
  segment_guard guard{s.name};
  // Two processes of this user (the test process, as the door vouched for it); a holds 32 KiB
  // of the user's 64 when the engine dies.
  auto st = run_dead_engine(s, [&](memory_manager& mm, dead_engine_state& out) {
    auto ra = mm.register_process("a", ::getppid(), 0, me);
    auto rb = mm.register_process("b", ::getppid(), 0, me);
    out.ok = ra && rb && mm.allocate(ra->session, 32 * 1024);
    if (out.ok) {
      out.alive = ra->session;
      out.ended = rb->session; // not ended: the second process of the user, kept as well
    }
  });
  REQUIRE(st.ok);
  auto created = memory_manager::create(s);
  REQUIRE_OK(created);
  auto& mm = **created;
  REQUIRE(mm.adopted());
  // the kept processes are the user's two: a third is refused, before and after re-attaching
  CHECK_ERRC(mm.register_process("c", ::getpid(), 0, me), errc::too_many_processes);
  REQUIRE_OK(mm.reattach(st.alive, ::getpid()));
  REQUIRE_OK(mm.reattach(st.ended, ::getpid()));
  CHECK_ERRC(mm.register_process("c", ::getpid(), 0, me), errc::too_many_processes);
  // with a's 32 KiB, 48 more of b exceed the user's 64 KiB; 32 fit
  CHECK_ERRC(mm.allocate(st.ended, 48 * 1024), errc::quota_exceeded);
  CHECK_OK(mm.allocate(st.ended, 32 * 1024));
  // another user is counted apart
  auto other = mm.register_process("other", ::getpid(), 0, {me.uid + 1, me.gid + 1});
  REQUIRE_OK(other);
  CHECK_OK(mm.allocate(other->session, 64 * 1024));
  // a's place and bytes come back when it goes
  CHECK_OK(mm.unregister(st.alive));
  auto c = mm.register_process("c", ::getpid(), 0, me);
  REQUIRE_OK(c);
  CHECK_OK(mm.allocate(c->session, 32 * 1024));
  CHECK(mm.check() == "");
}

// The dead engine's arena had grown: the adopting engine reopens every added data segment (the
// table in admin memory names them), checks them with the rest, and the blocks in them keep
// their bytes; a process that ended loses its blocks there, and a segment left empty goes.
TEST_CASE("adoption after growth: every added data segment is reopened and checked") {
  auto s = settings_named("adopt-grown");
  s.max_arena_bytes = 8 << 20;
  segment_guard guard{s.name};
  pid_t gone = ended_pid();
  struct grown_state {
    session alive;
    block_ref in_segment[4]; // alive's block in segment 0, 1, 2, and the ended process's in 3
    uint32_t segments = 0;
    bool ok = false;
  };
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  run_dead_engine(s, [&](memory_manager& mm, dead_engine_state&) {
    grown_state out;
    auto alive = mm.register_process("alive", ::getppid(), 0);
    auto ended = mm.register_process("ended", gone, 0);
    out.ok = alive && ended;
    for (int i = 0; i < 4 && out.ok; ++i) { // 600 KiB each: one per 1 MiB segment
      auto who = i < 3 ? alive->session : ended->session;
      auto ref = mm.allocate(who, 600 << 10);
      auto text = "segment " + std::to_string(i);
      out.ok = ref && mm.write(who, *ref, (600 << 10) - text.size(), bytes_of(text));
      if (out.ok)
        out.in_segment[i] = *ref;
    }
    if (out.ok)
      out.alive = alive->session;
    out.segments = mm.live_segments();
    out.ok = out.ok && mm.check().empty();
    (void) !::write(fds[1], &out, sizeof(out));
  });
  ::close(fds[1]);
  grown_state st;
  REQUIRE(::read(fds[0], &st, sizeof(st)) == static_cast<ssize_t>(sizeof(st)));
  ::close(fds[0]);
  REQUIRE(st.ok);
  REQUIRE(st.segments == 4);
  for (uint32_t i = 1; i < 4; ++i)
    REQUIRE(shm_segment::exists(memory_manager::added_segment_name(s.name, i)));

  SUBCASE("all segments there: adopted") {
    auto created = memory_manager::create(s);
    REQUIRE_OK(created);
    auto& mm = **created;
    CHECK(mm.adopted());
    MESSAGE(mm.start_report());
    CHECK(mm.check() == "");
    // the ended process's block was reclaimed: its segment (3) is empty and goes
    CHECK(mm.live_segments() == 3);
    CHECK_FALSE(shm_segment::exists(memory_manager::added_segment_name(s.name, 3)));
    REQUIRE_OK(mm.reattach(st.alive, ::getpid()));
    for (int i = 0; i < 3; ++i) {
      auto text = "segment " + std::to_string(i);
      auto bytes = mm.read(st.alive, st.in_segment[i], (600 << 10) - text.size(), text.size());
      REQUIRE_OK(bytes);
      CHECK(std::string(bytes->begin(), bytes->end()) == text);
      auto lease = mm.map(st.alive, st.in_segment[i], access_mode::read);
      REQUIRE_OK(lease);
      CHECK(lease->data_segment == (i == 0 ? guard.data()
                                           : memory_manager::added_segment_name(s.name, i)));
      auto mapped = shm_segment::open(lease->data_segment, false, lease->offset, 600 << 10);
      REQUIRE_OK(mapped);
      CHECK(std::string(reinterpret_cast<const char*>(mapped->data()) + (600 << 10) - text.size(),
                        text.size())
            == text);
      CHECK_OK(mm.unmap(st.alive, st.in_segment[i]));
    }
    // and it grows further from there
    auto more = mm.allocate(st.alive, 600 << 10);
    REQUIRE_OK(more);
    CHECK(mm.live_segments() == 4);
    for (int i = 0; i < 3; ++i)
      CHECK_OK(mm.free(st.alive, st.in_segment[i]));
    CHECK_OK(mm.free(st.alive, *more));
    CHECK(mm.live_segments() == 1);
    CHECK(mm.check() == "");
  }
  SUBCASE("an added segment is missing: refused, started fresh, nothing left over") {
    shm_segment::remove(memory_manager::added_segment_name(s.name, 2));
    auto created = memory_manager::create(s);
    REQUIRE_OK(created);
    auto& mm = **created;
    CHECK_FALSE(mm.adopted());
    MESSAGE(mm.start_report());
    CHECK(contains(mm.start_report(), "data segment '"
                                        + memory_manager::added_segment_name(s.name, 2)
                                        + "' of its arena is missing"));
    CHECK(mm.live_segments() == 1);
    for (uint32_t i = 1; i < admin::max_segments; ++i)
      CHECK_FALSE(shm_segment::exists(memory_manager::added_segment_name(s.name, i)));
    CHECK(mm.check() == "");
  }
  SUBCASE("another ceiling in the configuration: refused") {
    s.max_arena_bytes = 16 << 20;
    auto created = memory_manager::create(s);
    REQUIRE_OK(created);
    CHECK_FALSE((*created)->adopted());
    CHECK(contains((*created)->start_report(), "its geometry differs"));
    CHECK_FALSE(shm_segment::exists(memory_manager::added_segment_name(s.name, 1)));
  }
}
