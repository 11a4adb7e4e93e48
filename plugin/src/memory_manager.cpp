#include "memory_manager.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <tuple>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_check.hpp"
#include "bounded_text.hpp"
#include "cafshm/error.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/process_gone_notice.hpp"
#include "process_identity.hpp"
#include "unix_identity.hpp"

namespace cafshm {

namespace {

using admin::access;
using admin::block_state;
using admin::no_index;
using admin::process_state;

// Requests name processes by process_id; admin memory indexes process_entry by the same number
// as a uint32_t slot (admin_layout.hpp). The requester's slot:
uint32_t slot_of(const session& s) noexcept {
  return to_slot(s.process);
}

constexpr uint64_t align64(uint64_t n) {
  return (n + 63) & ~uint64_t{63};
}

uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

struct section_offsets {
  uint64_t allocator, allocator_bytes, segment, process, block, grant, name, total;
};

uint32_t page_shift_of(const engine_settings& s) {
  return static_cast<uint32_t>(std::countr_zero(s.min_block_bytes));
}

uint32_t arena_pages_of(const engine_settings& s) {
  return static_cast<uint32_t>(s.arena_bytes >> page_shift_of(s));
}

// The allocator's page space: room for the ceiling, plus hole pages between data segments (two
// per added segment) when the arena may grow.
uint32_t space_pages_of(const engine_settings& s) {
  auto ceiling = static_cast<uint32_t>(s.arena_ceiling() >> page_shift_of(s));
  return ceiling > arena_pages_of(s) ? ceiling + 2 * admin::max_segments : ceiling;
}

section_offsets layout_of(const engine_settings& s) {
  section_offsets o{};
  o.allocator = align64(sizeof(admin::admin_header));
  o.allocator_bytes = tlsf_allocator::state_bytes(space_pages_of(s));
  o.segment = align64(o.allocator + o.allocator_bytes);
  o.process = align64(o.segment + uint64_t{admin::max_segments} * sizeof(admin::segment_entry));
  o.block = align64(o.process + uint64_t{s.max_processes} * sizeof(admin::process_entry));
  o.grant = align64(o.block + uint64_t{s.max_blocks} * sizeof(admin::block_entry));
  o.name = align64(o.grant + uint64_t{s.max_grants} * sizeof(admin::grant_entry));
  o.total = align64(o.name + uint64_t{s.max_names} * sizeof(admin::name_entry));
  return o;
}

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= admin::max_name_length
         && name.find('\0') == std::string_view::npos;
}

access need_of(access_mode m) {
  return m == access_mode::read_write ? access::read_write : access::read;
}

// Path of a POSIX shared-memory object (glibc keeps them in /dev/shm).
std::string shm_path(const std::string& name) {
  return "/dev/shm/" + name;
}

// Refuses a segment of another Unix user: the engine neither adopts nor removes it.
caf::expected<void> check_owner(const std::string& name) {
  struct stat st{};
  if (::stat(shm_path(name).c_str(), &st) != 0)
    return {}; // not there
  auto me = ::geteuid();
  if (st.st_uid == me)
    return {};
  return make_error(errc::segment_error,
                    "segment '" + name + "' belongs to uid " + std::to_string(st.st_uid)
                      + ", not to this engine's uid " + std::to_string(me)
                      + ": the engine neither adopts nor removes it; remove it as its owner or "
                        "root (rm " + shm_path(name) + ") or configure another engine.name");
}

std::string added_name(const std::string& data_name, uint32_t index) {
  return data_name + "." + std::to_string(index);
}

// Removes the data segment `data_name` and every data segment its engine may have added.
void remove_data_segments(const std::string& data_name) {
  shm_segment::remove(data_name);
  for (uint32_t i = 1; i < admin::max_segments; ++i)
    shm_segment::remove(added_name(data_name, i));
}

// Takes the lock that marks a live engine on an admin segment; -1 with errno when it cannot.
int lock_segment(const std::string& name) {
  int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// Segments of a dead engine, held under its lock until adopted or removed.
struct stale_segments {
  int lock_fd = -1;
  shm_segment admin;
  shm_segment data;
};

// Refuses segments of a live engine (it holds the admin segment's lock) or of another user;
// otherwise returns the dead engine's segments (locked, mapped read-write) when both are there
// (nullopt when there is nothing to adopt; a lone leftover is removed).
caf::expected<std::optional<stale_segments>> take_stale_segments(const std::string& data,
                                                                 const std::string& admin) {
  if (auto owned = check_owner(admin); !owned)
    return owned.error();
  if (auto owned = check_owner(data); !owned)
    return owned.error();
  if (!shm_segment::exists(admin)) {
    remove_data_segments(data);
    return std::nullopt;
  }
  int fd = lock_segment(admin);
  if (fd < 0 && errno == EWOULDBLOCK) {
    std::string pid = "unknown pid";
    if (auto seg = shm_segment::open(admin, false);
        seg && seg->size() >= sizeof(admin::admin_header)) {
      admin::admin_header h;
      std::memcpy(&h, seg->data(), sizeof(h));
      pid = "pid " + std::to_string(h.engine_pid);
    }
    return make_error(errc::segment_error,
                      "segments '" + data + "' and '" + admin + "' belong to a running engine ("
                        + pid + ", holding the admin segment's lock); stop it or configure "
                        + "another engine.name");
  }
  auto admin_seg = fd >= 0 ? shm_segment::open(admin, true) : caf::expected<shm_segment>{caf::error{}};
  auto data_seg = fd >= 0 && shm_segment::exists(data) ? shm_segment::open(data, true)
                                                       : caf::expected<shm_segment>{caf::error{}};
  if (fd >= 0 && admin_seg && data_seg)
    return stale_segments{fd, std::move(*admin_seg), std::move(*data_seg)};
  shm_segment::remove(admin); // while holding the dead engine's lock: no one adopts it meanwhile
  remove_data_segments(data);
  if (fd >= 0)
    ::close(fd);
  return std::nullopt;
}

} // namespace

// -- construction -------------------------------------------------------------------------------

uint64_t memory_manager::admin_bytes(const engine_settings& s) {
  return layout_of(s).total;
}

std::string memory_manager::data_segment_name(const std::string& engine_name) {
  return engine_name + ".data";
}

std::string memory_manager::admin_segment_name(const std::string& engine_name) {
  return engine_name + ".admin";
}

std::string memory_manager::added_segment_name(const std::string& engine_name, uint32_t index) {
  return added_name(data_segment_name(engine_name), index);
}

void memory_manager::remove_segments(const std::string& engine_name) {
  remove_data_segments(data_segment_name(engine_name));
  shm_segment::remove(admin_segment_name(engine_name));
}

caf::expected<std::unique_ptr<memory_manager>>
memory_manager::create(const engine_settings& s) {
  auto data_name = data_segment_name(s.name);
  auto admin_name = admin_segment_name(s.name);
  std::optional<gid_t> group;
  if (!s.group.empty() && !(group = group_id_of(s.group)))
    return make_error(errc::config_error, "engine.group: no such Unix group '" + s.group + "'");
  if (auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)); s.min_block_bytes < page)
    return make_error(errc::config_error,
                      "engine.min_block: " + std::to_string(s.min_block_bytes)
                        + " bytes is below the page size of " + std::to_string(page)
                        + " bytes (a view of one block would map its neighbours)");
  auto quotas = quota_policy::make(s);
  if (!quotas)
    return quotas.error();
  auto stale = take_stale_segments(data_name, admin_name);
  if (!stale)
    return stale.error();
  // Inboxes of processes that died while no engine of this name ran to reclaim their slots
  // (those of live processes riding through an engine's death stay).
  fastpath::inbox::remove_inboxes(s.name, fastpath::inbox::owners::ended);
  std::string refusal;
  if (*stale) {
    auto& old = **stale;
    refusal = adoption_refusal({old.admin.data(), old.admin.size()}, old.data.size(), s);
    std::vector<shm_segment> data;
    std::vector<std::string> names{admin_name, data_name};
    if (refusal.empty()) { // every data segment of the table, with its size
      admin::admin_header h;
      std::memcpy(&h, old.admin.data(), sizeof(h));
      auto* table = reinterpret_cast<const admin::segment_entry*>(old.admin.data()
                                                                  + h.segment_offset);
      data.resize(admin::max_segments);
      data[0] = std::move(old.data);
      for (uint32_t i = 1; i < admin::max_segments && refusal.empty(); ++i) {
        if (table[i].pages == 0)
          continue;
        auto name = added_name(data_name, i);
        uint64_t bytes = uint64_t{table[i].pages} << h.min_order;
        auto seg = shm_segment::open(name, true);
        if (!seg || seg->size() != bytes)
          refusal = "data segment '" + name + "' of its arena is "
                    + (seg ? "not " + std::to_string(bytes) + " bytes long" : "missing");
        else
          data[i] = std::move(*seg);
        names.push_back(std::move(name));
      }
    }
    if (refusal.empty()) {
      // The configured mode and group apply to adopted segments as to new ones.
      for (const auto& name : names) {
        if (group)
          (void) !::chown(shm_path(name).c_str(), static_cast<uid_t>(-1), *group);
        ::chmod(shm_path(name).c_str(),
                static_cast<mode_t>(group ? s.permissions | 0060 : s.permissions));
      }
      std::unique_ptr<memory_manager> result{new memory_manager(
        s, std::move(*quotas), old.lock_fd, std::move(data), std::move(old.admin), true)};
      return result;
    }
    data.clear();
    shm_segment::remove(admin_name); // still under the dead engine's lock
    remove_data_segments(data_name);
    ::close(old.lock_fd);
    stale->reset();
  }
  auto admin = shm_segment::create(admin_name, admin_bytes(s), s.permissions, group);
  if (!admin)
    return admin.error();
  admin->remove_on_destroy(true);
  int lock_fd = lock_segment(admin_name);
  if (lock_fd < 0)
    return make_error(errc::segment_error, "cannot lock segment '" + admin_name + "': "
                                             + std::strerror(errno));
  auto data = shm_segment::create(data_name, s.arena_bytes, s.permissions, group);
  if (!data) {
    ::close(lock_fd);
    return data.error();
  }
  data->remove_on_destroy(true);
  std::vector<shm_segment> segments(admin::max_segments);
  segments[0] = std::move(*data);
  std::unique_ptr<memory_manager> result{new memory_manager(
    s, std::move(*quotas), lock_fd, std::move(segments), std::move(*admin), false)};
  if (!refusal.empty())
    result->start_report_ = "not adopting the segments of a dead engine: " + refusal
                            + "; started fresh (engine id " + std::to_string(result->engine_id())
                            + ")";
  return result;
}

