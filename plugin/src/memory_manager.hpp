// The engine's core: applies requests to the memory-management data in admin memory and to the
// arena, after checking each against it (session, owner or grant, generation, bounds, quota).
// It owns the shared-memory segments (admin memory and every data segment of the arena) and is
// the only writer of admin memory. It knows nothing
// of CAF actors; the engine actor (plugin/src/engine/engine.cpp) calls it, tests and fuzzers call it directly.
// Not thread-safe: one caller at a time (the engine actor serialises requests).
//
// Processes: the functions below name a process by its process_id (as every request and
// answer does); admin memory stores the same number as a uint32_t slot, the index of its
// process_entry (admin_layout.hpp). memory_manager.cpp converts between the two at its
// entry points (to_slot, and process_id{slot} for what it answers) and works on slots inside.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/expected.hpp>

#include "admin_layout.hpp"
#include "background_scrubber.hpp"
#include "fastpath/process_gone_notice.hpp"
#include "cafshm/block_ref.hpp"
#include "cafshm/engine_stats.hpp"
#include "cafshm/error.hpp"
#include "cafshm/protocol.hpp"
#include "cafshm/settings.hpp"
#include "quota_policy.hpp"
#include "shm_segment.hpp"
#include "tlsf_allocator.hpp"

namespace cafshm {

/// What may change a block's bytes, as of one moment: the block's incarnation, its version
/// (bumped by every write or copy request) and how many writable views of it were ever opened.
/// Two equal stamps of a block mean its bytes did not change between them (see content_stamp).
struct block_stamp {
  uint32_t generation = 0;
  uint64_t version = 0;
  uint64_t writable_views_opened = 0;
  friend bool operator==(const block_stamp&, const block_stamp&) = default;
};

class memory_manager {
public:
  /// Receives the engine's log lines (capacity warnings); none are written without one.
  using log_sink = std::function<void(const std::string&)>;

  /// Fill level of one capacity above which the engine warns, once per capacity: 80 %.
  static constexpr uint64_t warn_percent = 80;

  /// Bytes of admin memory the given settings need.
  static uint64_t admin_bytes(const engine_settings& s);

  /// Segment names derived from the engine name: the first data segment, admin memory, and
  /// data segment `index` (1 .. admin::max_segments - 1) added when the arena grows.
  static std::string data_segment_name(const std::string& engine_name);
  static std::string admin_segment_name(const std::string& engine_name);
  static std::string added_segment_name(const std::string& engine_name, uint32_t index);

  /// Removes every segment name engine `engine_name` may have made (data, added data, admin),
  /// whether it exists or not. For cleaning up after an engine that cannot do it itself.
  static void remove_segments(const std::string& engine_name);

  /// Creates and formats both segments. If segments of that name exist: refuses when they
  /// belong to another Unix user (errc::segment_error naming its uid; they are neither adopted
  /// nor removed) or when a live engine holds the admin segment's lock (naming its pid).
  /// Otherwise their engine is dead, and they are adopted when adoptable (see
  /// adoption_refusal): the engine id, blocks, grants, names, views and arena data of every
  /// process that still runs (same pid and start time) stay; processes that ended, processes
  /// without a verified pid, the dead engine's own views and its private (unnamed) blocks are
  /// reclaimed as crash reclaim does. Not adoptable: removed, and both are made anew.
  /// start_report() says in one line which of these happened and why.
  /// The engine holds an exclusive flock(2) on its admin segment for its lifetime: the lock,
  /// not the recorded pid, says whether an engine is alive.
  /// A min_block below the system's page size is errc::config_error.
  static caf::expected<std::unique_ptr<memory_manager>> create(const engine_settings& s);

  /// Why the admin memory `admin` of a dead engine, with a first data segment of `data_bytes`,
  /// cannot be adopted by an engine with settings `s`, or "" if it can: another layout version,
  /// another geometry (arena, max_arena, min_block, table capacities), a dead engine that was in
  /// the middle of a change (header.changing), or any inconsistency check_admin_memory finds.
  /// (create() also refuses when a data segment of the segment table is missing.)
  static std::string adoption_refusal(std::span<std::byte> admin, uint64_t data_bytes,
                                      const engine_settings& s);

  memory_manager(const memory_manager&) = delete;
  memory_manager& operator=(const memory_manager&) = delete;
  ~memory_manager(); // removes every segment

  // -- requests -------------------------------------------------------------------------------

