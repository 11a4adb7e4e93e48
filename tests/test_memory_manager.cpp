// Tests of the engine's core (plugin/src/memory_manager.cpp), without CAF actors: admin-memory
// layout, every error code it produces, grants, transfer, names, copy, views and draining,
// reclaim, scrubbing, versions, capacity limits and the two shared-memory segments.

#include "test_names.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin_layout.hpp"
#include "tlsf_allocator.hpp"
#include "memory_manager.hpp"

using namespace cafshm;
using cafshm_test::segment_guard;
using cafshm_test::unique_name;
using cafshm_test::why;

using namespace std::chrono_literals;

namespace {

constexpr uint64_t kib = 1024;
constexpr uint64_t mib = kib * 1024;
constexpr uint64_t gib = mib * 1024;

engine_settings small_settings() {
  engine_settings s;
  s.name = unique_name("cafshm-test-mm");
  s.arena_bytes = 1 * mib;
  s.min_block_bytes = 4 * kib;
  return s;
}

/// One memory manager with its own segments; checks all invariants when the test ends.
struct env {
  segment_guard guard;
  engine_settings settings;
  std::unique_ptr<memory_manager> mm;

  explicit env(std::function<void(engine_settings&)> adjust = {})
    : env(adjusted(std::move(adjust))) {
  }
  explicit env(engine_settings s) : guard(s.name), settings(std::move(s)) {
    auto created = memory_manager::create(settings);
    REQUIRE_MESSAGE(static_cast<bool>(created), cafshm_test::why(created));
    mm = std::move(*created);
  }
  ~env() {
    if (mm && std::uncaught_exceptions() == 0)
      CHECK(mm->check() == "");
  }

  static engine_settings adjusted(std::function<void(engine_settings&)> adjust) {
    auto s = small_settings();
    if (adjust)
      adjust(s);
    return s;
  }

  memory_manager* operator->() const {
    return mm.get();
  }

  session reg(const std::string& name, uint64_t quota = 0) {
    auto r = mm->register_process(name, ::getpid(), quota);
    REQUIRE_MESSAGE(static_cast<bool>(r), cafshm_test::why(r));
    CHECK(r->engine_id == mm->engine_id());
    CHECK(r->data_segment == memory_manager::data_segment_name(settings.name));
    CHECK(r->admin_segment == memory_manager::admin_segment_name(settings.name));
    CHECK(r->min_block_bytes == settings.min_block_bytes);
    return r->session;
  }

  block_ref alloc(const session& s, uint64_t size) {
    auto r = mm->allocate(s, size);
    REQUIRE_MESSAGE(static_cast<bool>(r), cafshm_test::why(r));
    CHECK(r->size == size);
    CHECK(r->engine == mm->engine_id());
    return *r;
  }

  const admin::block_entry& block(uint32_t index) const {
    const auto& h = mm->header();
    return reinterpret_cast<const admin::block_entry*>(mm->admin_memory().data()
                                                       + h.block_offset)[index];
  }

  const admin::process_entry& process(process_id who) const {
    const auto& h = mm->header();
    return reinterpret_cast<const admin::process_entry*>(mm->admin_memory().data()
                                                         + h.process_offset)[to_slot(who)];
  }

  /// The grant entry of `who` on block `index`, or nullptr.
  const admin::grant_entry* grant(uint32_t index, process_id who) const {
    const auto& h = mm->header();
    auto* table = reinterpret_cast<const admin::grant_entry*>(mm->admin_memory().data()
                                                              + h.grant_offset);
    for (uint32_t g = block(index).grant_head; g != admin::no_index; g = table[g].next)
      if (table[g].process == to_slot(who)) // admin memory stores the slot
        return &table[g];
    return nullptr;
  }

  uint64_t offset_of(uint32_t index) const {
    return uint64_t{block(index).page} << mm->header().min_order;
  }

  /// Whether the background scrubber zeroed every freed range before `deadline` (it starts on
  /// a range engine.scrub_delay after its free).
  bool scrubbed_within(std::chrono::milliseconds deadline) const {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (mm->scrub_counts().pending_bytes != 0)
      if (std::chrono::steady_clock::now() > until)
        return false;
      else
        std::this_thread::sleep_for(std::chrono::microseconds{200});
    return true;
  }

  /// The raw arena bytes of a block.
  const char* raw(uint32_t index) const {
    return reinterpret_cast<const char*>(mm->arena().data() + offset_of(index));
  }

  const process_stats* stats_of(process_id who) const {
    static thread_local engine_stats keep;
    keep = mm->stats();
    for (auto& p : keep.process_list)
      if (p.id == who)
        return &p;
    return nullptr;
  }
};

std::span<const char> bytes_of(const std::string& text) {
  return {text.data(), text.size()};
}

std::string text_of(const std::vector<char>& bytes) {
  return {bytes.begin(), bytes.end()};
}

bool all_zero(const char* p, size_t n) {
  return std::all_of(p, p + n, [](char c) { return c == 0; });
}

/// Pid of a child that has exited and been reaped.
int32_t dead_pid() {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0)
    ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE((::kill(child, 0) != 0 && errno == ESRCH));
  return child;
}

/// Accounting that must return exactly to a former state.
void check_same_accounting(const engine_stats& now, const engine_stats& before) {
  CHECK(now.free_bytes == before.free_bytes);
  CHECK(now.used_bytes == before.used_bytes);
  CHECK(now.requested_bytes == before.requested_bytes);
  CHECK(now.largest_free_block == before.largest_free_block);
  CHECK(now.free_bytes_by_order == before.free_bytes_by_order);
  CHECK(now.processes == before.processes);
  CHECK(now.blocks == before.blocks);
  CHECK(now.draining_blocks == before.draining_blocks);
  CHECK(now.grants == before.grants);
  CHECK(now.names == before.names);
  CHECK(now.name_list.size() == before.name_list.size());
  CHECK(now.process_list.size() == before.process_list.size());
}

uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

std::string shm_path(const std::string& segment) {
  return "/dev/shm/" + segment;
}

/// Writes segments as an engine with `pid` and start time `start_ns` would have left them.
void fabricate_segments(const segment_guard& g, int32_t pid, uint64_t start_ns, bool formatted) {
  auto admin = shm_segment::create(g.admin(), 4096, 0600);
  REQUIRE_MESSAGE(static_cast<bool>(admin), cafshm_test::why(admin));
  auto data = shm_segment::create(g.data(), 8192, 0600);
  REQUIRE_MESSAGE(static_cast<bool>(data), cafshm_test::why(data));
  admin::admin_header h{};
  h.magic = formatted ? admin::magic : 0;
  h.layout_version = admin::layout_version;
  h.header_bytes = sizeof(h);
  h.engine_id = 42;
  h.engine_pid = pid;
  h.start_epoch_ns = start_ns;
  std::memcpy(admin->data(), &h, sizeof(h));
  std::memset(data->data(), 0x5a, 8192);
  // handles go out of scope here; the objects stay (the creator did not ask to remove them)
}

} // namespace

// -- layout -----------------------------------------------------------------------------------