std::string memory_manager::adoption_refusal(std::span<std::byte> admin, uint64_t data_bytes,
                                             const engine_settings& s) {
  if (admin.size() < sizeof(admin::admin_header))
    return "admin memory is shorter than its header";
  admin::admin_header h;
  std::memcpy(&h, admin.data(), sizeof(h));
  if (h.magic != admin::magic)
    return "admin memory was never fully formatted (no magic)";
  if (h.layout_version != admin::layout_version)
    return "admin memory has layout version " + std::to_string(h.layout_version)
           + ", this engine writes version " + std::to_string(admin::layout_version);
  auto o = layout_of(s);
  if (h.initial_arena_bytes != s.arena_bytes || h.max_arena_bytes != s.arena_ceiling()
      || h.max_segments != admin::max_segments || h.min_order != page_shift_of(s)
      || h.max_processes != s.max_processes || h.max_blocks != s.max_blocks
      || h.max_grants != s.max_grants || h.max_names != s.max_names || h.total_bytes != o.total
      || admin.size() != o.total)
    return "its geometry differs from this configuration (arena "
           + std::to_string(h.initial_arena_bytes) + " bytes growing up to "
           + std::to_string(h.max_arena_bytes) + ", 2^" + std::to_string(h.min_order)
           + "-byte pages, tables "
           + std::to_string(h.max_processes) + "/" + std::to_string(h.max_blocks) + "/"
           + std::to_string(h.max_grants) + "/" + std::to_string(h.max_names)
           + " processes/blocks/grants/names)";
  if (data_bytes != h.initial_arena_bytes)
    return "the data segment has " + std::to_string(data_bytes) + " bytes, admin memory says "
           + std::to_string(h.initial_arena_bytes);
  if (h.changing != 0)
    return "its engine died in the middle of a change to admin memory";
  if (auto err = check_admin_memory(admin); !err.empty())
    return "admin memory is inconsistent: " + err;
  return {};
}

memory_manager::memory_manager(const engine_settings& s, quota_policy quotas, int lock_fd,
                               std::vector<shm_segment> data, shm_segment admin, bool adopt)
  : settings_(s),
    quotas_(std::move(quotas)),
    lock_fd_(lock_fd),
    segments_(std::move(data)),
    admin_(std::move(admin)),
    allocator_(adopt ? tlsf_allocator::attach({admin_.data() + layout_of(s).allocator,
                                               layout_of(s).allocator_bytes})
                     : tlsf_allocator::create({admin_.data() + layout_of(s).allocator,
                                               layout_of(s).allocator_bytes},
                                              page_shift_of(s), space_pages_of(s),
                                              arena_pages_of(s))),
    tokens_(s.max_processes, 0),
    quota_rules_(s.max_processes, -1),
    users_(s.max_processes, ~uint32_t{0}),
    quota_group_(s.max_processes, no_index),
    concealed_(s.max_blocks, 0),
    writable_opens_(s.max_blocks, 0),
    writers_(s.max_blocks),
    random_(std::random_device{}()) {
  // used * 100 > capacity * warn_percent  <=>  used > capacity * warn_percent / 100 (rounded down)
  uint64_t capacity[] = {s.arena_ceiling(), s.max_blocks, s.max_grants, s.max_names,
                         s.max_processes - 1}; // the order of capacities()
  for (size_t i = 0; i < warn_above_.size(); ++i)
    warn_above_[i] = capacity[i] * warn_percent / 100;
  if (adopt)
    start_report_ = this->adopt();
  else
    format();
  if (settings_.scrub == scrub_policy::on_free)
    scrubber_.start();
}

// Whoever reads `changing` (an engine adopting the segments after this one died, a snapshot
// taken from another process) needs only that it is seen set before any change to the tables
// and seen clear only after all of them: an order among this engine's stores. Release fences
// give it (on x86 they only keep the compiler from moving stores across them; a full fence
// there, mfence, costs tens of cycles twice per request).
memory_manager::change_scope::change_scope(memory_manager& mm) noexcept : mm_(mm) {
  if (mm_.change_depth_++ == 0) {
    mm_.header_mut().changing = 1;
    std::atomic_thread_fence(std::memory_order_release);
  }
}

memory_manager::change_scope::~change_scope() {
  if (--mm_.change_depth_ == 0) {
    std::atomic_thread_fence(std::memory_order_release);
    mm_.header_mut().changing = 0;
  }
}

std::string memory_manager::adopt() {
  adopted_ = true;
  change_scope changing{*this};
  auto& h = header_mut();
  h.engine_pid = ::getpid();
  ++h.adoptions;
  auto& engine = process(admin::engine_slot);
  engine.pid = ::getpid();
  engine.start_ticks = start_ticks_of(::getpid()).value_or(0);
  tokens_[admin::engine_slot] = random_() | 1; // other slots: none until a process re-attaches
  for (auto& w : writers_) // what the blocks hold came from whoever: never kept unzeroed
    w = background_scrubber::anyone;
  for (uint32_t i = 0; i < settings_.max_blocks; ++i) {
    auto& b = block(i);
    if (b.state != block_state::free && b.name != no_index)
      names_.emplace(std::string{name_at(b.name).name}, b.name);
  }
  // The dead engine's own views (pins of transfers it was sending) end with it.
  for (uint32_t i = 0; i < settings_.max_blocks; ++i) {
    auto& b = block(i);
    if (b.state == block_state::free)
      continue;
    if (b.owner == admin::engine_slot) {
      b.refcount -= b.owner_views;
      b.owner_views = 0;
    }
    if (auto g = find_grant(i, admin::engine_slot); g != no_index) {
      b.refcount -= grant(g).views;
      grant(g).views = 0;
      if (grant(g).mode == access::none)
        drop_grant(i, g);
    }
    finish_if_drained(i);
  }
  // Its private copies (blocks being received from peers, cached copies) are the engine-held
  // blocks without a name (a process can give the engine only a named block): nobody can
  // reach them any more.
  uint32_t private_blocks = 0;
  for (uint32_t i = 0; i < settings_.max_blocks; ++i) {
    auto& b = block(i);
    if (b.state == block_state::live && b.owner == admin::engine_slot && b.name == no_index) {
      release_from_owner(i);
      finish_if_drained(i);
      ++private_blocks;
    }
  }
  uint32_t kept = 0, dropped = 0;
  for (uint32_t slot = 1; slot < settings_.max_processes; ++slot) {
    if (!slot_live(slot))
      continue;
    if (slot_runs(slot)) {
      ++kept;
      // The engine.quotas rule that bounds it together with its user's other processes: from
      // the ids the OS gives the process now, as the door gave them at registration.
      if (auto ids = effective_ids_of(process(slot).pid)) {
        quota_rules_[slot] = quotas_.rule_for(process_credentials{ids->first, ids->second});
        users_[slot] = ids->first;
      }
    } else { // ended (a zombie too), its pid reused, or never verified: crash reclaim
      reclaim_slot(slot);
      ++dropped;
    }
  }
  for (uint32_t slot = 1; slot < settings_.max_processes; ++slot)
    if (slot_live(slot))
      join_quota_group(slot);
  recount_quota_groups(); // the reclaims above may have moved charges of kept processes
  if (settings_.scrub == scrub_policy::on_free)
    mark_free_memory_dirty();
  return "adopted the segments of a dead engine (engine id " + std::to_string(h.engine_id)
         + ", adoption " + std::to_string(h.adoptions) + "): " + std::to_string(kept)
         + " processes kept, " + std::to_string(dropped) + " reclaimed (ended or unverified), "
         + std::to_string(private_blocks) + " private engine blocks freed";
}

memory_manager::~memory_manager() {
  scrubber_.stop(); // it writes the data segments, which go below
  // Every inbox named after this engine: the slots they belong to end with it, also those of
  // processes that died (or are dying) and that it has not reclaimed yet.
  fastpath::inbox::remove_inboxes(settings_.name, fastpath::inbox::owners::any);
  // Names go before the lock: once it is released, a new engine may create segments of the
  // same names, which must not be removed here.
  for (auto& data : segments_)
    if (data) {
      shm_segment::remove(data.name());
      data.remove_on_destroy(false);
    }
  if (admin_) {
    shm_segment::remove(admin_.name());
    admin_.remove_on_destroy(false);
  }
  if (lock_fd_ >= 0)
    ::close(lock_fd_);
}