  /// Registers a process under a name no live process of this engine has
  /// (errc::process_name_taken otherwise). Its quota is the limit the quota rules give `who`,
  /// or `quota_bytes` if that is lower (0 = the limit); asking for more is
  /// errc::quota_exceeded. A user (`who.uid`) with engine.max_processes_per_user live processes
  /// gets errc::too_many_processes.
  caf::expected<registration> register_process(std::string_view name, int32_t pid,
                                               uint64_t quota_bytes,
                                               process_credentials who = own_credentials());
  caf::expected<void> unregister(const session& s);
  /// A process of adopted segments takes its session back: `s` must name a live slot whose
  /// recorded pid is `pid` (as the door's kernel credentials say) and whose recorded start time
  /// is that pid's now; its token becomes `s.token` unless another token is already attached.
  /// errc::unknown_process if the slot is not registered (reclaimed at adoption),
  /// errc::access_denied if it belongs to another process.
  caf::expected<registration> reattach(const session& s, int32_t pid);
  caf::expected<block_ref> allocate(const session& s, uint64_t size);
  caf::expected<void> free(const session& s, const block_ref& ref);
  caf::expected<void> write(const session& s, const block_ref& ref, uint64_t offset,
                            std::span<const char> bytes);
  caf::expected<std::vector<char>> read(const session& s, const block_ref& ref, uint64_t offset,
                                        uint64_t length);
  /// At most engine_settings::max_copy_ranges ranges and max_copy_bytes bytes per request
  /// (errc::request_too_large otherwise), so that no request holds the engine for long.
  caf::expected<void> copy(const session& s, const block_ref& src, const block_ref& dst,
                           const std::vector<copy_range>& ranges);
  caf::expected<void> share(const session& s, const block_ref& ref, process_id process,
                            access_mode mode);
  caf::expected<void> revoke(const session& s, const block_ref& ref, process_id process);
  /// Makes `process` the owner. Every grant of the block ends (the new owner's open views
  /// become its owner views); refused with errc::block_in_use while another process holds a
  /// view through a grant. A process gives a block to the engine (process_id::engine) only
  /// once the block has a name, so that it stays removable; it counts against the giver's
  /// quota while the giver is registered.
  caf::expected<block_ref> transfer(const session& s, const block_ref& ref, process_id process);
  caf::expected<void> name(const session& s, const block_ref& ref, std::string_view name);
  caf::expected<block_ref> lookup(const session& s, std::string_view name);
  /// Frees the block bound to `name` if the requester owns it or the engine holds it.
  caf::expected<void> remove(const session& s, std::string_view name);
  /// Permission to map the block; counts an open view until unmap().
  caf::expected<view_lease> map(const session& s, const block_ref& ref, access_mode mode);
  /// The requester closed a view of the block that map() permitted.
  caf::expected<void> unmap(const session& s, const block_ref& ref);
  /// Whether `s` is a registered session.
  caf::expected<void> check_session(const session& s);
  /// Whether `s` may access `ref` with `mode` (same checks as every request, nothing changes).
  caf::expected<void> authorize(const session& s, const block_ref& ref, access_mode mode);
  /// Version of a block that peers may read: held by the engine or shared with it (exported).
  caf::expected<uint64_t> exported_version(const block_ref& ref);
  /// Engine-held blocks are readable by every registered process (published blocks). A
  /// concealed one is not: only the engine's session reaches it (blocks being received from a
  /// peer, cached copies of other processes' data). Cleared when the block is freed or changes
  /// owner. Engine use only.
  void conceal(const block_ref& ref, bool on);
  /// The block's stamp now, or nullopt while a view that may write it is open (a process's
  /// view of a block it owns, or a view under a read_write or revoked grant): a process writes
  /// through its view without any request, so nothing tells then whether the bytes changed.
  /// Engine use only.
  std::optional<block_stamp> content_stamp(const block_ref& ref);
  /// The bytes of a live block, for the engine's own copying (chunks, cache). Engine use only.
  caf::expected<std::span<std::byte>> engine_bytes(const block_ref& ref);
  /// Whether a block of `size` bytes could be handed to `process` (process_id::engine: kept by
  /// the engine) under `name` (empty: no name) without exceeding its quotas or finding the name
  /// taken: what a transmit checks at its destination before any payload moves. Changes
  /// nothing; the same checks run again on delivery. Engine use only.
  caf::expected<void> can_receive(process_id process, uint64_t size, std::string_view name) const;
  /// The live process registered under `name` (names are unique per engine).
  caf::expected<process_id> find_process(const session& s, std::string_view name);

  /// Whether this engine adopted the segments of a dead engine; what happened at creation.
  bool adopted() const noexcept { return adopted_; }
  const std::string& start_report() const noexcept { return start_report_; }

  /// The engine's own session (process_id::engine), for blocks the engine holds.
  session engine_session() const noexcept {
    return {process_id::engine, tokens_[admin::engine_slot]};
  }

  /// Reclaims everything of a process that died: its blocks, grants, views, names, its slot.
  void reclaim(process_id process);

  engine_stats stats() const;

  /// scrub on_free: the freed memory not yet zeroed, and who zeroed how much so far.
  background_scrubber::counts scrub_counts() const { return scrubber_.stats(); }
  /// scrub on_free: zeroes all freed memory now instead of in the background.
  void zero_freed_memory() { scrubber_.zero_all(); }