TEST_CASE("admin memory: header fields and non-overlapping sections") {
  env e;
  const auto& h = e->header();
  CHECK(h.magic == admin::magic);
  CHECK(h.layout_version == admin::layout_version);
  CHECK(h.header_bytes == sizeof(admin::admin_header));
  CHECK(h.engine_id != 0);
  CHECK(h.engine_id == e->engine_id());
  CHECK(h.engine_pid == ::getpid());
  auto now = realtime_ns();
  CHECK(h.start_epoch_ns <= now);
  CHECK(h.start_epoch_ns + 60'000'000'000ull > now);
  CHECK(h.arena_bytes == 1 * mib);
  CHECK(h.min_order == 12);
  CHECK(h.max_processes == e.settings.max_processes);
  CHECK(h.max_blocks == e.settings.max_blocks);
  CHECK(h.max_grants == e.settings.max_grants);
  CHECK(h.max_names == e.settings.max_names);
  CHECK(std::string(h.data_segment) == memory_manager::data_segment_name(e.settings.name));
  CHECK(h.live_processes == 0);
  CHECK(h.live_blocks == 0);
  CHECK(h.live_grants == 0);
  CHECK(h.live_names == 0);
  CHECK(h.used_bytes == 0);
  CHECK(h.requested_bytes == 0);
  // sections: in order, 64-byte aligned, each large enough, all inside total_bytes
  CHECK(h.allocator_offset >= sizeof(admin::admin_header));
  CHECK(h.allocator_bytes == tlsf_allocator::state_bytes(256));
  uint64_t ends[] = {
    h.allocator_offset + h.allocator_bytes,
    h.segment_offset + uint64_t{h.max_segments} * sizeof(admin::segment_entry),
    h.process_offset + uint64_t{h.max_processes} * sizeof(admin::process_entry),
    h.block_offset + uint64_t{h.max_blocks} * sizeof(admin::block_entry),
    h.grant_offset + uint64_t{h.max_grants} * sizeof(admin::grant_entry),
    h.name_offset + uint64_t{h.max_names} * sizeof(admin::name_entry),
  };
  uint64_t starts[] = {h.allocator_offset, h.segment_offset, h.process_offset, h.block_offset,
                       h.grant_offset, h.name_offset};
  for (int i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(starts[i] % 64 == 0);
    CHECK(ends[i] <= h.total_bytes);
    if (i + 1 < 6)
      CHECK(ends[i] <= starts[i + 1]);
  }
  CHECK(h.total_bytes == memory_manager::admin_bytes(e.settings));
  CHECK(h.total_bytes == e->admin_memory().size());
  CHECK(e->arena().size() == h.arena_bytes);
  // one data segment, the arena does not grow unless engine.max_arena says so
  CHECK(h.live_segments == 1);
  CHECK(h.max_segments == admin::max_segments);
  CHECK(h.initial_arena_bytes == 1 * mib);
  CHECK(h.max_arena_bytes == 1 * mib);
  // the engine holds slot 0
  const auto& engine = e.process(process_id::engine);
  CHECK(engine.state == admin::process_state::live);
  CHECK(engine.pid == ::getpid());
  CHECK(std::string(engine.name) == "engine");
  CHECK(e->is_live(process_id::engine));
  CHECK(e->live_processes().empty());
  // stats agree
  auto st = e->stats();
  CHECK(st.engine_id == h.engine_id);
  CHECK(st.arena_bytes == 1 * mib);
  CHECK(st.admin_bytes == h.total_bytes);
  CHECK(st.min_block_bytes == 4 * kib);
  CHECK(st.free_bytes == 1 * mib);
  CHECK(st.used_bytes == 0);
  CHECK(st.largest_free_block == 1 * mib);
  CHECK(st.processes == 0);
  REQUIRE(st.process_list.size() == 1);
  CHECK(st.process_list[0].id == process_id::engine);
  CHECK(st.data_segment == e.guard.data());
  CHECK(st.admin_segment == e.guard.admin());
}

TEST_CASE("admin memory is at most 0.5% of the arena at default settings") {
  engine_settings defaults;
  auto admin = memory_manager::admin_bytes(defaults);
  MESSAGE("admin memory for a " << (defaults.arena_bytes >> 20) << " MiB arena: " << admin
                                << " bytes");
  CHECK(admin * 200 <= defaults.arena_bytes);
  // and it grows with the tables, as documented
  auto more = defaults;
  more.max_blocks *= 2;
  CHECK(memory_manager::admin_bytes(more)
        >= admin + uint64_t{defaults.max_blocks} * sizeof(admin::block_entry));
}

TEST_CASE("admin memory is at most 0.5% of the maximum arena of an arena that grows") {
  engine_settings s; // default capacities
  s.max_arena_bytes = 4 * gib;
  auto admin = memory_manager::admin_bytes(s);
  MESSAGE("admin memory for a 64 MiB arena growing to 4 GiB: " << admin << " bytes");
  CHECK(admin * 200 <= s.max_arena_bytes);
  // the allocator's index covers the ceiling: 8 bytes per page of it
  CHECK(admin >= (4 * gib >> 12) * 8);
  s.max_arena_bytes = 1ull << 40; // the largest ceiling
  CHECK(memory_manager::admin_bytes(s) * 200 <= s.max_arena_bytes);
}

// -- errors, one test per code ------------------------------------------------------------------

TEST_CASE("errc::unknown_process: bad token, unregistered or out-of-range slot") {
  env e;
  auto p = e.reg("p");
  auto ref = e.alloc(p, 100);
  auto bad_token = session{p.process, p.token ^ 1};
  CHECK_ERRC(e->allocate(bad_token, 10), errc::unknown_process);
  CHECK_ERRC(e->read(bad_token, ref, 0, 1), errc::unknown_process);
  CHECK_ERRC(e->free(bad_token, ref), errc::unknown_process);
  CHECK_ERRC(e->unregister(bad_token), errc::unknown_process);
  CHECK_ERRC(e->lookup(session{p.process, 0}, "x"), errc::unknown_process);
  CHECK_ERRC(e->allocate(session{process_id{7}, p.token}, 10), errc::unknown_process); // free slot
  CHECK_ERRC(e->allocate(session{process_id{e.settings.max_processes}, p.token}, 10), errc::unknown_process);
  CHECK_ERRC(e->allocate(session{process_id{0xffffffffu}, p.token}, 10), errc::unknown_process);
  CHECK_ERRC(e->allocate(session{process_id::engine, p.token}, 10), errc::unknown_process);
  // targets of share and transfer must be registered too
  CHECK_ERRC(e->share(p, ref, process_id{7}, access_mode::read), errc::unknown_process);
  CHECK_ERRC(e->transfer(p, ref, process_id{7}), errc::unknown_process);
  CHECK_ERRC(e->transfer(p, ref, process_id{0xffffffffu}), errc::unknown_process);
  CHECK_ERRC(e->find_process(p, "nobody"), errc::unknown_process);
  // after unregistering, the old session is unknown, even once the slot is taken again
  CHECK_OK(e->unregister(p));
  CHECK_ERRC(e->allocate(p, 10), errc::unknown_process);
  auto q = e.reg("q");
  CHECK(q.process == p.process);
  CHECK(q.token != p.token);
  CHECK_ERRC(e->allocate(p, 10), errc::unknown_process);
  CHECK_OK(e->allocate(q, 10));
  CHECK(e->stats().rejected >= 14);
}

TEST_CASE("errc::stale_block: reused block, forged engine id, forged size, bad index") {
  env e;
  auto p = e.reg("p");
  auto old = e.alloc(p, 100);
  CHECK_OK(e->free(p, old));
  auto fresh = e.alloc(p, 100);
  REQUIRE(fresh.block == old.block); // the table entry is reused ...
  CHECK(fresh.generation == old.generation + 1); // ... under a new generation
  CHECK_ERRC(e->read(p, old, 0, 1), errc::stale_block);
  CHECK_ERRC(e->write(p, old, 0, bytes_of("x")), errc::stale_block);
  CHECK_ERRC(e->free(p, old), errc::stale_block);
  CHECK_ERRC(e->share(p, old, process_id{1}, access_mode::read), errc::stale_block);
  CHECK_ERRC(e->name(p, old, "n"), errc::stale_block);
  CHECK_ERRC(e->map(p, old, access_mode::read), errc::stale_block);
  CHECK_ERRC(e->transfer(p, old, process_id::engine), errc::stale_block);
  CHECK_ERRC(e->copy(p, fresh, old, {{0, 0, 1}}), errc::stale_block);
  CHECK_ERRC(e->copy(p, old, fresh, {{0, 0, 1}}), errc::stale_block);
  auto forged = fresh;
  forged.engine ^= 1;
  CHECK_ERRC(e->read(p, forged, 0, 1), errc::stale_block);
  forged = fresh;
  forged.engine = 0;
  CHECK_ERRC(e->read(p, forged, 0, 1), errc::stale_block);
  forged = fresh;
  forged.size = 4096; // would widen the readable range to the whole block
  CHECK_ERRC(e->read(p, forged, 0, 4096), errc::stale_block);
  forged = fresh;
  forged.block = e.settings.max_blocks;
  CHECK_ERRC(e->read(p, forged, 0, 1), errc::stale_block);
  forged.block = 0xffffffffu;
  CHECK_ERRC(e->free(p, forged), errc::stale_block);
  CHECK_ERRC(e->unmap(p, forged), errc::stale_block);
  forged = fresh;
  forged.block = fresh.block + 1; // a free table entry
  forged.generation = 0;
  CHECK_ERRC(e->read(p, forged, 0, 1), errc::stale_block);
  CHECK_ERRC(e->unmap(p, forged), errc::stale_block);
  // unmap without an open view
  CHECK_ERRC(e->unmap(p, fresh), errc::stale_block);
  CHECK_OK(e->read(p, fresh, 0, 100));
}

TEST_CASE("errc::access_denied: no grant, read grant used for write, non-owner management") {
  env e;
  auto owner = e.reg("owner");
  auto other = e.reg("other");
  auto ref = e.alloc(owner, 100);
  CHECK_ERRC(e->read(other, ref, 0, 1), errc::access_denied);
  CHECK_ERRC(e->write(other, ref, 0, bytes_of("x")), errc::access_denied);
  CHECK_ERRC(e->map(other, ref, access_mode::read), errc::access_denied);
  auto mine = e.alloc(other, 100);
  CHECK_ERRC(e->copy(other, ref, mine, {{0, 0, 1}}), errc::access_denied); // source unreadable
  CHECK_OK(e->share(owner, ref, other.process, access_mode::read));
  CHECK_OK(e->read(other, ref, 0, 1));
  CHECK_ERRC(e->write(other, ref, 0, bytes_of("x")), errc::access_denied);
  CHECK_ERRC(e->map(other, ref, access_mode::read_write), errc::access_denied);
  CHECK_ERRC(e->copy(other, mine, ref, {{0, 0, 1}}), errc::access_denied); // read-only target
  // a grantee, even with read_write, cannot manage the block
  CHECK_OK(e->share(owner, ref, other.process, access_mode::read_write));
  CHECK_OK(e->write(other, ref, 0, bytes_of("x")));
  CHECK_ERRC(e->free(other, ref), errc::access_denied);
  CHECK_ERRC(e->share(other, ref, owner.process, access_mode::read), errc::access_denied);
  CHECK_ERRC(e->revoke(other, ref, other.process), errc::access_denied);
  CHECK_ERRC(e->transfer(other, ref, other.process), errc::access_denied);
  CHECK_ERRC(e->name(other, ref, "stolen"), errc::access_denied);
  CHECK_OK(e->name(owner, ref, "owned"));
  CHECK_ERRC(e->remove(other, "owned"), errc::access_denied);
  CHECK_OK(e->lookup(other, "owned")); // looking up is allowed
  // engine-held blocks: readable by everyone, writable by no process
  auto published = e.alloc(owner, 64);
  REQUIRE_OK(e->name(owner, published, "published"));
  REQUIRE_OK(e->transfer(owner, published, process_id::engine));
  CHECK_OK(e->read(other, published, 0, 64));
  CHECK_ERRC(e->write(other, published, 0, bytes_of("x")), errc::access_denied);
  CHECK_ERRC(e->write(owner, published, 0, bytes_of("x")), errc::access_denied);
  CHECK_ERRC(e->free(owner, published), errc::access_denied);
  CHECK(e.stats_of(other.process)->denied >= 11);
  CHECK(e.stats_of(owner.process)->denied == 2);
}

TEST_CASE("errc::out_of_range: offset+length overflow, past the end, copy ranges") {
  env e;
  auto p = e.reg("p");
  auto a = e.alloc(p, 100);
  auto b = e.alloc(p, 50);
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  CHECK_ERRC(e->write(p, a, max, bytes_of("xy")), errc::out_of_range);
  CHECK_ERRC(e->write(p, a, max - 1, bytes_of("xyz")), errc::out_of_range);
  CHECK_ERRC(e->read(p, a, max, 2), errc::out_of_range);
  CHECK_ERRC(e->read(p, a, 1, max), errc::out_of_range);
  CHECK_ERRC(e->read(p, a, 2, max - 1), errc::out_of_range);
  CHECK_ERRC(e->write(p, a, 99, bytes_of("xy")), errc::out_of_range);
  CHECK_ERRC(e->write(p, a, 101, bytes_of("")), errc::out_of_range);
  CHECK_ERRC(e->read(p, a, 0, 101), errc::out_of_range); // inside the 4 KiB block, past size
  CHECK_ERRC(e->read(p, a, 101, 0), errc::out_of_range);
  // the exact bounds are fine
  CHECK_OK(e->write(p, a, 98, bytes_of("xy")));
  CHECK_OK(e->read(p, a, 0, 100));
  CHECK_OK(e->read(p, a, 100, 0));
  CHECK_OK(e->write(p, a, 100, bytes_of("")));
  // copy: every range is checked against both blocks, before any byte moves
  CHECK_OK(e->write(p, b, 0, bytes_of(std::string(50, 'b'))));
  CHECK_ERRC(e->copy(p, a, b, {{0, 0, 51}}), errc::out_of_range);
  CHECK_ERRC(e->copy(p, a, b, {{60, 0, 41}}), errc::out_of_range);
  CHECK_ERRC(e->copy(p, a, b, {{0, 10, 41}}), errc::out_of_range);
  CHECK_ERRC(e->copy(p, a, b, {{max, 0, 2}}), errc::out_of_range);
  CHECK_ERRC(e->copy(p, a, b, {{0, max, 2}}), errc::out_of_range);
  CHECK_ERRC(e->copy(p, a, b, {{1, 1, max}}), errc::out_of_range);
  CHECK_ERRC(e->copy(p, a, b, {{0, 0, 10}, {0, 45, 10}}), errc::out_of_range);
  auto unchanged = e->read(p, b, 0, 50);
  REQUIRE_OK(unchanged);
  CHECK(text_of(*unchanged) == std::string(50, 'b'));
  CHECK_OK(e->copy(p, a, b, {{50, 0, 50}}));
}

TEST_CASE("errc::out_of_memory: larger than the arena, arena full, fragmented") {
  env e;
  auto p = e.reg("p");
  CHECK_ERRC(e->allocate(p, 1 * mib + 1), errc::out_of_memory);
  CHECK_ERRC(e->allocate(p, std::numeric_limits<uint64_t>::max()), errc::out_of_memory);
  auto whole = e.alloc(p, 1 * mib);
  CHECK_ERRC(e->allocate(p, 1), errc::out_of_memory);
  CHECK_OK(e->free(p, whole));
  // 256 pages, every other one freed: half the arena free, no two pages adjacent
  std::vector<block_ref> pages;
  for (int i = 0; i < 256; ++i)
    pages.push_back(e.alloc(p, 4 * kib));
  CHECK_ERRC(e->allocate(p, 1), errc::out_of_memory);
  for (size_t i = 0; i < pages.size(); i += 2)
    CHECK_OK(e->free(p, pages[i]));
  CHECK(e->stats().free_bytes == 512 * kib);
  CHECK_ERRC(e->allocate(p, 4 * kib + 1), errc::out_of_memory);
  CHECK_OK(e->allocate(p, 4 * kib));
  auto st = e->stats();
  CHECK(st.fragmentation() > 0.0);
  CHECK(st.largest_free_block == 4 * kib);
}

TEST_CASE("a block occupies its size rounded up to min_block, not to a power of two") {
  env e{[](engine_settings& s) { s.arena_bytes = 64 * mib; }};
  auto p = e.reg("p");
  auto put = e.alloc(p, 10'000'000); // a 10 MB put: 2442 pages, not 16 MiB
  CHECK(e->stats().used_bytes == 10'002'432);
  CHECK(e->stats().requested_bytes == 10'000'000);
  CHECK(e.stats_of(p.process)->bytes_in_use == 10'002'432);
  CHECK_OK(e->free(p, put));
  // three blocks of 16 MiB + 1 B fit (a power of two each would take 32 MiB: only two)
  std::vector<block_ref> big;
  for (int i = 0; i < 3; ++i)
    big.push_back(e.alloc(p, 16 * mib + 1));
  CHECK(e->stats().used_bytes == 3 * (16 * mib + 4 * kib));
  for (auto& ref : big)
    CHECK_OK(e->free(p, ref));
  // ten 6 MiB frames fill 60 of 64 MiB (8 MiB blocks: eight)
  std::vector<block_ref> frames;
  for (int i = 0; i < 10; ++i)
    frames.push_back(e.alloc(p, 6 * mib));
  auto st = e->stats();
  CHECK(st.used_bytes == 60 * mib);
  CHECK(st.requested_bytes == 60 * mib);
  CHECK(st.largest_free_block == 4 * mib);
  CHECK(e->check() == "");
  // freed in an order that leaves holes first: all of it merges back into one block
  for (size_t i = 0; i < frames.size(); i += 2)
    CHECK_OK(e->free(p, frames[i]));
  CHECK(e->stats().largest_free_block == 6 * mib);
  for (size_t i = 1; i < frames.size(); i += 2)
    CHECK_OK(e->free(p, frames[i]));
  st = e->stats();
  CHECK(st.free_bytes == 64 * mib);
  CHECK(st.largest_free_block == 64 * mib);
  CHECK(st.fragmentation() == 0.0);
}

TEST_CASE("capacities: high-water marks, one warning past 80 %, errors naming the setting") {
  env e{[](engine_settings& s) {
    s.max_blocks = 10;
    s.max_grants = 5;
    s.max_names = 5;
    s.max_processes = 6; // five besides the engine
  }};
  std::vector<std::string> log;
  e->set_log([&](const std::string& line) { log.push_back(line); });
  auto warnings_for = [&](const std::string& setting) {
    return std::count_if(log.begin(), log.end(), [&](const std::string& line) {
      return line.find("warning") != std::string::npos
             && line.find("raise " + setting + " ") != std::string::npos;
    });
  };
  auto capacity = [&](const std::string& name) {
    for (const auto& c : e->stats().capacities)
      if (c.name == name)
        return c;
    FAIL("no capacity " << name);
    return capacity_use{};
  };
  auto p = e.reg("p");
  auto q = e.reg("q");
  // blocks: 8 of 10 is 80 %, not past it; the 9th warns, once
  std::vector<block_ref> blocks;
  for (int i = 0; i < 8; ++i)
    blocks.push_back(e.alloc(p, 4 * kib));
  CHECK(log.empty());
  blocks.push_back(e.alloc(p, 4 * kib));
  CHECK(warnings_for("engine.max_blocks") == 1);
  CHECK_OK(e->free(p, blocks.back()));
  blocks.back() = e.alloc(p, 4 * kib);
  blocks.push_back(e.alloc(p, 4 * kib));
  CHECK(warnings_for("engine.max_blocks") == 1);
  auto full = e->allocate(p, 4 * kib);
  CHECK_ERRC(full, errc::capacity_exceeded);
  CHECK(why(full).find("engine.max_blocks") != std::string::npos);
  CHECK_OK(e->free(p, blocks.back()));
  blocks.pop_back();
  auto c = capacity("blocks");
  CHECK(c.setting == "engine.max_blocks");
  CHECK(c.used == 9);
  CHECK(c.peak == 10);
  CHECK(c.capacity == 10);
  // names
  for (int i = 0; i < 5; ++i)
    CHECK_OK(e->name(p, blocks[i], "n" + std::to_string(i)));
  CHECK(warnings_for("engine.max_names") == 1);
  auto no_name = e->name(p, blocks[5], "n5");
  CHECK_ERRC(no_name, errc::capacity_exceeded);
  CHECK(why(no_name).find("engine.max_names") != std::string::npos);
  // grants
  for (int i = 0; i < 5; ++i)
    CHECK_OK(e->share(p, blocks[i], q.process, access_mode::read));
  CHECK(warnings_for("engine.max_grants") == 1);
  auto no_grant = e->share(p, blocks[5], q.process, access_mode::read);
  CHECK_ERRC(no_grant, errc::capacity_exceeded);
  CHECK(why(no_grant).find("engine.max_grants") != std::string::npos);
  // processes: p, q and three more fill the table
  for (int i = 0; i < 3; ++i)
    e.reg("r" + std::to_string(i));
  CHECK(warnings_for("engine.max_processes") == 1);
  auto no_slot = e->register_process("late", ::getpid(), 0);
  CHECK_ERRC(no_slot, errc::capacity_exceeded);
  CHECK(why(no_slot).find("engine.max_processes") != std::string::npos);
  // arena bytes: past 80 % of 1 MiB warns; what does not fit fails with the numbers
  CHECK(warnings_for("engine.max_arena") == 0);
  for (int i = 0; i < 5; ++i)
    CHECK_OK(e->free(p, blocks[i]));
  auto most = e.alloc(p, 900 * kib);
  CHECK(warnings_for("engine.max_arena") == 1);
  auto too_big = e->allocate(p, 200 * kib);
  CHECK_ERRC(too_big, errc::out_of_memory);
  auto text = why(too_big);
  INFO(text);
  auto st = e->stats();
  CHECK(text.find("requested " + std::to_string(200 * kib)) != std::string::npos);
  CHECK(text.find("free " + std::to_string(st.free_bytes)) != std::string::npos);
  CHECK(text.find("largest free block " + std::to_string(st.largest_free_block))
        != std::string::npos);
  CHECK(text.find("ceiling " + std::to_string(1 * mib)) != std::string::npos);
  CHECK(text.find("engine.max_arena") != std::string::npos);
  CHECK(capacity("arena bytes").peak == st.used_bytes);
  CHECK_OK(e->free(p, most));
  CHECK(capacity("arena bytes").peak > capacity("arena bytes").used);
  // every warning names its capacity once; the log line lists the high-water marks
  CHECK(log.size() == 5);
  e->log_capacities("now");
  REQUIRE(log.size() == 6);
  CHECK(log.back().find("blocks 4/10 (peak 10, engine.max_blocks)") != std::string::npos);
  CHECK(e->check() == "");
}

TEST_CASE("errc::quota_exceeded: allocate, and transfer to a process with a quota") {
  env e{[](engine_settings& s) { s.default_quota_bytes = 16 * kib; }};
  auto limited = e.reg("limited", 8 * kib);
  // 0 = the engine's default quota; of another user, whose default quota is its own
  auto me = own_credentials();
  auto other_user = e->register_process("defaulted", ::getpid(), 0, {me.uid + 1, me.gid + 1});
  REQUIRE_OK(other_user);
  auto defaulted = other_user->session;
  CHECK(e.process(limited.process).quota_bytes == 8 * kib);
  CHECK(e.process(defaulted.process).quota_bytes == 16 * kib);
  auto first = e.alloc(limited, 4 * kib);
  CHECK_ERRC(e->allocate(limited, 4 * kib + 1), errc::quota_exceeded); // rounds up to 8 KiB
  auto second = e.alloc(limited, 1);
  CHECK_ERRC(e->allocate(limited, 1), errc::quota_exceeded);
  CHECK(e.stats_of(limited.process)->bytes_in_use == 8 * kib);
  CHECK(e.stats_of(limited.process)->denied == 2);
  // transfer into a full quota fails, leaving everything as it was
  auto big = e.alloc(defaulted, 16 * kib);
  CHECK_ERRC(e->allocate(defaulted, 1), errc::quota_exceeded);
  CHECK_ERRC(e->transfer(defaulted, big, limited.process), errc::quota_exceeded);
  CHECK(e.stats_of(defaulted.process)->bytes_in_use == 16 * kib);
  CHECK(e.stats_of(limited.process)->bytes_in_use == 8 * kib);
  CHECK_OK(e->read(defaulted, big, 0, 1));
  // freeing makes room again
  CHECK_OK(e->free(limited, first));
  CHECK_OK(e->free(limited, second));
  CHECK_OK(e->free(defaulted, big));
  CHECK_ERRC(e->transfer(defaulted, big, limited.process), errc::stale_block);
  auto small = e.alloc(defaulted, 1);
  CHECK_OK(e->transfer(defaulted, small, limited.process));
  CHECK(e.stats_of(limited.process)->bytes_in_use == 4 * kib);
  // an unlimited process is never refused for quota
  auto free_rider = e.reg("unlimited", 0);
  (void) free_rider;
  env e2;
  auto unlimited = e2.reg("u");
  CHECK(e2.process(unlimited.process).quota_bytes == 0);
  CHECK_OK(e2->allocate(unlimited, 1 * mib));
}

TEST_CASE("a shared quota's running sum stays exact through draining, giving, transfer and reclaim") {
  env e{[](engine_settings& s) { s.default_quota_bytes = 64 * kib; }};
  auto a = e.reg("a"); // one user: one quota of 64 KiB together
  auto b = e.reg("b");
  auto other = e->register_process("other", ::getpid(), 0, {own_credentials().uid + 1, 0});
  REQUIRE_OK(other);
  auto x = e.alloc(a, 32 * kib);
  auto y = e.alloc(b, 24 * kib);
  CHECK(e->check() == "");
  CHECK_ERRC(e->allocate(b, 8 * kib + 1), errc::quota_exceeded); // 32 + 24 + 12 > 64
  CHECK_OK(e->allocate(other->session, 64 * kib)); // another user: a quota of its own
  // x drains while b holds a view: still a's, then nobody's once a is reclaimed
  CHECK_OK(e->share(a, x, b.process, access_mode::read));
  REQUIRE_OK(e->map(b, x, access_mode::read));
  CHECK_OK(e->free(a, x));
  CHECK(e->check() == "");
  CHECK_ERRC(e->allocate(b, 8 * kib + 1), errc::quota_exceeded); // the draining block counts
  e->reclaim(a.process);
  CHECK(e->check() == "");
  auto z = e.alloc(b, 40 * kib); // 24 + 40 = 64: a's charge went to the engine
  CHECK_ERRC(e->allocate(b, 1), errc::quota_exceeded);
  CHECK_OK(e->unmap(b, x)); // the drained block returns; it was charged to nobody
  CHECK(e->check() == "");
  // given to the engine, y stays charged to b; transferred to a process of the same user, the
  // charge moves within the quota
  CHECK_OK(e->name(b, y, "given"));
  REQUIRE_OK(e->transfer(b, y, process_id::engine));
  CHECK_ERRC(e->allocate(b, 1), errc::quota_exceeded);
  auto c = e.reg("c");
  auto moved = e->transfer(b, z, c.process);
  REQUIRE_OK(moved);
  CHECK(e->check() == "");
  CHECK_ERRC(e->allocate(c, 1), errc::quota_exceeded);
  e->reclaim(b.process); // y: charged to nobody now
  CHECK(e->check() == "");
  CHECK_OK(e->allocate(c, 24 * kib)); // 40 + 24 = 64
  CHECK_ERRC(e->allocate(c, 1), errc::quota_exceeded);
  CHECK(e->check() == "");
}

TEST_CASE("errc::name_taken") {
  env e;
  auto p = e.reg("p");
  auto q = e.reg("q");
  auto a = e.alloc(p, 10);
  auto b = e.alloc(p, 10);
  auto c = e.alloc(q, 10);
  CHECK_OK(e->name(p, a, "shared-name"));
  CHECK_OK(e->name(p, a, "shared-name")); // naming it again is a no-op
  CHECK_ERRC(e->name(p, b, "shared-name"), errc::name_taken);
  CHECK_ERRC(e->name(q, c, "shared-name"), errc::name_taken);
  CHECK(e->stats().names == 1);
  auto found = e->lookup(q, "shared-name");
  REQUIRE_OK(found);
  CHECK(*found == a);
  // once the block is freed, the name is free again
  CHECK_OK(e->free(p, a));
  CHECK_OK(e->name(q, c, "shared-name"));
}

TEST_CASE("errc::name_not_found") {
  env e;
  auto p = e.reg("p");
  CHECK_ERRC(e->lookup(p, "nothing"), errc::name_not_found);
  CHECK_ERRC(e->remove(p, "nothing"), errc::name_not_found);
  CHECK_ERRC(e->lookup(p, ""), errc::name_not_found);
  auto a = e.alloc(p, 10);
  CHECK_OK(e->name(p, a, "gone-soon"));
  CHECK_OK(e->lookup(p, "gone-soon"));
  CHECK_OK(e->free(p, a));
  CHECK_ERRC(e->lookup(p, "gone-soon"), errc::name_not_found);
  CHECK_ERRC(e->remove(p, "gone-soon"), errc::name_not_found);
}

TEST_CASE("errc::invalid_argument: size 0, bad names, self-grant, and more") {
  env e;
  auto p = e.reg("p");
  auto q = e.reg("q");
  auto a = e.alloc(p, 10);
  CHECK_ERRC(e->allocate(p, 0), errc::invalid_argument);
  CHECK_ERRC(e->name(p, a, ""), errc::invalid_argument);
  CHECK_ERRC(e->name(p, a, std::string(admin::max_name_length + 1, 'n')), errc::invalid_argument);
  CHECK_OK(e->name(p, a, std::string(admin::max_name_length, 'n')));
  CHECK_ERRC(e->name(p, a, std::string_view("a\0b", 3)), errc::invalid_argument);
  CHECK_ERRC(e->share(p, a, p.process, access_mode::read), errc::invalid_argument); // self
  CHECK_ERRC(e->share(p, a, q.process, static_cast<access_mode>(7)), errc::invalid_argument);
  CHECK_ERRC(e->transfer(p, a, p.process), errc::invalid_argument); // to its owner
  CHECK_ERRC(e->copy(p, a, a, {}), errc::invalid_argument);          // no ranges
  CHECK_ERRC(e->register_process("", ::getpid(), 0), errc::invalid_argument);
  CHECK_ERRC(e->unregister(e->engine_session()), errc::invalid_argument);
  CHECK(e->stats().grants == 0);
}

TEST_CASE("errc::capacity_exceeded: processes, blocks, grants, names") {
  env e{[](engine_settings& s) {
    s.max_processes = 3; // the engine and two processes
    s.max_blocks = 3;
    s.max_grants = 2;
    s.max_names = 2;
  }};
  auto p = e.reg("p");
  auto q = e.reg("q");
  CHECK_ERRC(e->register_process("r", ::getpid(), 0), errc::capacity_exceeded);
  CHECK_OK(e->unregister(q));
  q = e.reg("q2"); // the slot is free again
  auto b1 = e.alloc(p, 10);
  auto b2 = e.alloc(p, 10);
  auto b3 = e.alloc(q, 10);
  CHECK_ERRC(e->allocate(p, 10), errc::capacity_exceeded);
  CHECK_ERRC(e->allocate(q, 10), errc::capacity_exceeded);
  CHECK_OK(e->name(p, b1, "one"));
  CHECK_OK(e->name(q, b3, "three"));
  CHECK_ERRC(e->name(p, b2, "two"), errc::capacity_exceeded);
  CHECK_OK(e->share(p, b1, q.process, access_mode::read));
  CHECK_OK(e->share(p, b2, q.process, access_mode::read));
  CHECK_ERRC(e->share(q, b3, p.process, access_mode::read), errc::capacity_exceeded);
  CHECK_OK(e->share(p, b1, q.process, access_mode::read_write)); // upgrade takes no new entry
  // a reader of an engine-held block needs a grant entry for its view, too
  REQUIRE_OK(e->transfer(q, b3, process_id::engine));
  CHECK_ERRC(e->map(p, b3, access_mode::read), errc::capacity_exceeded);
  auto st = e->stats();
  CHECK(st.blocks == 3);
  CHECK(st.grants == 2);
  CHECK(st.names == 2);
  CHECK(st.processes == 2);
  // everything that was refused works once room is made
  CHECK_OK(e->revoke(p, b2, q.process));
  CHECK_OK(e->map(p, b3, access_mode::read));
  CHECK_OK(e->unmap(p, b3));
  CHECK_OK(e->remove(p, "one"));
  CHECK_OK(e->name(p, b2, "two"));
  CHECK_OK(e->allocate(q, 10));
}

TEST_CASE("errc::block_in_use: transfer with owner view open, revoke with grantee view open") {
  env e;
  auto p = e.reg("p");
  auto q = e.reg("q");
  auto a = e.alloc(p, 10);
  REQUIRE_OK(e->map(p, a, access_mode::read_write));
  CHECK_ERRC(e->transfer(p, a, q.process), errc::block_in_use);
  CHECK(e.block(a.block).owner == to_slot(p.process));
  CHECK_OK(e->unmap(p, a));
  auto b = e.alloc(p, 10);
  CHECK_OK(e->share(p, b, q.process, access_mode::read));
  REQUIRE_OK(e->map(q, b, access_mode::read));
  CHECK_ERRC(e->revoke(p, b, q.process), errc::block_in_use);
  CHECK_OK(e->read(q, b, 0, 1)); // the grant survived
  CHECK_OK(e->unmap(q, b));
  CHECK_OK(e->revoke(p, b, q.process));
  CHECK_ERRC(e->read(q, b, 0, 1), errc::access_denied);
  CHECK_OK(e->revoke(p, b, q.process)); // revoking nothing is fine
  auto moved = e->transfer(p, a, q.process);
  REQUIRE_OK(moved);
  CHECK(*moved == a);
}

// -- behaviour ----------------------------------------------------------------------------------

TEST_CASE("grants: read vs read_write, upgrade, downgrade, revoke") {
  env e;
  auto owner = e.reg("owner");
  auto reader = e.reg("reader");
  auto writer = e.reg("writer");
  auto ref = e.alloc(owner, 32);
  CHECK_OK(e->write(owner, ref, 0, bytes_of("hello")));
  CHECK_OK(e->share(owner, ref, reader.process, access_mode::read));
  CHECK_OK(e->share(owner, ref, writer.process, access_mode::read_write));
  CHECK(e->stats().grants == 2);
  REQUIRE(e.grant(ref.block, reader.process) != nullptr);
  CHECK(e.grant(ref.block, reader.process)->mode == admin::access::read);
  CHECK(e.grant(ref.block, writer.process)->mode == admin::access::read_write);
  auto seen = e->read(reader, ref, 0, 5);
  REQUIRE_OK(seen);
  CHECK(text_of(*seen) == "hello");
  CHECK_ERRC(e->write(reader, ref, 0, bytes_of("x")), errc::access_denied);
  CHECK_OK(e->write(writer, ref, 0, bytes_of("HELLO")));
  seen = e->read(reader, ref, 0, 5);
  REQUIRE_OK(seen);
  CHECK(text_of(*seen) == "HELLO");
  // a writer can copy into the block from its own
  auto src = e.alloc(writer, 5);
  CHECK_OK(e->write(writer, src, 0, bytes_of("world")));
  CHECK_OK(e->copy(writer, src, ref, {{0, 0, 5}}));
  // a reader can copy out of the block into its own
  auto dst = e.alloc(reader, 5);
  CHECK_OK(e->copy(reader, ref, dst, {{0, 0, 5}}));
  seen = e->read(reader, dst, 0, 5);
  REQUIRE_OK(seen);
  CHECK(text_of(*seen) == "world");
  // upgrade and downgrade reuse the entry
  CHECK_OK(e->share(owner, ref, reader.process, access_mode::read_write));
  CHECK_OK(e->write(reader, ref, 0, bytes_of("x")));
  CHECK_OK(e->share(owner, ref, writer.process, access_mode::read));
  CHECK_ERRC(e->write(writer, ref, 0, bytes_of("x")), errc::access_denied);
  CHECK(e->stats().grants == 2);
  CHECK_OK(e->revoke(owner, ref, reader.process));
  CHECK_ERRC(e->read(reader, ref, 0, 1), errc::access_denied);
  CHECK(e->stats().grants == 1);
  // freeing the block ends every grant
  CHECK_OK(e->free(owner, ref));
  CHECK(e->stats().grants == 0);
}

TEST_CASE("transfer moves the block and its accounting") {
  env e;
  auto p = e.reg("p");
  auto q = e.reg("q");
  auto ref = e.alloc(p, 5000); // an 8 KiB block
  CHECK_OK(e->write(p, ref, 0, bytes_of("payload")));
  CHECK(e.stats_of(p.process)->bytes_in_use == 8 * kib);
  CHECK(e.stats_of(p.process)->blocks == 1);
  auto moved = e->transfer(p, ref, q.process);
  REQUIRE_OK(moved);
  CHECK(*moved == ref); // same block, same generation: the ref stays valid for the new owner
  CHECK(e.stats_of(p.process)->bytes_in_use == 0);
  CHECK(e.stats_of(p.process)->blocks == 0);
  CHECK(e.stats_of(q.process)->bytes_in_use == 8 * kib);
  CHECK(e.stats_of(q.process)->blocks == 1);
  CHECK(e.block(ref.block).owner == to_slot(q.process));
  CHECK_ERRC(e->read(p, ref, 0, 1), errc::access_denied);
  auto data = e->read(q, ref, 0, 7);
  REQUIRE_OK(data);
  CHECK(text_of(*data) == "payload");
  CHECK(e->stats().requested_bytes == 5000);
  // a grantee with an open view becomes the owner; its view now counts as an owner view
  CHECK_OK(e->share(q, ref, p.process, access_mode::read));
  REQUIRE_OK(e->map(p, ref, access_mode::read));
  CHECK_OK(e->transfer(q, ref, p.process));
  CHECK(e.block(ref.block).owner == to_slot(p.process));
  CHECK(e.block(ref.block).owner_views == 1);
  CHECK(e.block(ref.block).refcount == 1);
  CHECK(e->stats().grants == 0);
  CHECK(e->check() == "");
  CHECK_OK(e->unmap(p, ref));
  // to the engine: a published block, named first, still charged to the giver
  CHECK_ERRC(e->transfer(p, ref, process_id::engine), errc::invalid_argument);
  CHECK_OK(e->name(p, ref, "published"));
  CHECK_OK(e->transfer(p, ref, process_id::engine));
  CHECK(e.stats_of(process_id::engine)->bytes_in_use == 0);
  CHECK(e.stats_of(p.process)->bytes_in_use == 8 * kib);
  CHECK(e.stats_of(p.process)->blocks == 0);
  CHECK_OK(e->read(q, ref, 0, 1));
  CHECK_OK(e->free(e->engine_session(), ref));
  CHECK(e.stats_of(p.process)->bytes_in_use == 0);
  CHECK(e->stats().free_bytes == 1 * mib);
}

TEST_CASE("names: bind, lookup, rename, remove") {
  env e;
  auto p = e.reg("p");
  auto q = e.reg("q");
  auto a = e.alloc(p, 100);
  CHECK_OK(e->name(p, a, "matrix"));
  auto found = e->lookup(q, "matrix");
  REQUIRE_OK(found);
  CHECK(*found == a);
  auto st = e->stats();
  REQUIRE(st.name_list.size() == 1);
  CHECK(st.name_list[0].name == "matrix");
  CHECK(st.name_list[0].ref == a);
  CHECK(st.name_list[0].owner == p.process);
  // a lookup grants nothing
  CHECK_ERRC(e->read(q, *found, 0, 1), errc::access_denied);
  // renaming replaces the old name
  CHECK_OK(e->name(p, a, "matrix-v2"));
  CHECK_ERRC(e->lookup(q, "matrix"), errc::name_not_found);
  CHECK_OK(e->lookup(q, "matrix-v2"));
  CHECK(e->stats().names == 1);
  // remove frees the block
  CHECK_OK(e->remove(p, "matrix-v2"));
  CHECK_ERRC(e->read(p, a, 0, 1), errc::stale_block);
  CHECK(e->stats().free_bytes == 1 * mib);
  CHECK(e->stats().names == 0);
  // anyone may remove an engine-held block by name
  auto pub = e.alloc(p, 10);
  CHECK_OK(e->name(p, pub, "published"));
  CHECK_OK(e->transfer(p, pub, process_id::engine));
  CHECK(e->stats().name_list.at(0).owner == process_id::engine);
  CHECK_OK(e->remove(q, "published"));
  CHECK(e->stats().free_bytes == 1 * mib);
  // the engine can name and look up its own blocks
  auto eng = e.alloc(e->engine_session(), 10);
  CHECK_OK(e->name(e->engine_session(), eng, "by-engine"));
  auto lk = e->lookup(p, "by-engine");
  REQUIRE_OK(lk);
  CHECK(*lk == eng);
  CHECK_OK(e->find_process(p, "q"));
  CHECK(*e->find_process(p, "q") == q.process);
}

TEST_CASE("copy between blocks and within one block (overlapping ranges, memmove)") {
  env e;
  auto p = e.reg("p");
  auto a = e.alloc(p, 10);
  auto b = e.alloc(p, 10);
  CHECK_OK(e->write(p, a, 0, bytes_of("0123456789")));
  CHECK_OK(e->write(p, b, 0, bytes_of("abcdefghij")));
  CHECK_OK(e->copy(p, a, b, {{0, 5, 5}, {8, 0, 2}}));
  CHECK(text_of(*e->read(p, b, 0, 10)) == "89cde01234");
  CHECK(text_of(*e->read(p, a, 0, 10)) == "0123456789");
  // forward overlap within one block
  CHECK_OK(e->copy(p, a, a, {{0, 2, 8}}));
  CHECK(text_of(*e->read(p, a, 0, 10)) == "0101234567");
  // backward overlap
  CHECK_OK(e->write(p, a, 0, bytes_of("0123456789")));
  CHECK_OK(e->copy(p, a, a, {{2, 0, 8}}));
  CHECK(text_of(*e->read(p, a, 0, 10)) == "2345678989");
  // zero-length range and ranges applied in order
  CHECK_OK(e->write(p, a, 0, bytes_of("0123456789")));
  CHECK_OK(e->copy(p, a, a, {{0, 0, 0}, {0, 1, 1}, {1, 2, 1}}));
  CHECK(text_of(*e->read(p, a, 0, 10)) == "0003456789");
  auto stats = e.stats_of(p.process);
  CHECK(stats->writes == 8); // 4 writes + 4 copies
}

TEST_CASE("versions: write and copy bump the version, reads and failures do not") {
  env e;
  auto p = e.reg("p");
  auto a = e.alloc(p, 16);
  auto b = e.alloc(p, 16);
  CHECK(e.block(a.block).version == 0);
  CHECK_OK(e->write(p, a, 0, bytes_of("abc")));
  CHECK(e.block(a.block).version == 1);
  CHECK_OK(e->write(p, a, 3, bytes_of("d")));
  CHECK(e.block(a.block).version == 2);
  CHECK_OK(e->read(p, a, 0, 4));
  CHECK(e.block(a.block).version == 2);
  CHECK_ERRC(e->write(p, a, 15, bytes_of("xy")), errc::out_of_range);
  CHECK(e.block(a.block).version == 2);
  CHECK_OK(e->copy(p, a, b, {{0, 0, 4}}));
  CHECK(e.block(b.block).version == 1); // destination bumped
  CHECK(e.block(a.block).version == 2); // source not
  CHECK_OK(e->copy(p, a, a, {{0, 4, 4}}));
  CHECK(e.block(a.block).version == 3);
  // a new incarnation starts over
  CHECK_OK(e->free(p, a));
  auto again = e.alloc(p, 16);
  REQUIRE(again.block == a.block);
  CHECK(e.block(again.block).version == 0);
}

TEST_CASE("map/unmap count views per owner and per grantee") {
  env e;
  auto owner = e.reg("owner");
  auto other = e.reg("other");
  auto ref = e.alloc(owner, 100);
  auto lease = e->map(owner, ref, access_mode::read_write);
  REQUIRE_OK(lease);
  CHECK(lease->writable);
  CHECK(lease->size == 100);
  CHECK(lease->offset == e.offset_of(ref.block));
  CHECK(lease->offset % 4096 == 0);
  CHECK(lease->data_segment == e.guard.data());
  auto ro = e->map(owner, ref, access_mode::read);
  REQUIRE_OK(ro);
  CHECK_FALSE(ro->writable);
  CHECK(e.block(ref.block).owner_views == 2);
  CHECK(e.block(ref.block).refcount == 2);
  CHECK_OK(e->share(owner, ref, other.process, access_mode::read));
  CHECK_OK(e->map(other, ref, access_mode::read));
  CHECK_OK(e->map(other, ref, access_mode::read));
  CHECK(e.grant(ref.block, other.process)->views == 2);
  CHECK(e.block(ref.block).refcount == 4);
  CHECK_OK(e->unmap(other, ref));
  CHECK_OK(e->unmap(owner, ref));
  CHECK(e.block(ref.block).owner_views == 1);
  CHECK(e.grant(ref.block, other.process)->views == 1);
  CHECK(e.block(ref.block).refcount == 2);
  CHECK(e->check() == "");
  CHECK_OK(e->unmap(other, ref));
  CHECK_ERRC(e->unmap(other, ref), errc::stale_block); // no view left
  CHECK(e.grant(ref.block, other.process) != nullptr);  // the right itself stays
  CHECK_OK(e->unmap(owner, ref));
  CHECK_ERRC(e->unmap(owner, ref), errc::stale_block);
  CHECK(e.block(ref.block).refcount == 0);
  // readers of engine-held blocks get a grant entry that records their views
  auto pub = e.alloc(owner, 10);
  REQUIRE_OK(e->name(owner, pub, "pub"));
  REQUIRE_OK(e->transfer(owner, pub, process_id::engine));
  CHECK_ERRC(e->map(other, pub, access_mode::read_write), errc::access_denied);
  auto grants_before = e->stats().grants;
  CHECK_OK(e->map(other, pub, access_mode::read));
  CHECK(e->stats().grants == grants_before + 1);
  CHECK(e.grant(pub.block, other.process)->views == 1);
  CHECK_OK(e->unmap(other, pub));
}

TEST_CASE("free with open views drains until the last unmap, then the memory returns") {
  env e;
  auto owner = e.reg("owner");
  auto other = e.reg("other");
  auto ref = e.alloc(owner, 4 * kib);
  CHECK_OK(e->name(owner, ref, "draining"));
  CHECK_OK(e->share(owner, ref, other.process, access_mode::read));
  REQUIRE_OK(e->map(owner, ref, access_mode::read_write));
  REQUIRE_OK(e->map(other, ref, access_mode::read));
  CHECK_OK(e->write(owner, ref, 0, bytes_of("still mapped")));
  CHECK_OK(e->free(owner, ref));
  auto st = e->stats();
  CHECK(st.blocks == 1);
  CHECK(st.draining_blocks == 1);
  CHECK(st.free_bytes == 1 * mib - 4 * kib);
  CHECK(st.names == 0);             // the name ends at once
  CHECK(st.grants == 1);            // the grantee's entry stays while its view is open
  CHECK(st.requested_bytes == 0);   // no longer requested by anyone
  CHECK(e.stats_of(owner.process)->bytes_in_use == 4 * kib); // charged until the last view ends
  CHECK(e.stats_of(owner.process)->blocks == 0);
  CHECK(e.block(ref.block).state == admin::block_state::draining);
  CHECK(e.grant(ref.block, other.process)->mode == admin::access::none);
  // unreachable: every request with the ref is stale, the name is gone
  CHECK_ERRC(e->read(owner, ref, 0, 1), errc::stale_block);
  CHECK_ERRC(e->read(other, ref, 0, 1), errc::stale_block);
  CHECK_ERRC(e->map(other, ref, access_mode::read), errc::stale_block);
  CHECK_ERRC(e->lookup(other, "draining"), errc::name_not_found);
  // the memory is not handed out again while mapped
  auto other_block = e.alloc(owner, 4 * kib);
  CHECK(e.offset_of(other_block.block) != e.offset_of(ref.block));
  CHECK(std::string(e.raw(ref.block), 12) == "still mapped");
  CHECK_OK(e->free(owner, other_block));
  CHECK_OK(e->unmap(owner, ref));
  CHECK(e->stats().draining_blocks == 1);
  CHECK(e->check() == "");
  CHECK_OK(e->unmap(other, ref)); // the last view: scrubbed and returned
  CHECK(e.stats_of(owner.process)->bytes_in_use == 0);
  st = e->stats();
  CHECK(st.blocks == 0);
  CHECK(st.draining_blocks == 0);
  CHECK(st.grants == 0);
  CHECK(st.free_bytes == 1 * mib);
  CHECK(st.largest_free_block == 1 * mib);
  CHECK(e.block(ref.block).state == admin::block_state::free);
}

TEST_CASE("reclaim returns the accounting exactly to what it was before registration") {
  env e;
  auto q = e.reg("q");
  auto q_block = e.alloc(q, 3000);
  CHECK_OK(e->name(q, q_block, "q-block"));
  auto published = e.alloc(q, 100);
  REQUIRE_OK(e->name(q, published, "published"));
  REQUIRE_OK(e->transfer(q, published, process_id::engine));
  CHECK_OK(e->map(q, q_block, access_mode::read));
  auto before = e->stats();
  auto q_views = e.block(q_block.block).refcount;

  auto p = e.reg("p", 256 * kib);
  // blocks of p: named, shared, with views of p and of q
  auto b1 = e.alloc(p, 10 * kib);
  auto b2 = e.alloc(p, 100);
  auto b3 = e.alloc(p, 50 * kib);
  CHECK_OK(e->name(p, b1, "p-one"));
  CHECK_OK(e->share(p, b1, q.process, access_mode::read));
  CHECK_OK(e->share(p, b3, q.process, access_mode::read_write));
  CHECK_OK(e->map(p, b1, access_mode::read_write));
  CHECK_OK(e->map(p, b2, access_mode::read));
  CHECK_OK(e->map(p, b2, access_mode::read));
  CHECK_OK(e->map(q, b3, access_mode::read)); // keeps b3 draining after the reclaim
  // p's rights and views on blocks of others
  CHECK_OK(e->share(q, q_block, p.process, access_mode::read_write));
  CHECK_OK(e->map(p, q_block, access_mode::read_write));
  CHECK_OK(e->map(p, published, access_mode::read)); // grant entry for an engine-held block
  CHECK_OK(e->write(p, b3, 0, bytes_of("secret")));
  auto during = e->stats();
  CHECK(during.processes == before.processes + 1);
  CHECK(during.blocks == before.blocks + 3);
  CHECK(during.grants == before.grants + 4);
  CHECK(during.names == before.names + 1);

  e->reclaim(p.process);
  CHECK(e->check() == "");
  CHECK_FALSE(e->is_live(p.process));
  CHECK_ERRC(e->allocate(p, 1), errc::unknown_process);
  CHECK_ERRC(e->lookup(q, "p-one"), errc::name_not_found);
  CHECK(e.block(q_block.block).refcount == q_views);
  // b3 drains while q's view is open; then everything is exactly as before p came
  auto st = e->stats();
  CHECK(st.draining_blocks == 1);
  CHECK(st.processes == before.processes);
  CHECK(std::string(e.raw(b3.block), 6) == "secret"); // still mapped by q: not scrubbed yet
  CHECK_OK(e->unmap(q, b3));
  REQUIRE(e.scrubbed_within(10s)); // p wrote it: zeroed in the background
  CHECK(all_zero(e.raw(b3.block), 50 * kib));
  check_same_accounting(e->stats(), before);
  // reclaiming again, or the engine, changes nothing
  e->reclaim(p.process);
  e->reclaim(process_id::engine);
  e->reclaim(process_id{12345});
  check_same_accounting(e->stats(), before);
  CHECK_OK(e->read(q, q_block, 0, 1));
  CHECK_OK(e->unmap(q, q_block));
}

TEST_CASE("unregister reclaims like a dead process") {
  env e;
  auto before = e->stats();
  auto p = e.reg("p");
  auto a = e.alloc(p, 100 * kib);
  CHECK_OK(e->name(p, a, "x"));
  CHECK_OK(e->map(p, a, access_mode::read));
  CHECK_OK(e->unregister(p));
  check_same_accounting(e->stats(), before);
}

// -- scrubbing ----------------------------------------------------------------------------------

namespace {

struct scrub_result {
  bool raw_zero_after_free;    // the arena bytes right after free
  bool read_zero_after_reuse;  // what the next owner (another process) of the same memory reads
};

scrub_result run_scrub(scrub_policy policy) {
  env e{[policy](engine_settings& s) {
    s.scrub = policy;
    s.scrub_delay = 1min; // on_free: the scrubbing thread stays out of this
  }};
  auto p = e.reg("p");
  auto q = e.reg("q");
  std::string pattern(8 * kib, '\xab');
  auto a = e.alloc(p, 8 * kib);
  auto offset = e.offset_of(a.block);
  REQUIRE_OK(e->write(p, a, 0, bytes_of(pattern)));
  REQUIRE(std::string(e.raw(a.block), 8 * kib) == pattern);
  REQUIRE_OK(e->free(p, a));
  scrub_result r{};
  auto* raw = reinterpret_cast<const char*>(e->arena().data() + offset);
  r.raw_zero_after_free = all_zero(raw, 8 * kib);
  auto b = e.alloc(q, 8 * kib); // another process gets the same memory back
  REQUIRE(e.offset_of(b.block) == offset);
  auto seen = e->read(q, b, 0, 8 * kib);
  REQUIRE_OK(seen);
  r.read_zero_after_reuse = all_zero(seen->data(), seen->size());
  return r;
}

} // namespace

TEST_CASE("scrub on_free: freed memory is zeroed in the background, and for another process "
          "that takes it first on allocation") {
  auto r = run_scrub(scrub_policy::on_free);
  CHECK_FALSE(r.raw_zero_after_free); // not on the free request's path ...
  CHECK(r.read_zero_after_reuse);     // ... but before anyone else can read it
  // ... and by the scrubbing thread when nobody asks for it
  env e{[](engine_settings& s) { s.scrub_delay = 0ms; }};
  auto p = e.reg("p");
  auto a = e.alloc(p, 24 * kib);
  REQUIRE_OK(e->write(p, a, 0, bytes_of(std::string(24 * kib, 'w'))));
  REQUIRE_OK(e->free(p, a));
  REQUIRE(e.scrubbed_within(10s));
  CHECK(all_zero(e.raw(a.block), 24 * kib));
  CHECK(e->scrub_counts().zeroed_in_background == 24 * kib);
}

TEST_CASE("scrub on_allocate: memory is zeroed when handed out, the next owner reads zeros") {
  auto r = run_scrub(scrub_policy::on_allocate);
  CHECK_FALSE(r.raw_zero_after_free); // zeroing happens later ...
  CHECK(r.read_zero_after_reuse);     // ... but before anyone can read it
}

TEST_CASE("scrub off: old data survives (so the tests above would catch a missing scrub)") {
  auto r = run_scrub(scrub_policy::off);
  CHECK_FALSE(r.raw_zero_after_free);
  CHECK_FALSE(r.read_zero_after_reuse);
}

TEST_CASE("scrub on_free: the only process that wrote freed memory takes it back unzeroed, "
          "any other writer, or the engine, makes it zeroed") {
  env e{[](engine_settings& s) { s.scrub_delay = 1min; }}; // the scrubber's thread stays out
  auto p = e.reg("p");
  auto q = e.reg("q");
  std::string mine(8 * kib, 'p');
  auto a = e.alloc(p, 8 * kib);
  auto offset = e.offset_of(a.block);
  REQUIRE_OK(e->write(p, a, 0, bytes_of(mine)));
  REQUIRE_OK(e->share(p, a, q.process, access_mode::read)); // a reader is no writer ...
  REQUIRE_OK(e->map(q, a, access_mode::read));
  REQUIRE_OK(e->map(p, a, access_mode::read));
  REQUIRE_OK(e->unmap(q, a));
  REQUIRE_OK(e->unmap(p, a));
  REQUIRE_OK(e->free(p, a));
  auto before = e->scrub_counts();
  auto again = e.alloc(p, 8 * kib); // ... so p gets its own bytes back without zeroing
  REQUIRE(e.offset_of(again.block) == offset);
  CHECK(text_of(*e->read(p, again, 0, 8 * kib)) == mine);
  CHECK(e->scrub_counts().kept_for_writer == before.kept_for_writer + 8 * kib);
  // they are p's bytes in the new block too: freed again, q does not get them
  REQUIRE_OK(e->free(p, again));
  auto theirs = e.alloc(q, 8 * kib);
  REQUIRE(e.offset_of(theirs.block) == offset);
  CHECK(all_zero(e->read(q, theirs, 0, 8 * kib)->data(), 8 * kib));
  REQUIRE_OK(e->free(q, theirs));
  // two writers (a writable view of q's): zeroed even for the owner
  auto b = e.alloc(p, 8 * kib);
  REQUIRE(e.offset_of(b.block) == offset);
  REQUIRE_OK(e->write(p, b, 0, bytes_of(mine)));
  REQUIRE_OK(e->share(p, b, q.process, access_mode::read_write));
  REQUIRE_OK(e->map(q, b, access_mode::read_write));
  REQUIRE_OK(e->unmap(q, b));
  REQUIRE_OK(e->free(p, b));
  auto c = e.alloc(p, 8 * kib);
  REQUIRE(e.offset_of(c.block) == offset);
  CHECK(all_zero(e->read(p, c, 0, 8 * kib)->data(), 8 * kib));
  // a copy into it by q: q wrote it
  auto src = e.alloc(q, 8 * kib);
  REQUIRE_OK(e->write(q, src, 0, bytes_of(std::string(8 * kib, 'q'))));
  REQUIRE_OK(e->share(p, c, q.process, access_mode::read_write));
  REQUIRE_OK(e->copy(q, src, c, {copy_range{0, 0, 8 * kib}}));
  REQUIRE_OK(e->free(p, c));
  auto d = e.alloc(p, 8 * kib);
  REQUIRE(e.offset_of(d.block) == offset);
  CHECK(all_zero(e->read(p, d, 0, 8 * kib)->data(), 8 * kib));
  // the engine's bytes (as for a peer's data): zeroed for everyone
  REQUIRE(static_cast<bool>(e->engine_bytes(d)));
  REQUIRE_OK(e->free(p, d));
  auto zeroed = e->scrub_counts().zeroed_by_engine;
  auto f = e.alloc(p, 8 * kib);
  REQUIRE(e.offset_of(f.block) == offset);
  CHECK(e->scrub_counts().zeroed_by_engine == zeroed + 8 * kib);
  CHECK(e->scrub_counts().kept_for_writer == before.kept_for_writer + 8 * kib);
  REQUIRE_OK(e->free(p, f)); // nobody wrote it since: nothing to zero
  REQUIRE_OK(e->free(q, src));
  CHECK(e->scrub_counts().pending_bytes == 8 * kib); // src
  CHECK(e->scrub_counts().zeroed_in_background == 0);
  auto st = e->stats(); // what `cafshm stats` shows
  auto counts = e->scrub_counts();
  CHECK(st.unscrubbed_bytes == 8 * kib);
  CHECK(st.scrubbed_in_background == 0);
  CHECK(st.scrubbed_on_allocation == counts.zeroed_by_engine);
  CHECK(st.scrub_skipped_for_writer == 8 * kib);
}

TEST_CASE("scrub on_free: an allocation waits for the piece the scrubber is zeroing, and "
          "the arena is all zeros once it is done") {
  env e{[](engine_settings& s) { s.scrub_delay = 0ms; }}; // the thread starts at once
  auto p = e.reg("p");
  auto q = e.reg("q");
  std::vector<block_ref> blocks;
  while (auto r = e->allocate(p, 64 * kib))
    blocks.push_back(*r);
  REQUIRE(blocks.size() >= 8);
  for (auto& b : blocks)
    REQUIRE_OK(e->write(p, b, 0, bytes_of(std::string(64 * kib, 'x'))));
  for (auto& b : blocks)
    REQUIRE_OK(e->free(p, b));
  // q takes the whole arena back while the scrubber may be at any piece of it
  std::vector<block_ref> again;
  for (size_t i = 0; i < blocks.size(); ++i)
    again.push_back(e.alloc(q, 64 * kib));
  for (auto& b : again) {
    auto seen = e->read(q, b, 0, 64 * kib);
    REQUIRE_OK(seen);
    CHECK(all_zero(seen->data(), seen->size()));
  }
  for (auto& b : again)
    REQUIRE_OK(e->free(q, b)); // nobody wrote them: nothing to zero
  CHECK(e->scrub_counts().pending_bytes == 0);
  auto c = e->scrub_counts();
  CHECK(c.zeroed_in_background + c.zeroed_by_engine == blocks.size() * 64 * kib);
}

TEST_CASE("scrub on_free also covers draining blocks and reclaimed processes") {
  env e{[](engine_settings& s) { s.scrub_delay = 1min; }}; // zeroed below, on this thread
  auto p = e.reg("p");
  auto a = e.alloc(p, 4 * kib);
  auto b = e.alloc(p, 4 * kib);
  REQUIRE_OK(e->write(p, a, 0, bytes_of(std::string(4 * kib, 'a'))));
  REQUIRE_OK(e->write(p, b, 0, bytes_of(std::string(4 * kib, 'b'))));
  REQUIRE_OK(e->map(p, a, access_mode::read));
  REQUIRE_OK(e->free(p, a));
  CHECK(e.raw(a.block)[0] == 'a'); // mapped: not yet
  CHECK(e->scrub_counts().pending_bytes == 0);
  REQUIRE_OK(e->unmap(p, a));
  CHECK(e->scrub_counts().pending_bytes == 4 * kib);
  e->reclaim(p.process);
  CHECK(e->scrub_counts().pending_bytes == 8 * kib);
  e->zero_freed_memory();
  CHECK(e->scrub_counts().pending_bytes == 0);
  CHECK(all_zero(e.raw(a.block), 4 * kib));
  CHECK(all_zero(e.raw(b.block), 4 * kib));
}

// -- segments -----------------------------------------------------------------------------------

TEST_CASE("data and admin are separate shared-memory objects, removed with the manager") {
  auto s = small_settings();
  s.permissions = 0640;
  segment_guard guard{s.name};
  {
    env e{s};
    CHECK(shm_segment::exists(guard.data()));
    CHECK(shm_segment::exists(guard.admin()));
    CHECK(guard.data() != guard.admin());
    CHECK(e->arena().name() == guard.data());
    CHECK(e->admin_memory().name() == guard.admin());
    CHECK(e->arena().size() == 1 * mib);
    CHECK(e->admin_memory().size() == memory_manager::admin_bytes(s));
    CHECK(e->arena().size() != e->admin_memory().size());
    CHECK(e->arena().data() != e->admin_memory().data());
    namespace fs = std::filesystem;
    REQUIRE(fs::exists(shm_path(guard.data())));
    REQUIRE(fs::exists(shm_path(guard.admin())));
    CHECK(fs::file_size(shm_path(guard.data())) == 1 * mib);
    CHECK(fs::file_size(shm_path(guard.admin())) == memory_manager::admin_bytes(s));
    struct stat st {};
    REQUIRE(::stat(shm_path(guard.data()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    REQUIRE(::stat(shm_path(guard.admin()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    // the arena holds only payload: a write lands in the data segment, not in admin memory
    auto p = e.reg("p");
    auto a = e.alloc(p, 16);
    CHECK_OK(e->write(p, a, 0, bytes_of("in the data seg")));
    auto opened = shm_segment::open(guard.data(), false);
    REQUIRE_OK(opened);
    CHECK(std::string(reinterpret_cast<const char*>(opened->data() + e.offset_of(a.block)), 15)
          == "in the data seg");
  }
  CHECK_FALSE(shm_segment::exists(guard.data()));
  CHECK_FALSE(shm_segment::exists(guard.admin()));
  CHECK_FALSE(std::filesystem::exists(shm_path(guard.data())));
  CHECK_FALSE(std::filesystem::exists(shm_path(guard.admin())));
}

TEST_CASE("create refuses segments of a live engine (same process and another process)") {
  env first;
  auto p = first.reg("p");
  auto a = first.alloc(p, 16);
  CHECK_OK(first->write(p, a, 0, bytes_of("first")));

  auto second = memory_manager::create(first.settings);
  REQUIRE_FALSE(second);
  CHECK(code_of(second.error()) == errc::segment_error);
  CHECK(describe(second.error()).find(std::to_string(::getpid())) != std::string::npos);

  // from another process: the recorded pid (ours) is alive
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto r = memory_manager::create(first.settings);
    int code = r ? 1 : (code_of(r.error()) == errc::segment_error ? 0 : 2);
    if (r)
      r->release(); // never run the destructor in the child
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  // the first engine's segments are untouched
  CHECK(shm_segment::exists(first.guard.data()));
  CHECK(shm_segment::exists(first.guard.admin()));
  auto admin_seg = shm_segment::open(first.guard.admin(), false);
  REQUIRE_OK(admin_seg);
  admin::admin_header h{};
  std::memcpy(&h, admin_seg->data(), sizeof(h));
  CHECK(h.engine_id == first->engine_id());
  auto data = first->read(p, a, 0, 5);
  REQUIRE_OK(data);
  CHECK(text_of(*data) == "first");
  auto data_seg = shm_segment::open(first.guard.data(), false);
  REQUIRE_OK(data_seg);
  CHECK(std::string(reinterpret_cast<const char*>(data_seg->data() + first.offset_of(a.block)), 5)
        == "first");
}

TEST_CASE("create replaces stale segments whose engine is gone") {
  auto s = small_settings();
  segment_guard guard{s.name};

  SUBCASE("recorded engine pid is dead") {
    fabricate_segments(guard, dead_pid(), realtime_ns(), true);
  }
  SUBCASE("segments never finished formatting (no magic)") {
    fabricate_segments(guard, static_cast<int32_t>(::getpid()), realtime_ns(), false);
  }
  SUBCASE("recorded pid is ours, but from before this process started (pid reuse)") {
    fabricate_segments(guard, static_cast<int32_t>(::getpid()), 1'000'000'000ull, true);
  }
  REQUIRE(shm_segment::exists(guard.data()));
  REQUIRE(shm_segment::exists(guard.admin()));
  {
    env e{s};
    CHECK(e->header().engine_pid == ::getpid());
    CHECK(e->header().engine_id != 42);
    CHECK(e->arena().size() == 1 * mib);
    CHECK(e->admin_memory().size() == memory_manager::admin_bytes(s));
    CHECK(std::filesystem::file_size(shm_path(guard.data())) == 1 * mib);
    // fresh memory, not the old contents
    CHECK(all_zero(reinterpret_cast<const char*>(e->arena().data()), 8192));
    auto p = e.reg("p");
    CHECK_OK(e->allocate(p, 10));
  }
  CHECK_FALSE(shm_segment::exists(guard.data()));
  CHECK_FALSE(shm_segment::exists(guard.admin()));
}

TEST_CASE("an arena that /dev/shm cannot hold fails with a segment_error naming /dev/shm") {
  auto space = query_shm_space();
  auto s = small_settings();
  s.arena_bytes = uint64_t{1} << 40; // 1 TiB, the largest valid arena
  s.min_block_bytes = 1 * mib;       // keeps admin memory small (8 MiB)
  segment_guard guard{s.name};
  // Only when /dev/shm is a size-limited file system too small for it: then the reservation is
  // refused at once instead of filling memory first.
  if (space.total_bytes == 0 || s.arena_bytes <= space.free_bytes
      || s.arena_bytes <= space.total_bytes) {
    MESSAGE("skipped: /dev/shm has " << (space.free_bytes >> 20) << " MiB free of "
                                     << (space.total_bytes >> 20) << " MiB");
    return;
  }
  auto mm = memory_manager::create(s);
  REQUIRE_FALSE(mm);
  CHECK(code_of(mm.error()) == errc::segment_error);
  auto text = describe(mm.error());
  INFO(text);
  CHECK(text.find("/dev/shm") != std::string::npos);
  CHECK(text.find(guard.data()) != std::string::npos);
  // nothing is left behind, not even the admin segment that was created first
  CHECK_FALSE(shm_segment::exists(guard.data()));
  CHECK_FALSE(shm_segment::exists(guard.admin()));
}

TEST_CASE("a 4 GiB arena works: a 2 GiB block, written at its end and read back") {
  auto space = query_shm_space();
  const uint64_t arena = 4 * gib;
  if (space.free_bytes < arena + 1 * gib) {
    MESSAGE("skipped: /dev/shm has only " << (space.free_bytes >> 20) << " MiB free");
    return;
  }
  env e{[](engine_settings& s) { s.arena_bytes = 4 * gib; }};
  CHECK(e->header().arena_bytes == 4 * gib);
  auto p = e.reg("p");
  auto low = e.alloc(p, 2 * gib);
  auto high = e.alloc(p, 2 * gib);
  CHECK(e.offset_of(low.block) == 0);
  CHECK(e.offset_of(high.block) == 2 * gib); // offsets beyond 32 bits of bytes
  CHECK_ERRC(e->allocate(p, 1), errc::out_of_memory);
  const std::string tail = "the end of two GiB";
  for (auto ref : {low, high}) {
    CHECK_OK(e->write(p, ref, 2 * gib - tail.size(), bytes_of(tail)));
    CHECK_OK(e->write(p, ref, 0, bytes_of("start")));
    auto back = e->read(p, ref, 2 * gib - tail.size(), tail.size());
    REQUIRE_OK(back);
    CHECK(text_of(*back) == tail);
    CHECK_ERRC(e->write(p, ref, 2 * gib - 1, bytes_of("xy")), errc::out_of_range);
  }
  // the bytes are where the offsets say: at the very end of the 4 GiB data segment
  CHECK(std::string(reinterpret_cast<const char*>(e->arena().data()) + 4 * gib - tail.size(),
                    tail.size())
        == tail);
  auto lease = e->map(p, high, access_mode::read);
  REQUIRE_OK(lease);
  CHECK(lease->offset == 2 * gib);
  CHECK(lease->size == 2 * gib);
  CHECK_OK(e->unmap(p, high));
  auto st = e->stats();
  CHECK(st.used_bytes == 4 * gib);
  CHECK(st.requested_bytes == 4 * gib);
}

// -- limits the engine sets -----------------------------------------------------------------------

TEST_CASE("quotas: a process may ask for less than its user's quota, never more") {
  auto me = own_credentials();
  SUBCASE("engine.default_quota") {
    env e{[](engine_settings& s) { s.default_quota_bytes = 64 * kib; }};
    CHECK_ERRC(e->register_process("greedy", ::getpid(), uint64_t{1} << 62),
               errc::quota_exceeded);
    CHECK_ERRC(e->register_process("greedy", ::getpid(), 64 * kib + 1), errc::quota_exceeded);
    CHECK(e->stats().processes == 0);
    auto modest = e.reg("modest", 16 * kib);
    CHECK(e.stats_of(modest.process)->quota_bytes == 16 * kib);
    auto plain = e.reg("plain");
    CHECK(e.stats_of(plain.process)->quota_bytes == 64 * kib);
    auto exact = e.reg("exact", 64 * kib);
    CHECK(e.stats_of(exact.process)->quota_bytes == 64 * kib);
    CHECK_OK(e->allocate(plain, 64 * kib));
    CHECK_ERRC(e->allocate(plain, 1), errc::quota_exceeded);
  }
  SUBCASE("engine.quotas: the user's rule wins over the group's, others get the default") {
    env e{[&](engine_settings& s) {
      s.default_quota_bytes = 64 * kib;
      s.quotas = {{"", std::to_string(me.gid), 32 * kib}, {std::to_string(me.uid), "", 8 * kib}};
    }};
    auto mine = e.reg("mine");
    CHECK(e.stats_of(mine.process)->quota_bytes == 8 * kib);
    CHECK_ERRC(e->register_process("more", ::getpid(), 16 * kib, me), errc::quota_exceeded);
    auto same_group = e->register_process("group", ::getpid(), 0, {me.uid + 1, me.gid});
    REQUIRE_OK(same_group);
    CHECK(e.stats_of(same_group->session.process)->quota_bytes == 32 * kib);
    auto stranger = e->register_process("stranger", ::getpid(), 0, {me.uid + 1, me.gid + 1});
    REQUIRE_OK(stranger);
    CHECK(e.stats_of(stranger->session.process)->quota_bytes == 64 * kib);
  }
  SUBCASE("a rule of 0 bytes means unlimited for that user") {
    env e{[&](engine_settings& s) {
      s.default_quota_bytes = 64 * kib;
      s.quotas = {{std::to_string(me.uid), "", 0}};
    }};
    auto big = e.reg("big", uint64_t{1} << 40);
    CHECK(e.stats_of(big.process)->quota_bytes == uint64_t{1} << 40);
  }
  SUBCASE("an unknown user in engine.quotas is a configuration error at creation") {
    auto s = small_settings();
    segment_guard guard{s.name};
    s.quotas = {{"no-such-user-cafshm", "", 1 * kib}};
    auto mm = memory_manager::create(s);
    REQUIRE_FALSE(mm);
    CHECK(code_of(mm.error()) == errc::config_error);
    CHECK(describe(mm.error()).find("no-such-user-cafshm") != std::string::npos);
  }
}

TEST_CASE("quotas: an engine.quotas rule bounds all live processes it applies to together") {
  auto me = own_credentials();
  env e{[&](engine_settings& s) {
    s.default_quota_bytes = 64 * kib;
    s.quotas = {{std::to_string(me.uid), "", 64 * kib}, {"", std::to_string(me.gid + 1), 32 * kib}};
  }};
  auto reg = [&](const std::string& name, process_credentials who) {
    auto r = e->register_process(name, ::getpid(), 0, who);
    REQUIRE_OK(r);
    return r->session;
  };
  auto a = reg("a", me);
  auto b = reg("b", me);
  auto c = reg("c", me);
  auto a1 = e.alloc(a, 32 * kib);
  auto b1 = e.alloc(b, 16 * kib);
  // c is far below its own 64 KiB, but the user's processes hold 48 KiB of their 64 together
  CHECK_ERRC(e->allocate(c, 32 * kib), errc::quota_exceeded);
  auto c1 = e.alloc(c, 16 * kib);
  CHECK_ERRC(e->allocate(a, 4 * kib), errc::quota_exceeded);
  // a transfer into a process of the user counts the same way
  auto other = reg("other", {me.uid + 1, me.gid + 5}); // another user: the default, per user
  auto gift = e.alloc(other, 8 * kib);
  CHECK_ERRC(e->transfer(other, gift, c.process), errc::quota_exceeded);
  // another user's processes are not counted with them, and the default holds per user
  auto other2 = reg("other2", {me.uid + 2, me.gid + 2});
  CHECK_OK(e->allocate(other2, 64 * kib));
  // a group rule bounds the processes of that group together
  auto g1 = reg("g1", {me.uid + 3, me.gid + 1});
  auto g2 = reg("g2", {me.uid + 4, me.gid + 1});
  CHECK_OK(e->allocate(g1, 16 * kib));
  CHECK_ERRC(e->allocate(g2, 32 * kib), errc::quota_exceeded);
  CHECK_OK(e->allocate(g2, 16 * kib));
  // what an ended process held counts no more
  CHECK_OK(e->free(a, a1));
  CHECK_OK(e->unregister(b));
  CHECK_OK(e->transfer(other, gift, c.process));
  CHECK_OK(e->allocate(c, 32 * kib));
  CHECK(e->check() == "");
  (void) b1;
  (void) c1;
}

TEST_CASE("quotas: engine.default_quota bounds all live processes of a user without a rule "
          "together, engine.max_processes_per_user caps how many a user registers") {
  auto me = own_credentials();
  const process_credentials other{me.uid + 1, me.gid + 1};
  const process_credentials ticketless{~uint32_t{0}, ~uint32_t{0}}; // what the engine gives them
  const process_credentials ruled1{me.uid + 2, me.gid + 9}, ruled2{me.uid + 3, me.gid + 9};
  env e{[&](engine_settings& s) {
    s.default_quota_bytes = 64 * kib;
    s.max_processes_per_user = 3;
    s.quotas = {{"", std::to_string(me.gid + 9), 16 * kib}};
  }};
  auto reg = [&](const std::string& name, process_credentials who) {
    auto r = e->register_process(name, ::getpid(), 0, who);
    REQUIRE_MESSAGE(static_cast<bool>(r), cafshm_test::why(r));
    return r->session;
  };
  auto a = reg("a", me);
  auto b = reg("b", me);
  auto c = reg("c", me);
  auto refused = e->register_process("d", ::getpid(), 0, me);
  REQUIRE_FALSE(refused);
  CHECK(code_of(refused.error()) == errc::too_many_processes);
  CHECK(describe(refused.error()).find("engine.max_processes_per_user (3)") != std::string::npos);
  CHECK(e->stats().processes == 3);
  // each may hold the whole default quota alone, all three no more than it together
  CHECK(e.stats_of(a.process)->quota_bytes == 64 * kib);
  auto a1 = e.alloc(a, 32 * kib);
  e.alloc(b, 16 * kib);
  auto too_much = e->allocate(c, 32 * kib);
  REQUIRE_FALSE(too_much);
  CHECK(code_of(too_much.error()) == errc::quota_exceeded);
  CHECK(describe(too_much.error()).find("engine.default_quota") != std::string::npos);
  auto c1 = e.alloc(c, 16 * kib);
  CHECK_ERRC(e->allocate(a, 4 * kib), errc::quota_exceeded);
  // a block moving between two processes of the user changes nothing the quota bounds
  CHECK_OK(e->transfer(a, a1, b.process));
  CHECK(e.stats_of(b.process)->bytes_in_use == 48 * kib);
  // another user: its own three processes and its own 64 KiB, untouched by the first user's
  auto x = reg("x", other);
  reg("y", other);
  reg("z", other);
  CHECK_ERRC(e->register_process("w", ::getpid(), 0, other), errc::too_many_processes);
  auto x1 = e.alloc(x, 64 * kib);
  // ticketless registrations are one user for both limits
  auto t = reg("t1", ticketless);
  auto t2 = reg("t2", ticketless);
  reg("t3", ticketless);
  CHECK_ERRC(e->register_process("t4", ::getpid(), 0, ticketless), errc::too_many_processes);
  e.alloc(t, 64 * kib);
  CHECK_ERRC(e->allocate(t2, 4 * kib), errc::quota_exceeded);
  // a rule bounds its processes together; the cap still counts per user
  auto r1 = reg("r1", ruled1);
  auto r2 = reg("r2", ruled2);
  e.alloc(r1, 16 * kib);
  CHECK_ERRC(e->allocate(r2, 4 * kib), errc::quota_exceeded);
  reg("r1b", ruled1);
  reg("r1c", ruled1);
  CHECK_ERRC(e->register_process("r1d", ::getpid(), 0, ruled1), errc::too_many_processes);
  CHECK(e->check() == "");
  // an ended process gives back its place and its bytes
  CHECK_OK(e->unregister(b)); // held a1 and b1: 48 KiB
  auto d = reg("d", me);
  CHECK_OK(e->allocate(d, 32 * kib));
  CHECK_ERRC(e->allocate(c, 32 * kib), errc::quota_exceeded); // 16 + 32 of 64 in use
  e->reclaim(a.process); // as crash reclaim does
  reg("e", me);
  CHECK(e->stats().processes == 3 + 3 + 3 + 4); // me, other, ticketless, the rule's two users
  CHECK(e->check() == "");
  (void) c1;
  (void) x1;
}

TEST_CASE("quotas: blocks given to the engine count against the giver, and need a name") {
  env e{[](engine_settings& s) { s.default_quota_bytes = 64 * kib; }};
  auto giver = e.reg("giver");
  auto reader = e.reg("reader");
  auto ref = e.alloc(giver, 64 * kib);
  CHECK_ERRC(e->transfer(giver, ref, process_id::engine), errc::invalid_argument); // unnamed
  CHECK_OK(e->name(giver, ref, "published"));
  REQUIRE_OK(e->transfer(giver, ref, process_id::engine));
  CHECK(e.block(ref.block).owner == admin::engine_slot);
  CHECK_OK(e->read(reader, ref, 0, 1));
  // the quota is still used up: giving the block away did not free any of it
  CHECK(e.stats_of(giver.process)->bytes_in_use == 64 * kib);
  CHECK_ERRC(e->allocate(giver, 1), errc::quota_exceeded);
  // removing the published block (by name) returns the quota
  CHECK_OK(e->remove(giver, "published"));
  CHECK(e.stats_of(giver.process)->bytes_in_use == 0);
  CHECK_OK(e->allocate(giver, 64 * kib));
  // once the giver is gone, a published block is charged to nobody and stays removable (the
  // giver's user has its default quota in use: this giver is another user)
  auto me = own_credentials();
  auto second = e->register_process("giver2", ::getpid(), 0, {me.uid + 1, me.gid + 1});
  REQUIRE_OK(second);
  auto kept = e.alloc(second->session, 4 * kib);
  CHECK_OK(e->name(second->session, kept, "kept"));
  CHECK_OK(e->transfer(second->session, kept, process_id::engine));
  CHECK_OK(e->unregister(second->session));
  CHECK(e.block(kept.block).charged_to == admin::engine_slot);
  CHECK(e.stats_of(process_id::engine)->bytes_in_use == 4 * kib);
  CHECK(e->check() == "");
  CHECK_OK(e->remove(reader, "kept"));
  CHECK(e.stats_of(process_id::engine)->bytes_in_use == 0);
}

TEST_CASE("quotas: a draining block counts against its last owner until the last view closes") {
  env e{[](engine_settings& s) { s.default_quota_bytes = 16 * kib; }};
  auto p = e.reg("p");
  auto ref = e.alloc(p, 16 * kib);
  REQUIRE_OK(e->map(p, ref, access_mode::read_write));
  CHECK_OK(e->free(p, ref)); // mapped, then freed: the memory stays held by the view
  CHECK(e->stats().draining_blocks == 1);
  CHECK(e.stats_of(p.process)->bytes_in_use == 16 * kib);
  CHECK_ERRC(e->allocate(p, 4 * kib), errc::quota_exceeded);
  CHECK_OK(e->unmap(p, ref));
  CHECK(e.stats_of(p.process)->bytes_in_use == 0);
  CHECK_OK(e->allocate(p, 16 * kib));
}

TEST_CASE("process names are unique per engine: an attacker registered first keeps the victim out") {
  env e;
  auto attacker = e.reg("consumer");
  auto victim = e->register_process("consumer", ::getpid(), 0);
  REQUIRE_FALSE(victim);
  CHECK(code_of(victim.error()) == errc::process_name_taken);
  CHECK(describe(victim.error()).find("'consumer'") != std::string::npos);
  auto producer = e.reg("producer");
  auto found = e->find_process(producer, "consumer");
  REQUIRE_OK(found);
  CHECK(*found == attacker.process); // the only process of that name: never a wrong one
  // the name is free again once its process is gone
  CHECK_OK(e->unregister(attacker));
  auto consumer = e.reg("consumer");
  CHECK(*e->find_process(producer, "consumer") == consumer.process);
}

TEST_CASE("copy: ranges and bytes per request are bounded (request_too_large), nothing moves") {
  env e{[](engine_settings& s) {
    s.arena_bytes = 32 * mib;
    s.max_copy_ranges = 16;
    s.max_copy_bytes = 1 * mib;
  }};
  auto p = e.reg("p");
  auto big = e.alloc(p, 16 * mib);
  CHECK_OK(e->write(p, big, 0, bytes_of("first")));
  auto version = e.block(big.block).version;
  // the request that held an engine for ~20 s: 8000 ranges of 16 MiB
  std::vector<copy_range> huge(8000, copy_range{0, 0, 16 * mib});
  CHECK_ERRC(e->copy(p, big, big, huge), errc::request_too_large);
  std::vector<copy_range> many(17, copy_range{0, 8, 1});
  CHECK_ERRC(e->copy(p, big, big, many), errc::request_too_large);
  std::vector<copy_range> bulky{{0, 0, 512 * kib}, {0, 512 * kib, 512 * kib + 1}};
  CHECK_ERRC(e->copy(p, big, big, bulky), errc::request_too_large);
  CHECK(e.block(big.block).version == version);
  // at the limits it works
  std::vector<copy_range> ok(16, copy_range{0, 8, 5});
  CHECK_OK(e->copy(p, big, big, ok));
  CHECK_OK(e->copy(p, big, big, {{0, 1 * mib, 1 * mib}}));
  CHECK(text_of(*e->read(p, big, 8, 5)) == "first");
}

TEST_CASE("error messages repeat at most 64 bytes of a name the caller sent") {
  env e;
  auto p = e.reg("p");
  std::string huge(1 * mib, 'n');
  auto ref = e.alloc(p, 10);
  auto bounded = [](const auto& result) {
    REQUIRE_FALSE(result);
    auto text = describe(result.error());
    CHECK(text.size() < 400);
    CHECK(text.find(std::to_string(1 * mib) + " bytes") != std::string::npos);
  };
  bounded(e->lookup(p, huge));
  bounded(e->remove(p, huge));
  bounded(e->find_process(p, huge));
  CHECK_OK(e->name(p, ref, std::string(40, 'x')));
  auto other = e.alloc(p, 10);
  auto taken = e->name(p, other, std::string(40, 'x'));
  REQUIRE_FALSE(taken);
  CHECK(describe(taken.error()).size() < 400);
  auto reg = e->register_process(huge, ::getpid(), 0);
  REQUIRE_FALSE(reg);
  CHECK(describe(reg.error()).size() < 400);
}

TEST_CASE("transfer ends every grant: a former grantee can no longer write, nothing stays pinned") {
  env e;
  auto a = e.reg("a");
  auto b = e.reg("b");
  auto c = e.reg("c");
  auto ref = e.alloc(a, 4 * kib);
  CHECK_OK(e->share(a, ref, c.process, access_mode::read_write));
  CHECK_OK(e->write(c, ref, 0, bytes_of("by c")));
  SUBCASE("a grantee with an open view: the transfer waits for it (block_in_use)") {
    REQUIRE_OK(e->map(c, ref, access_mode::read_write));
    CHECK_ERRC(e->transfer(a, ref, b.process), errc::block_in_use);
    CHECK(e.block(ref.block).owner == to_slot(a.process));
    CHECK_OK(e->unmap(c, ref));
  }
  REQUIRE_OK(e->transfer(a, ref, b.process));
  CHECK(e.block(ref.block).owner == to_slot(b.process));
  CHECK(e.grant(ref.block, c.process) == nullptr);
  CHECK(e->stats().grants == 0);
  CHECK_ERRC(e->write(c, ref, 0, bytes_of("late")), errc::access_denied);
  CHECK_ERRC(e->map(c, ref, access_mode::read), errc::access_denied);
  CHECK_ERRC(e->read(c, ref, 0, 1), errc::access_denied);
  CHECK_OK(e->revoke(b, ref, c.process)); // nothing left to revoke
  // the new owner decides who may use it now
  CHECK_OK(e->share(b, ref, c.process, access_mode::read));
  CHECK_OK(e->read(c, ref, 0, 4));
  CHECK_OK(e->free(b, ref));
  CHECK(e->stats().blocks == 0);
}

TEST_CASE("page size: a min_block below the system's page size is refused at creation") {
  auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  auto s = small_settings();
  s.min_block_bytes = page / 2;
  segment_guard guard{s.name};
  auto mm = memory_manager::create(s);
  REQUIRE_FALSE(mm);
  CHECK(code_of(mm.error()) == errc::config_error);
  CHECK(describe(mm.error()).find("page size of " + std::to_string(page)) != std::string::npos);
  CHECK_FALSE(shm_segment::exists(guard.admin()));
}

TEST_CASE("a forged header with the right magic and a live pid (1) does not block an engine") {
  auto s = small_settings();
  segment_guard guard{s.name};
  fabricate_segments(guard, 1, realtime_ns(), true); // pid 1 is always alive
  env e{s};                                             // no engine holds the lock: stale
  CHECK(e->header().engine_id != 42);
  CHECK(e->header().engine_pid == ::getpid());
}