void memory_manager::format() {
  auto o = layout_of(settings_);
  auto& h = header_mut();
  h.layout_version = admin::layout_version;
  h.header_bytes = sizeof(admin::admin_header);
  do
    h.engine_id = random_();
  while (h.engine_id == 0);
  h.engine_pid = ::getpid();
  h.start_epoch_ns = realtime_ns();
  h.arena_bytes = settings_.arena_bytes;
  h.initial_arena_bytes = settings_.arena_bytes;
  h.max_arena_bytes = settings_.arena_ceiling();
  h.peak_arena_bytes = settings_.arena_bytes;
  h.max_segments = admin::max_segments;
  h.live_segments = 1;
  h.min_order = allocator_.page_shift();
  h.max_processes = settings_.max_processes;
  h.max_blocks = settings_.max_blocks;
  h.max_grants = settings_.max_grants;
  h.max_names = settings_.max_names;
  h.allocator_offset = o.allocator;
  h.allocator_bytes = o.allocator_bytes;
  h.segment_offset = o.segment;
  h.process_offset = o.process;
  h.block_offset = o.block;
  h.grant_offset = o.grant;
  h.name_offset = o.name;
  h.total_bytes = o.total;
  std::snprintf(h.data_segment, sizeof(h.data_segment), "%s", segments_[0].name().c_str());
  segment(0) = {0, arena_pages_of(settings_), h.start_epoch_ns};
  // Tables: every entry free and on its free list; the engine takes slot 0.
  for (uint32_t i = 0; i < settings_.max_blocks; ++i) {
    auto& b = block(i);
    b = admin::block_entry{};
    b.grant_head = no_index;
    b.name = no_index;
    b.next_free = i + 1 < settings_.max_blocks ? i + 1 : no_index;
  }
  for (uint32_t i = 0; i < settings_.max_grants; ++i)
    grant(i) = {no_index, 0, i + 1 < settings_.max_grants ? i + 1 : no_index, 0,
                access::none, {}, 0};
  for (uint32_t i = 0; i < settings_.max_names; ++i) {
    auto& n = name_at(i);
    n = admin::name_entry{};
    n.block = no_index;
    n.next_free = i + 1 < settings_.max_names ? i + 1 : no_index;
  }
  h.free_block_head = settings_.max_blocks > 0 ? 0 : no_index;
  h.free_grant_head = settings_.max_grants > 0 ? 0 : no_index;
  h.free_name_head = settings_.max_names > 0 ? 0 : no_index;
  auto& engine = process(admin::engine_slot);
  engine.state = process_state::live;
  engine.generation = 1;
  engine.pid = ::getpid();
  engine.start_ticks = start_ticks_of(::getpid()).value_or(0);
  engine.registered_ns = h.start_epoch_ns;
  std::snprintf(engine.name, sizeof(engine.name), "%s", "engine");
  tokens_[admin::engine_slot] = random_() | 1;
  std::atomic_thread_fence(std::memory_order_release);
  h.magic = admin::magic;
}

// -- access to admin memory ---------------------------------------------------------------------

const admin::admin_header& memory_manager::header() const noexcept {
  return *reinterpret_cast<const admin::admin_header*>(admin_.data());
}

admin::admin_header& memory_manager::header_mut() noexcept {
  return *reinterpret_cast<admin::admin_header*>(admin_.data());
}

admin::process_entry& memory_manager::process(uint32_t slot) const noexcept {
  return reinterpret_cast<admin::process_entry*>(admin_.data() + header().process_offset)[slot];
}

admin::block_entry& memory_manager::block(uint32_t index) const noexcept {
  return reinterpret_cast<admin::block_entry*>(admin_.data() + header().block_offset)[index];
}

admin::grant_entry& memory_manager::grant(uint32_t index) const noexcept {
  return reinterpret_cast<admin::grant_entry*>(admin_.data() + header().grant_offset)[index];
}

admin::name_entry& memory_manager::name_at(uint32_t index) const noexcept {
  return reinterpret_cast<admin::name_entry*>(admin_.data() + header().name_offset)[index];
}

admin::segment_entry& memory_manager::segment(uint32_t index) const noexcept {
  return reinterpret_cast<admin::segment_entry*>(admin_.data() + header().segment_offset)[index];
}

uint32_t memory_manager::segment_of(uint32_t page) const noexcept {
  if (header().live_segments > 1)
    for (uint32_t i = 1; i < admin::max_segments; ++i)
      if (auto& seg = segment(i); page - seg.first_page < seg.pages) // pages 0: never
        return i;
  return 0;
}

std::byte* memory_manager::payload(const admin::block_entry& b) const noexcept {
  auto i = segment_of(b.page);
  uint64_t offset = uint64_t{b.page - segment(i).first_page} << allocator_.page_shift();
  return segments_[i].data() + offset;
}

// -- the arena grows and shrinks ----------------------------------------------------------------

std::string memory_manager::grow(uint64_t size) {
  auto& h = header_mut();
  uint64_t need = allocator_.occupied_bytes(size);
  uint64_t page = allocator_.page_bytes();
  auto empty = [&](uint32_t i) {
    return segment(i).pages != 0 && allocator_.range_free(segment(i).first_page, segment(i).pages);
  };
  // Empty added segments that the hysteresis of remove_empty_segments keeps make room under the
  // ceiling (or a table entry) for the one this request needs.
  uint64_t empty_bytes = 0;
  for (uint32_t i = 1; i < admin::max_segments; ++i)
    if (empty(i))
      empty_bytes += uint64_t{segment(i).pages} << allocator_.page_shift();
  if (need > h.max_arena_bytes - h.arena_bytes + empty_bytes)
    return "no free block fits and the arena cannot grow by " + std::to_string(need)
           + " bytes within its ceiling";
  for (uint32_t i = 1; i < admin::max_segments && need > h.max_arena_bytes - h.arena_bytes; ++i)
    if (empty(i))
      remove_segment(i);
  uint32_t index = 1;
  while (index < admin::max_segments && segment(index).pages != 0)
    ++index;
  for (uint32_t i = 1; i < admin::max_segments && index == admin::max_segments; ++i)
    if (empty(i)) {
      remove_segment(i);
      index = i;
    }
  if (index == admin::max_segments)
    return "no free block fits and all " + std::to_string(admin::max_segments)
           + " data segments are in use";
  // At least the initial size, and large enough that the table's segments reach the ceiling
  // (less only where the ceiling stops it): a full table means an arena at its ceiling, unless
  // segments cut short by the ceiling remain after others were removed.
  uint64_t room = h.max_arena_bytes - h.arena_bytes;
  uint64_t share = (h.max_arena_bytes - h.initial_arena_bytes) / (admin::max_segments - 1);
  uint64_t share_rounded = (share + page - 1) / page * page;
  uint64_t bytes = std::min(std::max({need, h.initial_arena_bytes, share_rounded}), room);
  auto pages = static_cast<uint32_t>(bytes >> allocator_.page_shift());
  // The lowest gap of the page space that takes the segment with a hole page on both sides (or
  // one before it at the end of the page space); none: pack the segments, then the gap at the
  // end takes it (the page space is the ceiling plus two pages per segment).
  auto place = [&]() -> uint32_t {
    std::vector<admin::segment_entry> live;
    for (uint32_t i = 0; i < admin::max_segments; ++i)
      if (segment(i).pages != 0)
        live.push_back(segment(i));
    std::sort(live.begin(), live.end(),
              [](const auto& a, const auto& b) { return a.first_page < b.first_page; });
    for (size_t k = 0; k < live.size(); ++k) {
      uint64_t start = uint64_t{live[k].first_page} + live[k].pages + 1;
      uint64_t limit = k + 1 < live.size() ? live[k + 1].first_page - 1 : allocator_.space_pages();
      if (limit >= start && limit - start >= pages)
        return static_cast<uint32_t>(start);
    }
    return tlsf_allocator::no_page;
  };
  uint32_t first = place();
  if (first == tlsf_allocator::no_page) {
    compact_segments();
    first = place();
    if (first == tlsf_allocator::no_page) // cannot happen: check() would report the page space
      return "no free block fits and the page space has no room for a segment of "
             + std::to_string(bytes) + " bytes even with its segments packed";
  }
  std::optional<gid_t> group;
  if (!settings_.group.empty())
    group = group_id_of(settings_.group);
  auto name = added_name(segments_[0].name(), index);
  shm_segment::remove(name); // a leftover of a dead engine of this name (this one holds the lock)
  auto seg = shm_segment::create(name, bytes, settings_.permissions, group);
  if (!seg)
    return "no free block fits and adding a data segment failed: " + describe(seg.error());
  if (!allocator_.add_range(first, pages)) {
    shm_segment::remove(name);
    return "no free block fits and the allocator refused the range of a new data segment";
  }
  segment(index) = {first, pages, realtime_ns()};
  segments_[index] = std::move(*seg);
  h.arena_bytes += bytes;
  h.peak_arena_bytes = std::max(h.peak_arena_bytes, h.arena_bytes);
  ++h.live_segments;
  ++h.segments_added;
  if (log_)
    log_("added data segment '" + name + "' of " + std::to_string(bytes) + " bytes: arena "
         + std::to_string(h.arena_bytes) + " of at most " + std::to_string(h.max_arena_bytes)
         + " bytes in " + std::to_string(h.live_segments) + " segments");
  return {};
}

void memory_manager::compact_segments() {
  std::vector<uint32_t> order;
  for (uint32_t i = 1; i < admin::max_segments; ++i)
    if (segment(i).pages != 0)
      order.push_back(i);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return segment(a).first_page < segment(b).first_page; });
  struct move {
    uint32_t first, pages, by;
  };
  std::vector<move> moves;
  for (auto i : order) { // lowest first: each slides into the room the ones before it left
    auto& seg = segment(i);
    auto to = allocator_.slide_range_down(seg.first_page, seg.pages);
    if (to == tlsf_allocator::no_page || to == seg.first_page)
      continue; // no_page cannot happen: check() would report the page space
    moves.push_back({seg.first_page, seg.pages, seg.first_page - to});
    seg.first_page = to;
  }
  if (moves.empty())
    return;
  for (uint32_t i = 0; i < settings_.max_blocks; ++i) {
    auto& b = block(i);
    if (b.state == block_state::free)
      continue;
    for (const auto& m : moves)
      if (b.page - m.first < m.pages) {
        b.page -= m.by;
        break;
      }
  }
  if (log_)
    log_("packed " + std::to_string(moves.size()) + " data segment(s) in the page space");
}