  /// Each capacity with its use now and its high-water mark (the same as stats().capacities).
  std::vector<capacity_use> capacities() const;

  /// Where log lines go (e.g. stderr in cafshmd); an empty sink drops them.
  void set_log(log_sink sink) { log_ = std::move(sink); }

  /// Logs one line "<when>: <capacity> <in use>/<limit> (peak <high-water mark>), ...".
  void log_capacities(const std::string& when) const;

  /// Allocator invariants plus exact accounting (per process, per block, header counters).
  /// Returns "" when all hold.
  std::string check() const;

  // -- introspection --------------------------------------------------------------------------

  uint64_t engine_id() const noexcept { return header().engine_id; }
  int32_t pid_of(process_id process) const noexcept;
  /// Whether `process` still runs: its recorded pid's start time is the recorded one (false
  /// for a zombie, a reused pid, or a process without a verified pid).
  bool still_runs(process_id process) const;
  /// Whether `process` is registered (process_id::engine always is).
  bool is_live(process_id process) const noexcept;
  /// The registered processes, without the engine.
  std::vector<process_id> live_processes() const;
  /// Writes the process_gone notices that found an actor inbox full again
  /// (process_gone_notice.hpp); the engine's liveness tick calls it. Returns how many were
  /// written now.
  size_t retry_gone_notices() { return gone_notices_.retry(); }
  const admin::admin_header& header() const noexcept;
  /// The first data segment (engine.arena bytes); data_segment(i) is segment i of the table,
  /// unmapped (false) when that entry is unused.
  const shm_segment& arena() const noexcept { return segments_[0]; }
  const shm_segment& data_segment(uint32_t index) const noexcept { return segments_[index]; }
  uint32_t live_segments() const noexcept { return header().live_segments; }
  const shm_segment& admin_memory() const noexcept { return admin_; }

private:
  /// `data` holds the data segments by table index (only the first one when not adopting).
  memory_manager(const engine_settings& s, quota_policy quotas, int lock_fd,
                 std::vector<shm_segment> data, shm_segment admin, bool adopt);
  void format();
  /// Takes over adopted admin memory (see create): returns the report line.
  std::string adopt();

  /// Marks admin memory as being changed (header.changing) for its lifetime; nests.
  class change_scope {
  public:
    explicit change_scope(memory_manager& mm) noexcept;
    ~change_scope();
    change_scope(const change_scope&) = delete;
    change_scope& operator=(const change_scope&) = delete;

  private:
    memory_manager& mm_;
  };

  admin::admin_header& header_mut() noexcept;
  admin::process_entry& process(uint32_t slot) const noexcept;
  bool slot_live(uint32_t slot) const noexcept;
  bool slot_runs(uint32_t slot) const;
  void reclaim_slot(uint32_t slot);
  admin::block_entry& block(uint32_t index) const noexcept;
  admin::grant_entry& grant(uint32_t index) const noexcept;
  admin::name_entry& name_at(uint32_t index) const noexcept;
  admin::segment_entry& segment(uint32_t index) const noexcept;
  /// Table index of the data segment holding page `page` of the page space.
  uint32_t segment_of(uint32_t page) const noexcept;
  std::byte* payload(const admin::block_entry& b) const noexcept;
  /// Adds a data segment that can hold a block of `size` bytes; "" on success, else why not:
  /// the ceiling (arena bytes + the block's occupied bytes above it even without the empty
  /// added segments, which go first when that makes room), /dev/shm too small, or a full
  /// segment table (only possible with segments cut short by the ceiling left over: a regular
  /// one has at least 1/63 of max_arena - arena). Never for want of a place in the page space:
  /// when no gap between segments takes the new one, the segments are packed (compact_segments).
  std::string grow(uint64_t size);
  /// Removes the added data segments that are empty, once the rest of the arena has at least
  /// half of the smaller of the initial arena and the segment free (a load at the edge of the
  /// arena does not add and remove a segment at every request).
  void remove_empty_segments();
  /// Removes empty added segment `index` at once (its pages must be one free block).
  void remove_segment(uint32_t index);
  /// Moves every added segment down in the page space to one page after the segment before it
  /// (the blocks' pages with them; nothing a process sees changes: leases give offsets within
  /// a segment). Afterwards all gaps are one at the end of the page space.
  void compact_segments();