void memory_manager::remove_segment(uint32_t i) {
  auto& h = header_mut();
  auto& seg = segment(i);
  uint64_t bytes = uint64_t{seg.pages} << allocator_.page_shift();
  if (!allocator_.remove_range(seg.first_page, seg.pages))
    return; // cannot happen: check() would report the broken page space
  scrubber_.forget(segments_[i].data(), bytes);
  seg = admin::segment_entry{};
  h.arena_bytes -= bytes;
  --h.live_segments;
  ++h.segments_removed;
  shm_segment::remove(segments_[i].name());
  if (log_)
    log_("removed empty data segment '" + segments_[i].name() + "' of " + std::to_string(bytes)
         + " bytes: arena " + std::to_string(h.arena_bytes) + " bytes in "
         + std::to_string(h.live_segments) + " segments");
  segments_[i] = shm_segment{};
}

void memory_manager::remove_empty_segments() {
  auto& h = header_mut();
  for (uint32_t i = 1; i < admin::max_segments && h.live_segments > 1; ++i) {
    auto& seg = segment(i);
    if (seg.pages == 0 || !allocator_.range_free(seg.first_page, seg.pages))
      continue;
    uint64_t bytes = uint64_t{seg.pages} << allocator_.page_shift();
    if (allocator_.free_bytes() - bytes < std::min(bytes, h.initial_arena_bytes) / 2)
      continue;
    remove_segment(i);
  }
}

// -- scrubbing ----------------------------------------------------------------------------------

background_scrubber::writer memory_manager::writer_of(uint32_t slot) const noexcept {
  if (slot == admin::engine_slot)
    return background_scrubber::anyone;
  return {slot, tokens_[slot]};
}

void memory_manager::note_writer(uint32_t index, uint32_t slot) noexcept {
  auto me = writer_of(slot);
  auto& w = writers_[index];
  if (!w)
    w = me;
  else if (*w != me)
    w = background_scrubber::anyone;
}

void memory_manager::mark_free_memory_dirty() {
  auto shift = allocator_.page_shift();
  for (uint32_t i = 0; i < admin::max_segments; ++i) {
    const auto& seg = segment(i);
    if (seg.pages == 0 || !segments_[i])
      continue;
    scrubber_.forget(segments_[i].data(), uint64_t{seg.pages} << shift); // rebuilt below
    std::vector<std::pair<uint32_t, uint32_t>> taken; // first page, pages of the blocks
    for (uint32_t k = 0; k < settings_.max_blocks; ++k)
      if (auto& b = block(k); b.state != block_state::free && b.page - seg.first_page < seg.pages)
        taken.emplace_back(b.page, static_cast<uint32_t>(allocator_.occupied_bytes(b.size) >> shift));
    std::sort(taken.begin(), taken.end());
    uint32_t at = seg.first_page;
    auto dirty = [&](uint32_t from, uint32_t to) {
      if (from < to)
        scrubber_.add(segments_[i].data() + (uint64_t{from - seg.first_page} << shift),
                      uint64_t{to - from} << shift, background_scrubber::anyone);
    };
    for (auto [first, pages] : taken) {
      dirty(at, first);
      at = std::max(at, first + pages);
    }
    dirty(at, seg.first_page + seg.pages);
  }
}

uint32_t memory_manager::index_of(const admin::block_entry& b) const noexcept {
  return static_cast<uint32_t>(&b - &block(0));
}

block_ref memory_manager::ref_of(uint32_t index) const noexcept {
  const auto& b = block(index);
  return {header().engine_id, index, b.generation, b.size};
}

int32_t memory_manager::pid_of(process_id p) const noexcept {
  auto slot = to_slot(p);
  return slot < settings_.max_processes ? process(slot).pid : 0;
}

bool memory_manager::still_runs(process_id p) const {
  return slot_runs(to_slot(p));
}

bool memory_manager::is_live(process_id p) const noexcept {
  return slot_live(to_slot(p));
}

bool memory_manager::slot_runs(uint32_t slot) const {
  if (!slot_live(slot))
    return false;
  const auto& p = process(slot);
  auto now = start_ticks_of(p.pid);
  return p.pid > 0 && p.start_ticks != 0 && now && *now == p.start_ticks;
}

bool memory_manager::slot_live(uint32_t slot) const noexcept {
  return slot < settings_.max_processes && process(slot).state == process_state::live;
}

bool memory_manager::share_quota(uint32_t a, uint32_t b) const noexcept {
  if (a == admin::engine_slot || b == admin::engine_slot || !slot_live(a) || !slot_live(b))
    return false;
  return quota_group_[a] != no_index && quota_group_[a] == quota_group_[b];
}

namespace {

// One key per quota group: an engine.quotas rule, or a user without a rule.
uint64_t quota_group_key(int rule, uint32_t uid) {
  return rule >= 0 ? static_cast<uint64_t>(rule) : uint64_t{1} << 32 | uid;
}

// The bytes a quota group may hold together: its rule's, or engine.default_quota (0: no limit).
uint64_t shared_limit(const quota_policy& quotas, int rule) {
  return rule < 0 ? quotas.default_bytes() : quotas.rule_bytes(rule);
}

} // namespace

void memory_manager::join_quota_group(uint32_t slot) {
  auto key = quota_group_key(quota_rules_[slot], users_[slot]);
  auto [at, added] = quota_groups_.try_emplace(key, static_cast<uint32_t>(quota_group_bytes_.size()));
  if (added)
    quota_group_bytes_.push_back(0);
  quota_group_[slot] = at->second;
  quota_group_bytes_[at->second] += process(slot).bytes_in_use;
}

void memory_manager::add_charge(uint32_t slot, uint64_t delta) noexcept {
  process(slot).bytes_in_use += delta;
  if (auto g = quota_group_[slot]; g != no_index)
    quota_group_bytes_[g] += delta;
}

void memory_manager::recount_quota_groups() {
  std::fill(quota_group_bytes_.begin(), quota_group_bytes_.end(), 0);
  for (uint32_t slot = 1; slot < settings_.max_processes; ++slot)
    if (slot_live(slot) && quota_group_[slot] != no_index)
      quota_group_bytes_[quota_group_[slot]] += process(slot).bytes_in_use;
}

std::optional<std::string> memory_manager::shared_quota_problem(uint32_t slot, uint64_t bytes,
                                                               uint32_t charged_now) const {
  if (slot == admin::engine_slot || share_quota(slot, charged_now))
    return std::nullopt; // moving a charge within one quota changes nothing it bounds
  int rule = quota_rules_[slot];
  uint64_t limit = shared_limit(quotas_, rule);
  if (limit == 0 || quota_group_[slot] == no_index)
    return std::nullopt;
  // The processes bound together: those of the same rule, or (no rule) those of the same user
  // without a rule. Detached processes are live slots and count; ended ones are not live.
  uint64_t in_use = quota_group_bytes_[quota_group_[slot]];
  if (in_use + bytes <= limit)
    return std::nullopt;
  uint32_t processes = 0; // for the message only
  for (uint32_t other = 1; other < settings_.max_processes; ++other)
    processes += slot_live(other) && quota_group_[other] == quota_group_[slot];
  auto whose = rule >= 0
                 ? "that engine.quotas[" + std::to_string(rule) + "] gives all its processes"
                 : "that engine.default_quota gives all processes of uid "
                     + std::to_string(users_[slot]);
  return "would exceed the quota of " + std::to_string(limit) + " bytes " + whose + " together ("
         + std::to_string(processes) + " live, " + std::to_string(in_use) + " bytes in use)";
}

std::vector<process_id> memory_manager::live_processes() const {
  std::vector<process_id> result;
  for (uint32_t i = 1; i < settings_.max_processes; ++i)
    if (slot_live(i))
      result.push_back(process_id{i});
  return result;
}

// -- checks -------------------------------------------------------------------------------------

caf::error memory_manager::deny(const session& s, errc code, std::string what) {
  ++header_mut().rejected;
  if ((code == errc::access_denied || code == errc::quota_exceeded) && slot_live(slot_of(s)))
    ++process(slot_of(s)).denied;
  return make_error(code, std::move(what));
}

caf::expected<admin::process_entry*> memory_manager::resolve(const session& s) {
  ++header_mut().requests;
  if (slot_of(s) >= settings_.max_processes || !slot_live(slot_of(s)) || s.token == 0
      || tokens_[slot_of(s)] != s.token)
    return deny(s, errc::unknown_process,
                "process " + std::to_string(slot_of(s)) + " is not registered");
  return &process(slot_of(s));
}

caf::expected<admin::block_entry*>
memory_manager::resolve(const session& s, const block_ref& ref, access need) {
  auto p = resolve(s);
  if (!p)
    return p.error();
  if (ref.engine != header().engine_id || ref.block >= settings_.max_blocks)
    return deny(s, errc::stale_block, to_string(ref) + " is not a block of this engine");
  auto& b = block(ref.block);
  if (b.state != block_state::live || b.generation != ref.generation || b.size != ref.size)
    return deny(s, errc::stale_block, to_string(ref) + " refers to a freed or reused block");
  if (b.owner == slot_of(s) || slot_of(s) == admin::engine_slot)
    return &b; // the engine's session (never handed out) may touch every block
  bool allowed = false;
  if (need == access::read && b.owner == admin::engine_slot && concealed_[ref.block] == 0)
    allowed = true; // engine-held (published) blocks are readable by every process
  else if (need != access::none)
    if (auto g = find_grant(ref.block, slot_of(s)); g != no_index)
      allowed = grant(g).mode >= need;
  if (!allowed)
    return deny(s, errc::access_denied,
                "process " + std::to_string(slot_of(s)) + " may not "
                  + (need == access::none         ? "manage"
                     : need == access::read_write ? "write"
                                                  : "read")
                  + " block " + std::to_string(ref.block));
  return &b;
}