  caf::expected<admin::process_entry*> resolve(const session& s);
  /// Live block that `ref` names, checked for the requester's right `need` (none = owner only).
  caf::expected<admin::block_entry*> resolve(const session& s, const block_ref& ref,
                                             admin::access need);
  caf::error deny(const session& s, errc code, std::string what);
  block_ref ref_of(uint32_t index) const noexcept;
  uint32_t index_of(const admin::block_entry& b) const noexcept;
  uint32_t find_grant(uint32_t block, uint32_t process) const noexcept;
  void drop_grant(uint32_t block, uint32_t grant_index) noexcept;
  void release_from_owner(uint32_t index) noexcept;
  void finish_if_drained(uint32_t index) noexcept;
  void unbind_name(uint32_t index) noexcept;
  void charge(uint32_t index, uint32_t slot) noexcept;
  /// Why charging `bytes` more to `slot` would exceed the quota that its engine.quotas rule
  /// gives all live processes of that rule together, or that engine.default_quota gives all
  /// live processes of its user without a rule together, or nullopt. `charged_now`: the slot
  /// the bytes are charged to before (a transfer); if it shares slot's quota, nothing changes.
  std::optional<std::string> shared_quota_problem(uint32_t slot, uint64_t bytes,
                                                  uint32_t charged_now = admin::engine_slot) const;
  /// Whether live slots `a` and `b` are bounded by one quota together (the same engine.quotas
  /// rule, or engine.default_quota and the same user).
  bool share_quota(uint32_t a, uint32_t b) const noexcept;
  /// Puts live slot `slot` into the quota group of its rule and user (quota_rules_, users_),
  /// with its bytes_in_use.
  void join_quota_group(uint32_t slot);
  /// Changes the bytes_in_use of `slot` by `delta` (two's complement), and its group's sum.
  void add_charge(uint32_t slot, uint64_t delta) noexcept;
  /// Recomputes every group's sum from the process table (after an adoption).
  void recount_quota_groups();
  /// After every rise of a counter: raises the high-water marks in the header and logs a
  /// warning the first time a capacity's use passes warn_percent.
  void note_usage();
  /// scrub on_free: a process (or, for the engine's own writes, anyone) may have written block
  /// `index` (writers_).
  void note_writer(uint32_t index, uint32_t slot) noexcept;
  /// The writer a session stands for in writers_ (the engine: anyone, whose pages are always
  /// zeroed: it writes other processes' and peers' data).
  background_scrubber::writer writer_of(uint32_t slot) const noexcept;
  /// After an adoption: all free memory of the arena counts as written by anyone (the dead
  /// engine may have left it unzeroed, or ran with another scrub policy).
  void mark_free_memory_dirty();

  engine_settings settings_;
  quota_policy quotas_;
  int lock_fd_ = -1; // admin segment, flock(LOCK_EX) held while this engine lives
  std::vector<shm_segment> segments_; // data segments by table index (admin::max_segments)
  shm_segment admin_;
  tlsf_allocator allocator_;
  log_sink log_;
  uint32_t warned_ = 0; // bit i: capacities()[i] passed warn_percent once
  std::array<uint64_t, 5> warn_above_{}; // capacities()[i] passed warn_percent: use above this
  std::vector<uint64_t> tokens_; // per slot; secret, never in shared memory
  std::vector<int> quota_rules_; // per slot: index of the engine.quotas rule that bounds it
                                 // together with the other live slots of that rule; -1: none
                                 // (engine.default_quota bounds it with its user's slots)
  fastpath::process_gone_notices gone_notices_{settings_.name}; // kept for a full actor inbox
  std::vector<uint32_t> users_;  // per slot: the uid its quota and process count go to
                                 // (ticketless registrations: all ~0, one user)
  // The shared quotas' running sums: every live slot but the engine's belongs to one quota
  // group (its engine.quotas rule, or, without a rule, its user); a group's sum is the
  // bytes_in_use of its live slots together, changed with every change of a bytes_in_use
  // (add_charge), so that a request compares one number instead of summing all slots.
  // check() recomputes them. Groups are never dropped: one per rule and per uid ever seen.
  std::vector<uint32_t> quota_group_;                   // per slot: group, or no_index
  std::vector<uint64_t> quota_group_bytes_;             // per group: its sum
  std::unordered_map<uint64_t, uint32_t> quota_groups_; // group key (see quota_group_key) -> group
  std::unordered_map<std::string, uint32_t> names_; // name -> name_entry index
  std::vector<uint8_t> concealed_; // per block index: engine-held but not readable by all
  std::vector<uint64_t> writable_opens_; // per block index: writable views opened so far
  // scrub on_free: per block index, who may have written its bytes since it was handed out
  // (nullopt: nobody; anyone: more than one process, the engine, or unknown after an adoption).
  // Freed, its pages go to scrubber_ with this writer.
  std::vector<std::optional<background_scrubber::writer>> writers_;
  background_scrubber scrubber_{settings_.scrub_delay}; // before segments_ are unmapped: see ~memory_manager
  std::mt19937_64 random_;
  uint32_t change_depth_ = 0; // open change_scopes
  bool adopted_ = false;
  std::string start_report_;
};

} // namespace cafshm