uint32_t memory_manager::find_grant(uint32_t block_index, uint32_t slot) const noexcept {
  for (auto g = block(block_index).grant_head; g != no_index; g = grant(g).next)
    if (grant(g).process == slot)
      return g;
  return no_index;
}

namespace {

// Whether [offset, offset + length) lies within [0, size), without overflow.
bool in_bounds(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

} // namespace

// -- processes ----------------------------------------------------------------------------------

caf::expected<registration> memory_manager::register_process(std::string_view name, int32_t pid,
                                                             uint64_t quota_bytes,
                                                             process_credentials who) {
  ++header_mut().requests;
  if (name.empty() || name.size() >= sizeof(admin::process_entry::name)
      || name.find('\0') != std::string_view::npos) // stored NUL-terminated: find_process
    return deny({}, errc::invalid_argument,             // could not match it
                "a process name has 1 to " + std::to_string(sizeof(admin::process_entry::name) - 1)
                  + " bytes and no NUL");
  for (uint32_t other = 1; other < settings_.max_processes; ++other)
    if (slot_live(other) && name == process(other).name)
      return deny({}, errc::process_name_taken,
                  "a process is already registered as " + quote_bounded(name) + " (slot "
                    + std::to_string(other) + "); choose another name or ask the client to "
                    + "make it unique (client_options::unique_name)");
  auto limit = quotas_.limit_for(who);
  if (limit != 0 && quota_bytes > limit)
    return deny({}, errc::quota_exceeded,
                "a quota of " + std::to_string(quota_bytes) + " bytes was asked for; uid "
                  + std::to_string(who.uid) + " (gid " + std::to_string(who.gid)
                  + ") may have at most " + std::to_string(limit));
  if (auto cap = settings_.max_processes_per_user; cap != 0) {
    uint32_t of_user = 0;
    for (uint32_t other = 1; other < settings_.max_processes; ++other)
      if (slot_live(other) && users_[other] == who.uid)
        ++of_user;
    if (of_user >= cap)
      return deny({}, errc::too_many_processes,
                  "uid " + std::to_string(who.uid) + " has " + std::to_string(of_user)
                    + " live processes registered, the most engine.max_processes_per_user ("
                    + std::to_string(cap) + ") allows; one must unregister or end first");
  }
  uint32_t slot = 1;
  while (slot < settings_.max_processes && slot_live(slot))
    ++slot;
  if (slot >= settings_.max_processes)
    return deny({}, errc::capacity_exceeded,
                "process table full (" + std::to_string(settings_.max_processes - 1)
                  + " processes besides the engine); raise engine.max_processes");
  change_scope changing{*this};
  auto& p = process(slot);
  auto generation = p.generation + 1;
  p = admin::process_entry{};
  p.state = process_state::live;
  p.generation = generation;
  p.pid = pid;
  p.start_ticks = pid > 0 ? start_ticks_of(pid).value_or(0) : 0;
  p.quota_bytes = quota_bytes != 0 ? quota_bytes : limit;
  quota_rules_[slot] = quotas_.rule_for(who);
  users_[slot] = who.uid;
  join_quota_group(slot);
  p.registered_ns = realtime_ns();
  std::snprintf(p.name, sizeof(p.name), "%.*s", static_cast<int>(name.size()), name.data());
  do
    tokens_[slot] = random_();
  while (tokens_[slot] == 0);
  ++header_mut().live_processes;
  note_usage();
  registration reg;
  reg.session = {process_id{slot}, tokens_[slot]};
  reg.engine_id = header().engine_id;
  reg.data_segment = segments_[0].name();
  reg.admin_segment = admin_.name();
  reg.min_block_bytes = settings_.min_block_bytes;
  return reg;
}

caf::expected<registration> memory_manager::reattach(const session& s, int32_t pid) {
  ++header_mut().requests;
  if (slot_of(s) == admin::engine_slot || slot_of(s) >= settings_.max_processes
      || !slot_live(slot_of(s)))
    return deny(s, errc::unknown_process,
                "process " + std::to_string(slot_of(s))
                  + " is not registered (its slot was reclaimed when the engine adopted the "
                    "segments, or it unregistered)");
  auto& p = process(slot_of(s));
  auto now = start_ticks_of(pid);
  if (s.token == 0 || pid <= 0 || p.pid != pid || p.start_ticks == 0 || !now
      || *now != p.start_ticks)
    return deny(s, errc::access_denied,
                "slot " + std::to_string(slot_of(s)) + " belongs to another process");
  if (tokens_[slot_of(s)] != 0 && tokens_[slot_of(s)] != s.token)
    return deny(s, errc::access_denied,
                "slot " + std::to_string(slot_of(s)) + " is attached with another session");
  tokens_[slot_of(s)] = s.token;
  registration reg;
  reg.session = s;
  reg.engine_id = header().engine_id;
  reg.data_segment = segments_[0].name();
  reg.admin_segment = admin_.name();
  reg.min_block_bytes = settings_.min_block_bytes;
  return reg;
}

caf::expected<void> memory_manager::unregister(const session& s) {
  auto p = resolve(s);
  if (!p)
    return p.error();
  if (slot_of(s) == admin::engine_slot)
    return deny(s, errc::invalid_argument, "the engine cannot unregister itself");
  reclaim_slot(slot_of(s));
  return {};
}

void memory_manager::reclaim(process_id p) {
  reclaim_slot(to_slot(p));
}

void memory_manager::reclaim_slot(uint32_t slot) {
  change_scope changing{*this};
  if (slot == admin::engine_slot || !slot_live(slot))
    return;
  fastpath::inbox::remove(settings_.name, slot); // the slot's inbox goes with it
  // and its actor inbox; the processes that may hold proxies of its actors hear of it (now, or
  // by retry_gone_notices when an actor inbox is full); notices kept for it are void
  gone_notices_.receiver_gone(slot);
  gone_notices_.retry();
  gone_notices_.announce(slot, process(slot).pid, live_processes());
  for (uint32_t i = 0; i < settings_.max_blocks; ++i) {
    auto& b = block(i);
    if (b.state == block_state::free)
      continue;
    if (auto g = find_grant(i, slot); g != no_index) {
      b.refcount -= grant(g).views;
      grant(g).views = 0;
      drop_grant(i, g);
    }
    if (b.owner == slot) {
      b.refcount -= b.owner_views;
      b.owner_views = 0;
      if (b.state == block_state::live)
        release_from_owner(i);
    }
    finish_if_drained(i);
    if (b.state != block_state::free && b.charged_to == slot)
      charge(i, admin::engine_slot); // given to the engine, or draining: nobody pays any more
  }
  auto& p = process(slot);
  auto generation = p.generation;
  p = admin::process_entry{}; // bytes_in_use is 0 here: every charge went back or to the engine
  p.generation = generation;
  tokens_[slot] = 0;
  quota_group_[slot] = no_index;
  --header_mut().live_processes;
}

// -- blocks -------------------------------------------------------------------------------------

caf::expected<block_ref> memory_manager::allocate(const session& s, uint64_t size) {
  change_scope changing{*this};
  auto p = resolve(s);
  if (!p)
    return p.error();
  if (size == 0)
    return deny(s, errc::invalid_argument, "cannot allocate 0 bytes");
  auto no_room = [&](const std::string& what) {
    return deny(s, errc::out_of_memory,
                what + " (requested " + std::to_string(size) + " bytes; free "
                  + std::to_string(allocator_.free_bytes()) + ", largest free block "
                  + std::to_string(allocator_.largest_free_block()) + ", arena "
                  + std::to_string(allocator_.arena_bytes()) + " in "
                  + std::to_string(header().live_segments) + " segment(s), ceiling "
                  + std::to_string(header().max_arena_bytes) + "); raise engine.max_arena");
  };
  if (size > header().max_arena_bytes)
    return no_room("larger than the arena's ceiling");
  uint64_t bytes = allocator_.occupied_bytes(size);
  auto& proc = **p;
  if (proc.quota_bytes != 0 && proc.bytes_in_use + bytes > proc.quota_bytes)
    return deny(s, errc::quota_exceeded,
                "allocating " + std::to_string(bytes) + " bytes would exceed the quota of "
                  + std::to_string(proc.quota_bytes) + " (in use: "
                  + std::to_string(proc.bytes_in_use) + ")");
  if (quota_group_[slot_of(s)] != no_index && shared_limit(quotas_, quota_rules_[slot_of(s)]) != 0)
    if (auto why = shared_quota_problem(slot_of(s), bytes))
      return deny(s, errc::quota_exceeded,
                  "allocating " + std::to_string(bytes) + " bytes " + *why);
  auto& h = header_mut();
  if (h.free_block_head == no_index)
    return deny(s, errc::capacity_exceeded,
                "block table full (" + std::to_string(settings_.max_blocks)
                  + " blocks); raise engine.max_blocks");
  auto offset = allocator_.allocate(size);
  if (!offset) {
    auto why = grow(size);
    if (why.empty())
      offset = allocator_.allocate(size);
    if (!offset)
      return no_room(why.empty() ? "no free block fits in the added data segment" : why);
  }
  uint32_t index = h.free_block_head;
  auto& b = block(index);
  h.free_block_head = b.next_free;
  b.size = size;
  b.version = 0;
  b.page = static_cast<uint32_t>(*offset >> allocator_.page_shift());
  b.owner = slot_of(s);
  b.grant_head = no_index;
  b.refcount = 0;
  b.owner_views = 0;
  b.name = no_index;
  b.next_free = no_index;
  b.state = block_state::live;
  b.charged_to = slot_of(s);
  if (settings_.scrub == scrub_policy::on_allocate) {
    std::memset(payload(b), 0, bytes);
  } else if (settings_.scrub == scrub_policy::on_free) {
    // Freed pages not zeroed yet: zeroed here unless this process alone wrote them, and then
    // the block holds its own old bytes (it counts as their writer).
    auto me = writer_of(slot_of(s));
    writers_[index] = scrubber_.claim(payload(b), bytes, me) ? std::optional{me} : std::nullopt;
  }
  add_charge(slot_of(s), bytes);
  ++proc.block_count;
  ++proc.allocations;
  ++h.live_blocks;
  h.used_bytes += bytes;
  h.requested_bytes += size;
  // note_usage() for the two counters that rose, its warnings only past their limits
  h.peak_used_bytes = std::max(h.peak_used_bytes, h.used_bytes);
  h.peak_blocks = std::max(h.peak_blocks, h.live_blocks);
  if (h.used_bytes > warn_above_[0] || h.live_blocks > warn_above_[1])
    note_usage();
  return ref_of(index);
}

caf::expected<void> memory_manager::free(const session& s, const block_ref& ref) {
  change_scope changing{*this};
  auto b = resolve(s, ref, access::none);
  if (!b)
    return b.error();
  ++process(slot_of(s)).frees;
  release_from_owner(ref.block);
  finish_if_drained(ref.block);
  return {};
}

// The owner lets go: refs become stale, name and rights end, the owner's accounting is released.
// The memory itself returns to the allocator in finish_if_drained once no view is open.
// The bytes stay charged (to the owner, or the giver of an engine-held block) until then.
void memory_manager::release_from_owner(uint32_t index) noexcept {
  auto& b = block(index);
  --process(b.owner).block_count;
  header_mut().requested_bytes -= b.size;
  unbind_name(index);
  for (auto g = b.grant_head; g != no_index;) {
    auto next = grant(g).next;
    grant(g).mode = access::none;
    if (grant(g).views == 0)
      drop_grant(index, g);
    g = next;
  }
  ++b.generation;
  b.state = block_state::draining;
}

void memory_manager::finish_if_drained(uint32_t index) noexcept {
  auto& b = block(index);
  if (b.state != block_state::draining || b.refcount != 0)
    return;
  while (b.grant_head != no_index)
    drop_grant(index, b.grant_head);
  uint64_t bytes = allocator_.occupied_bytes(b.size);
  add_charge(b.charged_to, 0 - bytes);
  // Written pages go to the scrubber, which zeroes them before another process gets them.
  bool scrub = settings_.scrub == scrub_policy::on_free && writers_[index];
  auto seg = scrub ? segment_of(b.page) : 0;
  auto* at = scrub ? payload(b) : nullptr;
  allocator_.free(uint64_t{b.page} << allocator_.page_shift());
  auto& h = header_mut();
  if (h.live_segments > 1)
    remove_empty_segments();
  // A segment removed with the block took its pages out of every process's reach (no view of
  // it is open, its object is unlinked): nothing to scrub there.
  if (scrub && (seg == 0 || segment(seg).pages != 0))
    scrubber_.add(at, bytes, *writers_[index]);
  writers_[index] = std::nullopt;
  h.used_bytes -= bytes;
  --h.live_blocks;
  b.state = block_state::free;
  concealed_[index] = 0;
  b.owner = 0;
  b.charged_to = 0;
  b.owner_views = 0;
  b.size = 0;
  b.next_free = h.free_block_head;
  h.free_block_head = index;
}

void memory_manager::drop_grant(uint32_t block_index, uint32_t g) noexcept {
  auto& b = block(block_index);
  if (b.grant_head == g) {
    b.grant_head = grant(g).next;
  } else {
    auto prev = b.grant_head;
    while (grant(prev).next != g)
      prev = grant(prev).next;
    grant(prev).next = grant(g).next;
  }
  auto& h = header_mut();
  grant(g) = {no_index, 0, h.free_grant_head, 0, access::none, {}, 0};
  h.free_grant_head = g;
  --h.live_grants;
}

// Moves the block's bytes to the account of `slot`.
void memory_manager::charge(uint32_t index, uint32_t slot) noexcept {
  auto& b = block(index);
  uint64_t bytes = allocator_.occupied_bytes(b.size);
  add_charge(b.charged_to, 0 - bytes);
  add_charge(slot, bytes);
  b.charged_to = slot;
}

void memory_manager::unbind_name(uint32_t index) noexcept {
  auto& b = block(index);
  if (b.name == no_index)
    return;
  auto& n = name_at(b.name);
  names_.erase(n.name);
  auto& h = header_mut();
  n = admin::name_entry{};
  n.block = no_index;
  n.next_free = h.free_name_head;
  h.free_name_head = b.name;
  b.name = no_index;
  --h.live_names;
}

// -- data access --------------------------------------------------------------------------------

caf::expected<void> memory_manager::write(const session& s, const block_ref& ref,
                                          uint64_t offset, std::span<const char> bytes) {
  auto b = resolve(s, ref, access::read_write);
  if (!b)
    return b.error();
  if (!in_bounds(offset, bytes.size(), (*b)->size))
    return deny(s, errc::out_of_range,
                "write of " + std::to_string(bytes.size()) + " bytes at offset "
                  + std::to_string(offset) + " exceeds the block's "
                  + std::to_string((*b)->size) + " bytes");
  if (!bytes.empty()) // an empty write's data() may be null: memcpy(p, nullptr, 0) is UB
    std::memcpy(payload(**b) + offset, bytes.data(), bytes.size());
  ++(*b)->version;
  note_writer(ref.block, slot_of(s));
  auto& p = process(slot_of(s));
  ++p.writes;
  p.bytes_written += bytes.size();
  return {};
}

caf::expected<std::vector<char>> memory_manager::read(const session& s, const block_ref& ref,
                                                      uint64_t offset, uint64_t length) {
  auto b = resolve(s, ref, access::read);
  if (!b)
    return b.error();
  if (!in_bounds(offset, length, (*b)->size))
    return deny(s, errc::out_of_range,
                "read of " + std::to_string(length) + " bytes at offset "
                  + std::to_string(offset) + " exceeds the block's "
                  + std::to_string((*b)->size) + " bytes");
  auto* src = reinterpret_cast<const char*>(payload(**b)) + offset;
  std::vector<char> result(src, src + length);
  auto& p = process(slot_of(s));
  ++p.reads;
  p.bytes_read += length;
  return result;
}

caf::expected<void> memory_manager::copy(const session& s, const block_ref& src,
                                         const block_ref& dst,
                                         const std::vector<copy_range>& ranges) {
  auto from = resolve(s, src, access::read);
  if (!from)
    return from.error();
  auto to = resolve(s, dst, access::read_write);
  if (!to)
    return to.error();
  if (ranges.empty())
    return deny(s, errc::invalid_argument, "copy without ranges");
  if (ranges.size() > settings_.max_copy_ranges)
    return deny(s, errc::request_too_large,
                "copy of " + std::to_string(ranges.size()) + " ranges; one request may carry "
                  + std::to_string(settings_.max_copy_ranges) + " (engine.max_copy_ranges)");
  uint64_t total = 0;
  for (const auto& r : ranges) { // all ranges are checked before any byte moves
    if (!in_bounds(r.src_offset, r.length, (*from)->size)
        || !in_bounds(r.dst_offset, r.length, (*to)->size))
      return deny(s, errc::out_of_range,
                  "copy range (src " + std::to_string(r.src_offset) + ", dst "
                    + std::to_string(r.dst_offset) + ", " + std::to_string(r.length)
                    + " bytes) exceeds a block");
    total += r.length; // no overflow: each length <= a block size, at most 2^24 ranges
    if (total > settings_.max_copy_bytes)
      return deny(s, errc::request_too_large,
                  "copy of more than " + std::to_string(settings_.max_copy_bytes)
                    + " bytes in one request (engine.max_copy_bytes); split it");
  }
  for (const auto& r : ranges)
    std::memmove(payload(**to) + r.dst_offset, payload(**from) + r.src_offset, r.length);
  ++(*to)->version;
  note_writer(dst.block, slot_of(s));
  auto& p = process(slot_of(s));
  ++p.reads;
  ++p.writes;
  p.bytes_read += total;
  p.bytes_written += total;
  return {};
}

// -- rights -------------------------------------------------------------------------------------

caf::expected<void> memory_manager::share(const session& s, const block_ref& ref,
                                          process_id grantee, access_mode mode) {
  change_scope changing{*this};
  auto to = to_slot(grantee);
  auto b = resolve(s, ref, access::none);
  if (!b)
    return b.error();
  if (mode != access_mode::read && mode != access_mode::read_write)
    return deny(s, errc::invalid_argument, "unknown access mode");
  if (!slot_live(to)) // sharing with the engine's slot exports the block to peer engines
    return deny(s, errc::unknown_process, "process " + std::to_string(to) + " is not registered");
  if (to == (*b)->owner)
    return deny(s, errc::invalid_argument, "a process cannot grant itself access");
  auto g = find_grant(ref.block, to);
  if (g == no_index) {
    auto& h = header_mut();
    if (h.free_grant_head == no_index)
      return deny(s, errc::capacity_exceeded,
                  "grant table full (" + std::to_string(settings_.max_grants)
                    + " grants); raise engine.max_grants");
    g = h.free_grant_head;
    h.free_grant_head = grant(g).next;
    grant(g) = {ref.block, to, (*b)->grant_head, 0, access::none, {}, 0};
    (*b)->grant_head = g;
    ++h.live_grants;
    note_usage();
  }
  grant(g).mode = need_of(mode);
  return {};
}

caf::expected<void> memory_manager::revoke(const session& s, const block_ref& ref,
                                           process_id grantee) {
  change_scope changing{*this};
  auto from = to_slot(grantee);
  auto b = resolve(s, ref, access::none);
  if (!b)
    return b.error();
  auto g = find_grant(ref.block, from);
  if (g == no_index)
    return {};
  if (grant(g).views != 0)
    return deny(s, errc::block_in_use,
                "process " + std::to_string(from) + " holds " + std::to_string(grant(g).views)
                  + " open view(s) of block " + std::to_string(ref.block));
  drop_grant(ref.block, g);
  return {};
}

caf::expected<block_ref> memory_manager::transfer(const session& s, const block_ref& ref,
                                                  process_id new_owner) {
  change_scope changing{*this};
  auto to = to_slot(new_owner);
  auto b = resolve(s, ref, access::none);
  if (!b)
    return b.error();
  auto& blk = **b;
  if (!slot_live(to))
    return deny(s, errc::unknown_process, "process " + std::to_string(to) + " is not registered");
  if (to == blk.owner)
    return deny(s, errc::invalid_argument, "the block already belongs to process "
                                             + std::to_string(to));
  if (blk.owner_views != 0)
    return deny(s, errc::block_in_use,
                "the owner still holds " + std::to_string(blk.owner_views)
                  + " open view(s) of block " + std::to_string(ref.block));
  for (auto g = blk.grant_head; g != no_index; g = grant(g).next) {
    auto holder = grant(g).process;
    if (holder != to && holder != admin::engine_slot && grant(g).views != 0)
      return deny(s, errc::block_in_use,
                  "process " + std::to_string(holder) + " holds "
                    + std::to_string(grant(g).views) + " open view(s) of block "
                    + std::to_string(ref.block) + " (its grant would end with the transfer)");
  }
  bool giving = to == admin::engine_slot;
  if (giving && blk.name == no_index)
    return deny(s, errc::invalid_argument,
                "name block " + std::to_string(ref.block)
                  + " before giving it to the engine (an unnamed engine-held block could never "
                    "be removed)");
  uint64_t bytes = allocator_.occupied_bytes(blk.size);
  auto& dest = process(to);
  if (!giving && blk.charged_to != to && dest.quota_bytes != 0
      && dest.bytes_in_use + bytes > dest.quota_bytes)
    return deny(s, errc::quota_exceeded,
                "process " + std::to_string(to) + " cannot take " + std::to_string(bytes)
                  + " more bytes within its quota");
  if (!giving && blk.charged_to != to)
    if (auto why = shared_quota_problem(to, bytes, blk.charged_to))
      return deny(s, errc::quota_exceeded,
                  "process " + std::to_string(to) + " taking " + std::to_string(bytes)
                    + " bytes " + *why);
  if (auto g = find_grant(ref.block, to); g != no_index) {
    blk.owner_views = grant(g).views; // the new owner's open views stay counted
    grant(g).views = 0;
    drop_grant(ref.block, g);
  }
  for (auto g = blk.grant_head; g != no_index;) { // every other grant ends here
    auto next = grant(g).next;
    if (grant(g).views == 0)
      drop_grant(ref.block, g);
    else
      grant(g).mode = access::none; // the engine's own view: still counted, grants nothing
    g = next;
  }
  --process(blk.owner).block_count;
  ++dest.block_count;
  blk.owner = to;
  if (!giving) // a block given to the engine stays charged to the giver
    charge(ref.block, to);
  concealed_[ref.block] = 0;
  return ref_of(ref.block);
}

// -- names --------------------------------------------------------------------------------------

caf::expected<void> memory_manager::name(const session& s, const block_ref& ref,
                                         std::string_view name) {
  change_scope changing{*this};
  auto b = resolve(s, ref, access::none);
  if (!b)
    return b.error();
  if (!valid_name(name))
    return deny(s, errc::invalid_argument,
                "a name has 1 to " + std::to_string(admin::max_name_length) + " bytes");
  std::string key{name};
  if (auto i = names_.find(key); i != names_.end()) {
    if (name_at(i->second).block == ref.block)
      return {};
    return deny(s, errc::name_taken, "name " + quote_bounded(key) + " is taken");
  }
  auto& h = header_mut();
  if (h.free_name_head == no_index)
    return deny(s, errc::capacity_exceeded,
                "name table full (" + std::to_string(settings_.max_names)
                  + " names); raise engine.max_names");
  unbind_name(ref.block);
  uint32_t n = h.free_name_head;
  auto& entry = name_at(n);
  h.free_name_head = entry.next_free;
  std::memset(entry.name, 0, sizeof(entry.name));
  std::memcpy(entry.name, name.data(), name.size());
  entry.block = ref.block;
  entry.next_free = no_index;
  (*b)->name = n;
  names_.emplace(std::move(key), n);
  ++h.live_names;
  note_usage();
  return {};
}

caf::expected<void> memory_manager::can_receive(process_id receiver, uint64_t size,
                                                std::string_view name) const {
  auto to = to_slot(receiver);
  if (!name.empty()) {
    if (!valid_name(name))
      return make_error(errc::invalid_argument,
                        "a name has 1 to " + std::to_string(admin::max_name_length) + " bytes");
    if (names_.count(std::string{name}) != 0)
      return make_error(errc::name_taken, "name " + quote_bounded(name) + " is taken");
    if (header().free_name_head == no_index)
      return make_error(errc::capacity_exceeded,
                        "name table full (" + std::to_string(settings_.max_names)
                          + " names); raise engine.max_names");
  }
  if (to == admin::engine_slot)
    return {};
  if (!slot_live(to))
    return make_error(errc::unknown_process, "process " + std::to_string(to) + " is not registered");
  uint64_t bytes = allocator_.occupied_bytes(size);
  const auto& dest = process(to);
  if (dest.quota_bytes != 0 && dest.bytes_in_use + bytes > dest.quota_bytes)
    return make_error(errc::quota_exceeded, "process " + std::to_string(to) + " cannot take "
                                              + std::to_string(bytes)
                                              + " more bytes within its quota");
  if (auto why = shared_quota_problem(to, bytes))
    return make_error(errc::quota_exceeded, "process " + std::to_string(to) + " taking "
                                              + std::to_string(bytes) + " bytes " + *why);
  return {};
}

caf::expected<block_ref> memory_manager::lookup(const session& s, std::string_view name) {
  auto p = resolve(s);
  if (!p)
    return p.error();
  auto i = name.size() <= admin::max_name_length ? names_.find(std::string{name}) : names_.end();
  if (i == names_.end())
    return deny(s, errc::name_not_found, "no block is named " + quote_bounded(name));
  return ref_of(name_at(i->second).block);
}

caf::expected<void> memory_manager::remove(const session& s, std::string_view name) {
  change_scope changing{*this};
  auto ref = lookup(s, name);
  if (!ref)
    return ref.error();
  auto& b = block(ref->block);
  if (b.owner != slot_of(s) && b.owner != admin::engine_slot)
    return deny(s, errc::access_denied,
                "block " + quote_bounded(name) + " belongs to process "
                  + std::to_string(b.owner));
  ++process(slot_of(s)).frees;
  release_from_owner(ref->block);
  finish_if_drained(ref->block);
  return {};
}

// -- views --------------------------------------------------------------------------------------

caf::expected<view_lease> memory_manager::map(const session& s, const block_ref& ref,
                                                 access_mode mode) {
  change_scope changing{*this};
  auto b = resolve(s, ref, need_of(mode));
  if (!b)
    return b.error();
  auto& blk = **b;
  if (blk.owner == slot_of(s)) {
    ++blk.owner_views;
  } else {
    auto g = find_grant(ref.block, slot_of(s));
    if (g == no_index) { // a view without a grant (engine-held block, or the engine itself):
      auto& h = header_mut(); // an entry that only counts views and grants nothing
      if (h.free_grant_head == no_index)
        return deny(s, errc::capacity_exceeded,
                    "grant table full (" + std::to_string(settings_.max_grants)
                      + " grants and views of non-owners); raise engine.max_grants");
      g = h.free_grant_head;
      h.free_grant_head = grant(g).next;
      grant(g) = {ref.block, slot_of(s), blk.grant_head, 0, access::none, {}, 0};
      blk.grant_head = g;
      ++h.live_grants;
      note_usage();
    }
    ++grant(g).views;
  }
  ++blk.refcount;
  if (mode == access_mode::read_write) {
    ++writable_opens_[ref.block];
    note_writer(ref.block, slot_of(s));
  }
  auto seg = segment_of(blk.page);
  return view_lease{segments_[seg].name(),
                    uint64_t{blk.page - segment(seg).first_page} << allocator_.page_shift(),
                    blk.size, mode == access_mode::read_write};
}

caf::expected<void> memory_manager::unmap(const session& s, const block_ref& ref) {
  change_scope changing{*this};
  // Identified by block index only: the block may be draining (generation already bumped).
  auto p = resolve(s);
  if (!p)
    return p.error();
  if (ref.engine != header().engine_id || ref.block >= settings_.max_blocks
      || block(ref.block).state == block_state::free)
    return deny(s, errc::stale_block, to_string(ref) + " has no open view");
  auto& b = block(ref.block);
  if (b.owner == slot_of(s) && b.owner_views > 0) {
    --b.owner_views;
  } else {
    auto g = find_grant(ref.block, slot_of(s));
    if (g == no_index || grant(g).views == 0)
      return deny(s, errc::stale_block, to_string(ref) + " has no open view");
    --grant(g).views;
    if (grant(g).views == 0 && grant(g).mode == access::none)
      drop_grant(ref.block, g);
  }
  --b.refcount;
  finish_if_drained(ref.block);
  return {};
}

caf::expected<void> memory_manager::check_session(const session& s) {
  auto p = resolve(s);
  if (!p)
    return p.error();
  return {};
}

caf::expected<void> memory_manager::authorize(const session& s, const block_ref& ref,
                                              access_mode mode) {
  auto b = resolve(s, ref, need_of(mode));
  if (!b)
    return b.error();
  return {};
}

caf::expected<uint64_t> memory_manager::exported_version(const block_ref& ref) {
  auto b = resolve(engine_session(), ref, access::read);
  if (!b)
    return b.error();
  auto g = find_grant(ref.block, admin::engine_slot);
  if ((*b)->owner == admin::engine_slot && concealed_[ref.block] != 0) // private: as if absent
    return deny(engine_session(), errc::stale_block,
                to_string(ref) + " refers to a freed or reused block");
  if ((*b)->owner != admin::engine_slot && (g == no_index || grant(g).mode == access::none))
    return deny(engine_session(), errc::access_denied,
                "block " + std::to_string(ref.block) + " is not exported to peer engines");
  // Peers keep copies by this number, so it changes whenever the bytes may have: with every
  // write or copy request, every writable view opened, and, while a view that may write is
  // open, with every call (its process may write at any moment without a request).
  if (!content_stamp(ref))
    ++writable_opens_[ref.block];
  return (*b)->version + writable_opens_[ref.block];
}

std::optional<block_stamp> memory_manager::content_stamp(const block_ref& ref) {
  auto b = resolve(engine_session(), ref, access::read);
  if (!b)
    return std::nullopt;
  const auto& blk = **b;
  // The engine's own views are pins of transfers: it never writes through them. A grant revoked
  // (mode none) while its views stay open may have been read_write.
  if (blk.owner != admin::engine_slot && blk.owner_views != 0)
    return std::nullopt;
  for (auto g = blk.grant_head; g != no_index; g = grant(g).next)
    if (grant(g).process != admin::engine_slot && grant(g).views != 0
        && grant(g).mode != access::read)
      return std::nullopt;
  return block_stamp{blk.generation, blk.version, writable_opens_[ref.block]};
}

void memory_manager::conceal(const block_ref& ref, bool on) {
  if (ref.engine == header().engine_id && ref.block < settings_.max_blocks
      && block(ref.block).state == block_state::live
      && block(ref.block).generation == ref.generation)
    concealed_[ref.block] = on ? 1 : 0;
}

caf::expected<std::span<std::byte>> memory_manager::engine_bytes(const block_ref& ref) {
  auto b = resolve(engine_session(), ref, access::read_write);
  if (!b)
    return b.error();
  note_writer(ref.block, admin::engine_slot); // the caller may write through the span
  return std::span<std::byte>{payload(**b), (*b)->size};
}

caf::expected<process_id> memory_manager::find_process(const session& s,
                                                       std::string_view name) {
  auto p = resolve(s);
  if (!p)
    return p.error();
  for (uint32_t slot = 1; slot < settings_.max_processes; ++slot)
    if (slot_live(slot) && name == process(slot).name)
      return process_id{slot};
  return deny(s, errc::unknown_process,
              "no process is registered as " + quote_bounded(name));
}

// -- statistics and invariants ------------------------------------------------------------------

engine_stats memory_manager::stats() const {
  const auto& h = header();
  engine_stats r;
  r.engine_id = h.engine_id;
  r.data_segment = segments_[0].name();
  r.admin_segment = admin_.name();
  r.arena_bytes = h.arena_bytes;
  r.initial_arena_bytes = h.initial_arena_bytes;
  r.max_arena_bytes = h.max_arena_bytes;
  for (uint32_t i = 0; i < admin::max_segments; ++i)
    if (segment(i).pages != 0) {
      r.data_segments.push_back(segments_[i].name());
      r.segment_bytes.push_back(uint64_t{segment(i).pages} << h.min_order);
    }
  r.segments_added = h.segments_added;
  r.segments_removed = h.segments_removed;
  r.admin_bytes = h.total_bytes;
  r.min_block_bytes = settings_.min_block_bytes;
  r.free_bytes = allocator_.free_bytes();
  r.used_bytes = h.arena_bytes - r.free_bytes;
  r.requested_bytes = h.requested_bytes;
  r.largest_free_block = allocator_.largest_free_block();
  r.free_bytes_by_order = allocator_.free_bytes_by_order();
  auto scrub = scrubber_.stats();
  r.unscrubbed_bytes = scrub.pending_bytes;
  r.scrubbed_in_background = scrub.zeroed_in_background;
  r.scrubbed_on_allocation = scrub.zeroed_by_engine;
  r.scrub_skipped_for_writer = scrub.kept_for_writer;
  r.processes = h.live_processes;
  r.blocks = h.live_blocks;
  r.grants = h.live_grants;
  r.names = h.live_names;
  r.max_processes = h.max_processes;
  r.max_blocks = h.max_blocks;
  r.max_grants = h.max_grants;
  r.max_names = h.max_names;
  r.requests = h.requests;
  r.rejected = h.rejected;
  r.gone_notices_pending = static_cast<uint32_t>(gone_notices_.pending());
  r.gone_notices_late = gone_notices_.delivered_late();
  r.gone_notices_dropped = gone_notices_.dropped();
  r.capacities = capacities();
  for (uint32_t i = 0; i < settings_.max_blocks; ++i)
    if (block(i).state == block_state::draining)
      ++r.draining_blocks;
  for (uint32_t slot = 0; slot < settings_.max_processes; ++slot) {
    const auto& p = process(slot);
    if (p.state != process_state::live)
      continue;
    r.process_list.push_back({process_id{slot}, p.pid, p.name, p.quota_bytes, p.bytes_in_use, p.block_count,
                              p.allocations, p.frees, p.reads, p.writes, p.bytes_read,
                              p.bytes_written, p.denied});
  }
  for (const auto& [key, n] : names_) {
    auto index = name_at(n).block;
    r.name_list.push_back({key, ref_of(index), process_id{block(index).owner}});
  }
  std::sort(r.name_list.begin(), r.name_list.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return r;
}

std::vector<capacity_use> memory_manager::capacities() const {
  const auto& h = header();
  return {
    {"arena bytes", "engine.max_arena", h.used_bytes, h.peak_used_bytes, h.max_arena_bytes},
    {"blocks", "engine.max_blocks", h.live_blocks, h.peak_blocks, h.max_blocks},
    {"grants", "engine.max_grants", h.live_grants, h.peak_grants, h.max_grants},
    {"names", "engine.max_names", h.live_names, h.peak_names, h.max_names},
    {"processes", "engine.max_processes", h.live_processes, h.peak_processes,
     h.max_processes - 1}, // slot 0 is the engine's
  };
}

void memory_manager::log_capacities(const std::string& when) const {
  if (!log_)
    return;
  std::string line = when + ":";
  for (const auto& c : capacities())
    line += " " + c.name + " " + std::to_string(c.used) + "/" + std::to_string(c.capacity)
            + " (peak " + std::to_string(c.peak) + ", " + c.setting + "),";
  line.pop_back();
  log_(line);
}

void memory_manager::note_usage() {
  auto& h = header_mut();
  h.peak_used_bytes = std::max(h.peak_used_bytes, h.used_bytes);
  h.peak_blocks = std::max(h.peak_blocks, h.live_blocks);
  h.peak_grants = std::max(h.peak_grants, h.live_grants);
  h.peak_names = std::max(h.peak_names, h.live_names);
  h.peak_processes = std::max(h.peak_processes, h.live_processes);
  if (warned_ == 0x1f
      || (h.used_bytes <= warn_above_[0] && h.live_blocks <= warn_above_[1]
          && h.live_grants <= warn_above_[2] && h.live_names <= warn_above_[3]
          && h.live_processes <= warn_above_[4]))
    return;
  auto passed = [](uint64_t used, uint64_t capacity) {
    return used * 100 > capacity * warn_percent;
  };
  auto all = capacities();
  for (uint32_t i = 0; i < all.size(); ++i) {
    const auto& c = all[i];
    if ((warned_ >> i & 1) || !passed(c.used, c.capacity))
      continue;
    warned_ |= 1u << i;
    if (log_)
      log_("warning: " + c.name + " " + std::to_string(c.used) + " of "
           + std::to_string(c.capacity) + " in use (more than "
           + std::to_string(warn_percent) + " %); raise " + c.setting
           + " before requests fail");
  }
}

std::string memory_manager::check() const {
  if (auto err = check_admin_memory({admin_.data(), admin_.size()}); !err.empty())
    return err;
  if (header().live_names != names_.size())
    return "table counters differ from the tables"; // the engine's name index
  { // the shared quotas' running sums
    std::vector<uint64_t> sums(quota_group_bytes_.size(), 0);
    for (uint32_t slot = 1; slot < settings_.max_processes; ++slot) {
      auto g = quota_group_[slot];
      if (!slot_live(slot)) {
        if (g != no_index)
          return "process slot " + std::to_string(slot) + " is free but in a quota group";
        continue;
      }
      auto want = quota_groups_.find(quota_group_key(quota_rules_[slot], users_[slot]));
      if (g == no_index || want == quota_groups_.end() || want->second != g)
        return "process " + std::to_string(slot) + " is not in the quota group of its rule and user";
      sums[g] += process(slot).bytes_in_use;
    }
    if (sums != quota_group_bytes_)
      return "a shared quota's running sum differs from the bytes its processes use";
  }
  for (uint32_t i = 0; i < admin::max_segments; ++i) { // the engine's mappings
    uint64_t bytes = uint64_t{segment(i).pages} << header().min_order;
    if (static_cast<bool>(segments_[i]) != (bytes != 0) || segments_[i].size() != bytes)
      return "data segment " + std::to_string(i) + " is mapped with "
             + std::to_string(segments_[i].size()) + " bytes, the table says "
             + std::to_string(bytes);
  }
  return {};
}

} // namespace cafshm
