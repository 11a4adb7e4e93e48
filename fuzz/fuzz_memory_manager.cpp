// Fuzz target: the engine's request validation. Random sequences of requests from several fake
// processes (register, unregister, reclaim, allocate, free, write, read, copy, share, revoke,
// transfer, name, lookup, remove, map, unmap, writes through views, authorize, ...) with
// random, replayed and forged refs (engine ids, block indexes, generations, sizes), sessions,
// offsets and sizes go straight to a memory_manager. A model of what each process may do runs
// alongside. After every request:
//   - memory_manager::check() is "" (allocator invariants, exact accounting in admin memory);
//   - a request that succeeded was allowed: live session, live block named exactly by the ref,
//     owner or grant of the needed kind (or an engine-held block for reads), bounds, quota;
//   - the limits the engine sets: a process asks for at most the default quota, and all live
//     processes (one user: the harness's) hold at most the default quota together; process names
//     are unique; a block given to the engine needs a name and stays charged to its giver, a
//     draining one to its last owner (until that process is gone); grants end at transfer;
//     copy requests carry at most max_copy_ranges ranges and max_copy_bytes bytes;
//   - requests that nothing forbids do succeed (free, read, write, lookup, remove, unmap, ...);
//   - reads return exactly what was written (through requests, copies or views);
//   - a newly allocated block holds no byte another process left: with scrub on_allocate it is
//     zero everywhere; with on_free (the scrubbing thread idle during an input) every byte is
//     zero or, where the allocating process's session alone wrote the freed pages, the byte it
//     left there; at the end, once the freed memory is zeroed, the arena is zero everywhere;
//   - the engine's statistics equal the model: bytes and blocks per process, blocks (live and
//     draining), used bytes, names, processes.
// Half of the inputs run an arena that may grow to four times its initial size: allocations that
// no free block fits add data segments (an allocation is refused only when nothing fits and the
// arena cannot grow for it), blocks and views lie in any segment, empty segments go again.
// At the end every process unregisters and the engine's own blocks are freed: the arena must be
// entirely free (back to its initial segment) and every table empty.
#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "admin_layout.hpp"
#include "memory_manager.hpp"
#include "fuzz_input.hpp"
#include "support/stale_segments.hpp"

using namespace cafshm;
using cafshm::fuzz::input;
using cafshm::fuzz::violation;

namespace {

constexpr uint64_t page = 4096;
constexpr uint64_t arena_bytes = 256 * 1024;
constexpr uint64_t max_arena_bytes = 4 * arena_bytes; // when the input's config lets it grow
constexpr uint32_t max_processes = 5; // the engine and up to four processes
constexpr uint32_t max_blocks = 24;
constexpr uint32_t max_grants = 12;
constexpr uint32_t max_names = 6;
constexpr uint32_t max_copy_ranges = 3;
constexpr uint64_t max_copy_bytes = 96 * 1024;

using admin::access;

uint64_t block_bytes(uint64_t size) {
  return std::max<uint64_t>(page, (size + page - 1) / page * page); // whole pages, no more
}

struct process {
  session s;
  std::string name;
  uint64_t quota = 0;
  bool live = true;
};

// Who may have written a block's bytes, as memory_manager::note_writer records it: one
// process's session, or anyone (token 0: the engine's session, or more than one session).
struct writer_id {
  uint32_t slot = 0;
  uint64_t token = 0;
  bool operator==(const writer_id&) const = default;
};

constexpr writer_id anyone{};

struct block {
  block_ref ref;
  process_id owner{};
  process_id payer{};  // the process whose quota the block counts against
  uint64_t bytes = 0;
  uint32_t segment = 0; // data segment (table index) and offset in it
  uint64_t offset = 0;
  std::map<process_id, access> grants;
  std::vector<char> content; // the block's first ref.size bytes
  std::string name;
  std::optional<writer_id> writer; // nobody wrote it since its allocation: nullopt
};

// A page of freed memory not zeroed yet (scrub on_free): who wrote it and what it held.
struct freed_page {
  writer_id writer;
  std::vector<std::byte> bytes;
};

struct view {
  process_id slot;
  uint32_t index;
  bool writable;
  uint32_t segment;
  uint64_t offset;
  uint64_t size;
};

template <class T>
bool ok(const caf::expected<T>& x) {
  return static_cast<bool>(x);
}

std::string str(const block_ref& r) {
  return to_string(r);
}

class harness {
public:
  harness(input& in, memory_manager& mm, scrub_policy scrub, uint64_t default_quota)
    : in_(in), mm_(mm), scrub_(scrub), default_quota_(default_quota),
      ceiling_(mm.header().max_arena_bytes) {
    mm_.set_log([this](const std::string& line) { log_.push_back(line); });
  }

  void run() {
    for (int steps = 0; !in_.empty() && steps < 400; ++steps) {
      step();
      verify("after op " + std::to_string(last_op_));
      if (steps % 16 == 15)
        verify_contents();
    }
    verify_contents();
    finish();
  }

private:
  // -- model queries ------------------------------------------------------------------------

  std::optional<process_id> requester(const session& s) const {
    if (s == mm_.engine_session())
      return process_id::engine;
    for (const auto& p : procs_)
      if (p.live && p.s == s)
        return p.s.process;
    return std::nullopt;
  }

  bool live_slot(process_id slot) const {
    if (slot == process_id::engine)
      return true;
    for (const auto& p : procs_)
      if (p.live && p.s.process == slot)
        return true;
    return false;
  }

  process* proc_of(process_id slot) {
    for (auto& p : procs_)
      if (p.live && p.s.process == slot)
        return &p;
    return nullptr;
  }

  block* live_block(const block_ref& r) {
    auto i = blocks_.find(r.block);
    if (i == blocks_.end() || i->second.ref != r)
      return nullptr;
    return &i->second;
  }

  static bool allowed(process_id slot, const block& b, access need) {
    if (slot == process_id::engine || b.owner == slot)
      return true;
    if (need == access::none)
      return false;
    if (need == access::read && b.owner == process_id::engine)
      return true;
    auto g = b.grants.find(slot);
    return g != b.grants.end() && g->second >= need;
  }

  uint32_t views_of(process_id slot, uint32_t index) const {
    return static_cast<uint32_t>(std::count_if(views_.begin(), views_.end(), [&](const view& v) {
      return v.slot == slot && v.index == index;
    }));
  }

  bool has_views(uint32_t index) const {
    return std::any_of(views_.begin(), views_.end(),
                       [&](const view& v) { return v.index == index; });
  }

  uint64_t in_use(process_id slot) const {
    uint64_t sum = 0;
    for (const auto& [i, b] : blocks_)
      if (b.payer == slot)
        sum += b.bytes;
    for (const auto& [i, d] : draining_)
      if (d.payer == slot)
        sum += d.bytes;
    return sum;
  }

  uint64_t quota_of(process_id slot) {
    auto* p = proc_of(slot);
    return p == nullptr ? 0 : p->quota;
  }

  // What all live processes have charged: every fake process is of the harness's user, whom
  // engine.default_quota bounds as a whole.
  uint64_t user_in_use() const {
    uint64_t sum = 0;
    for (const auto& p : procs_)
      if (p.live)
        sum += in_use(p.s.process);
    return sum;
  }

  // Whether `slot` may be charged `bytes` more, taken from slot `from` (a transfer; the engine
  // slot: new bytes). A charge that moves between two processes leaves the user's sum as it is.
  bool quota_ok(process_id slot, uint64_t bytes, process_id from = process_id::engine) {
    if (slot == process_id::engine)
      return true; // the engine has no quota
    auto q = quota_of(slot);
    if (q != 0 && in_use(slot) + bytes > q)
      return false;
    bool within_user = from != process_id::engine && live_slot(from);
    return default_quota_ == 0 || within_user || user_in_use() + bytes <= default_quota_;
  }

  static bool in_bounds(uint64_t offset, uint64_t length, uint64_t size) {
    return offset <= size && length <= size - offset;
  }

  // The writer a request of session `s` (already found live) counts as.
  writer_id writer_of(const session& s) const {
    if (s == mm_.engine_session())
      return anyone;
    return {to_slot(s.process), s.token};
  }

  static void note_writer(block& b, writer_id w) {
    if (!b.writer)
      b.writer = w;
    else if (*b.writer != w)
      b.writer = anyone;
  }

  // Where block `index` lies (data segment table index, offset), read from admin memory as a
  // process reads it: engine_bytes would count the engine as a writer of the block.
  std::optional<std::pair<uint32_t, uint64_t>> place_of(uint32_t index) const {
    const auto& h = mm_.header();
    const auto* admin = mm_.admin_memory().data();
    admin::block_entry b;
    std::memcpy(&b, admin + h.block_offset + index * sizeof(b), sizeof(b));
    for (uint32_t i = 0; i < admin::max_segments; ++i) {
      admin::segment_entry e;
      std::memcpy(&e, admin + h.segment_offset + i * sizeof(e), sizeof(e));
      if (e.pages != 0 && b.page - e.first_page < e.pages)
        return std::pair{i, uint64_t{b.page - e.first_page} << h.min_order};
    }
    return std::nullopt;
  }

  // -- model updates ------------------------------------------------------------------------

  void release(uint32_t index) {
    auto i = blocks_.find(index);
    if (i == blocks_.end())
      violation("model: release of unknown block");
    if (!i->second.name.empty())
      names_.erase(i->second.name);
    if (has_views(index))
      draining_[index] = std::move(i->second);
    else
      left_free(i->second);
    blocks_.erase(i);
  }

  void finish_drained() {
    for (auto i = draining_.begin(); i != draining_.end();) {
      if (has_views(i->first)) {
        ++i;
        continue;
      }
      left_free(i->second);
      i = draining_.erase(i);
    }
  }

  // A block's pages went back to the allocator: with scrub on_free, written ones wait for
  // zeroing with what they hold (unless their data segment went with them).
  void left_free(const block& b) {
    const auto& seg = mm_.data_segment(b.segment);
    if (scrub_ != scrub_policy::on_free || !b.writer || !seg)
      return;
    for (uint64_t at = 0; at < b.bytes; at += page) {
      const auto* p = seg.data() + b.offset + at;
      freed_[{b.segment, b.offset + at}] = {*b.writer, std::vector<std::byte>(p, p + page)};
    }
  }

  void reclaim_model(process_id slot) {
    if (slot == process_id::engine)
      return;
    auto* p = proc_of(slot);
    if (p == nullptr)
      return;
    std::erase_if(views_, [&](const view& v) { return v.slot == slot; });
    for (auto& [i, b] : blocks_)
      b.grants.erase(slot);
    std::vector<uint32_t> owned;
    for (auto& [i, b] : blocks_)
      if (b.owner == slot)
        owned.push_back(i);
    for (auto i : owned)
      release(i);
    finish_drained();
    for (auto& [i, b] : blocks_) // given to the engine: charged to nobody now
      if (b.payer == slot)
        b.payer = process_id::engine;
    for (auto& [i, d] : draining_)
      if (d.payer == slot)
        d.payer = process_id::engine;
    p->live = false;
  }

  void remember(const block_ref& r) {
    refs_.push_back(r);
    if (refs_.size() > 64)
      refs_.erase(refs_.begin());
  }

  // -- choosing arguments ---------------------------------------------------------------------

  session pick_session() {
    auto sel = in_.byte();
    std::vector<const process*> live;
    for (const auto& p : procs_)
      if (p.live)
        live.push_back(&p);
    if (sel < 200 && !live.empty())
      return live[sel % live.size()]->s;
    if (sel < 230 && !procs_.empty()) { // a dead session, or a live one with a forged token
      const auto& p = procs_[sel % procs_.size()];
      session s = p.s;
      if (p.live)
        s.token ^= uint64_t{1} + in_.byte();
      return s;
    }
    if (sel < 244)
      return session{process_id{static_cast<uint32_t>(in_.below(max_processes + 2))}, in_.u64()};
    return mm_.engine_session();
  }

  process_id pick_process() {
    return process_id{static_cast<uint32_t>(in_.below(max_processes + 1))};
  }

  block_ref pick_ref() {
    auto sel = in_.byte();
    block_ref r{mm_.engine_id(), 0, 0, page};
    if (!refs_.empty())
      r = refs_[in_.below(refs_.size())];
    if (sel < 160)
      return r;
    switch (sel % 7) {
      case 0:
        r.engine ^= uint64_t{1} << in_.below(64);
        break;
      case 1:
        r.block = in_.u32();
        break;
      case 2:
        r.generation += static_cast<uint32_t>(in_.byte()) - 128u;
        break;
      case 3:
        r.size = in_.flag() ? r.size + 1 : r.size - 1;
        break;
      case 4: // guessing: the real engine id, any index, a small generation
        r.block = static_cast<uint32_t>(in_.below(max_blocks + 2));
        r.generation = static_cast<uint32_t>(in_.below(4));
        break;
      case 5:
        r.size = in_.u64();
        break;
      default:
        r = block_ref{in_.u64(), in_.u32(), in_.u32(), in_.u64()};
    }
    return r;
  }

  uint64_t pick_size() {
    switch (in_.byte() % 8) {
      case 0: return 0;
      case 1: return 1 + in_.below(page);
      case 2: return page * (1 + in_.below(8));
      case 3: return 1 + in_.below(in_.flag() ? arena_bytes : ceiling_);
      case 4: return in_.flag() ? arena_bytes : ceiling_;
      case 5: return (in_.flag() ? arena_bytes : ceiling_) + 1;
      case 6: return in_.u64();
      default: return 1 + in_.below(300);
    }
  }

  // An offset and length relative to a block of `size` bytes: mostly inside, sometimes not.
  std::pair<uint64_t, uint64_t> pick_range(uint64_t size) {
    switch (in_.byte() % 6) {
      case 0: return {0, size};
      case 1: return {in_.u64(), in_.u64()};
      case 2: return {size, in_.below(3)};
      case 3: return {size == 0 ? 0 : in_.below(size), in_.below(size + 2)};
      default: {
        uint64_t off = size == 0 ? 0 : in_.below(size);
        return {off, in_.below(std::min<uint64_t>(size - off, 512) + 1)};
      }
    }
  }

  // The data segment (table index) and offset of `bytes` bytes at `p`, if one segment holds them.
  std::optional<std::pair<uint32_t, uint64_t>> locate(const std::byte* p, uint64_t bytes) const {
    for (uint32_t i = 0; i < admin::max_segments; ++i) {
      const auto& seg = mm_.data_segment(i);
      if (seg && p >= seg.data() && p < seg.data() + seg.size()
          && bytes <= seg.size() - static_cast<uint64_t>(p - seg.data()))
        return std::pair{i, static_cast<uint64_t>(p - seg.data())};
    }
    return std::nullopt;
  }

  uint64_t size_hint(const block_ref& r) {
    return r.size > ceiling_ ? page : r.size;
  }

  std::vector<char> pattern(uint64_t n) {
    std::vector<char> bytes(n);
    auto seed = static_cast<char>(in_.byte() | 1);
    for (uint64_t i = 0; i < n; ++i)
      bytes[i] = static_cast<char>(seed * static_cast<char>(i + 1) + static_cast<char>(i >> 8));
    return bytes;
  }

  std::string pick_name() {
    static const char* names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    if (in_.byte() < 220)
      return names[in_.below(8)];
    return in_.text(60);
  }

  // -- requests --------------------------------------------------------------------------------

  void step() {
    last_op_ = in_.byte() % 20;
    switch (last_op_) {
      case 0: do_register(); break;
      case 1: do_unregister(); break;
      case 2: do_reclaim(); break;
      case 3: case 4: do_allocate(); break;
      case 5: do_free(); break;
      case 6: do_write(); break;
      case 7: do_read(); break;
      case 8: do_copy(); break;
      case 9: do_share(); break;
      case 10: do_revoke(); break;
      case 11: do_transfer(); break;
      case 12: do_name(); break;
      case 13: do_lookup(); break;
      case 14: do_remove(); break;
      case 15: do_map(); break;
      case 16: do_unmap(); break;
      case 17: do_view_write(); break;
      default: do_misc(); break;
    }
  }

  void do_register() {
    auto sel = in_.byte();
    std::string name = sel < 200   ? "p" + std::to_string(procs_.size())
                       : sel < 230 && !procs_.empty() ? procs_[in_.below(procs_.size())].name
                                                      : in_.text(40);
    uint64_t quota = in_.flag() ? 0 : page * 4 * (1 + in_.below(8));
    auto r = mm_.register_process(name, 1000 + static_cast<int32_t>(procs_.size()), quota);
    auto live = std::count_if(procs_.begin(), procs_.end(), [](auto& p) { return p.live; });
    bool valid_name = !name.empty() && name.size() < sizeof(admin::process_entry::name)
                      && name.find('\0') == std::string::npos;
    bool name_free = std::none_of(procs_.begin(), procs_.end(),
                                  [&](auto& p) { return p.live && p.name == name; });
    bool quota_allowed = default_quota_ == 0 || quota <= default_quota_;
    if (!r) {
      if (valid_name && name_free && quota_allowed && live < max_processes - 1)
        violation("register refused with a free slot: " + describe(r.error()));
      if (valid_name && !name_free && code_of(r.error()) != errc::process_name_taken)
        violation("register under a live name refused with another code: "
                  + describe(r.error()));
      return;
    }
    if (!valid_name || live >= max_processes - 1)
      violation("register accepted a bad name or a full table");
    if (!name_free)
      violation("register accepted the name of a live process: '" + name + "'");
    if (!quota_allowed)
      violation("register accepted a quota above the engine's");
    auto slot = r->session.process;
    if (slot == process_id::engine || to_slot(slot) >= max_processes || live_slot(slot))
      violation("register returned a slot in use: " + to_string(slot));
    if (r->engine_id != mm_.engine_id() || r->session.token == 0)
      violation("register returned a bad registration");
    procs_.push_back({r->session, name, quota != 0 ? quota : default_quota_, true});
  }

  void do_unregister() {
    auto s = pick_session();
    auto who = requester(s);
    auto r = mm_.unregister(s);
    bool permitted = who && *who != process_id::engine;
    if (ok(r) != permitted)
      violation(std::string{"unregister "} + (permitted ? "refused" : "accepted") + " for slot "
                + to_string(s.process));
    if (r)
      reclaim_model(*who);
  }

  void do_reclaim() {
    auto slot = pick_process();
    mm_.reclaim(slot);
    reclaim_model(slot);
  }

  void do_allocate() {
    auto s = pick_session();
    auto size = pick_size();
    auto who = requester(s);
    auto before = mm_.stats();
    auto largest = before.largest_free_block;
    auto r = mm_.allocate(s, size);
    bool permitted = who && size > 0 && size <= ceiling_ && quota_ok(*who, block_bytes(size));
    if (!r) {
      auto text = describe(r.error());
      bool room = permitted && blocks_.size() + draining_.size() < max_blocks;
      if (room && largest >= block_bytes(size))
        violation("allocate of " + std::to_string(size) + " refused with a free block of "
                  + std::to_string(largest) + " bytes: " + text);
      // The arena grows unless the ceiling leaves no room for it (the page space always does).
      if (room && block_bytes(size) <= ceiling_ - before.arena_bytes)
        violation("allocate of " + std::to_string(size) + " refused with room to grow from "
                  + std::to_string(before.arena_bytes) + " bytes: " + text);
      auto code = static_cast<errc>(r.error().code());
      if (code == errc::capacity_exceeded && text.find("engine.max_blocks") == std::string::npos)
        violation("a full block table does not name engine.max_blocks: " + text);
      if (code == errc::out_of_memory
          && (text.find("engine.max_arena") == std::string::npos
              || text.find("ceiling " + std::to_string(ceiling_)) == std::string::npos
              || text.find("largest free block ") == std::string::npos))
        violation("out of memory without the numbers and engine.max_arena: " + text);
      return;
    }
    if (!permitted)
      violation("allocate of " + std::to_string(size) + " accepted for slot "
                + to_string(s.process));
    if (r->engine != mm_.engine_id() || r->size != size || r->block >= max_blocks
        || blocks_.count(r->block) != 0 || draining_.count(r->block) != 0)
      violation("allocate returned a bad ref " + str(*r));
    block b;
    b.ref = *r;
    b.owner = *who;
    b.payer = *who;
    b.bytes = block_bytes(size);
    auto where = place_of(r->block);
    if (!where || !locate(mm_.data_segment(where->first).data() + where->second, b.bytes))
      violation("block outside every data segment");
    b.segment = where->first;
    b.offset = where->second;
    auto* base = mm_.data_segment(b.segment).data();
    if (b.offset % page != 0)
      violation("block at a misaligned offset");
    for (const auto& [i, other] : blocks_)
      if (b.segment == other.segment && b.offset < other.offset + other.bytes
          && other.offset < b.offset + b.bytes)
        violation("new block overlaps block " + std::to_string(i));
    if (scrub_ == scrub_policy::on_allocate) {
      for (uint64_t i = 0; i < b.bytes; ++i)
        if (base[b.offset + i] != std::byte{0})
          violation("a new block is not scrubbed at byte " + std::to_string(i));
    } else if (scrub_ == scrub_policy::on_free) {
      // Freed pages of this session alone may come back as they were, all others zeroed.
      auto me = writer_of(s);
      for (uint64_t at = 0; at < b.bytes; at += page) {
        auto freed = freed_.find({b.segment, b.offset + at});
        bool own = freed != freed_.end() && me.token != 0 && freed->second.writer == me;
        for (uint64_t i = 0; i < page; ++i) {
          auto x = base[b.offset + at + i];
          if (x != std::byte{0} && !(own && x == freed->second.bytes[i]))
            violation("a new block of slot " + to_string(s.process) + " holds at byte "
                      + std::to_string(at + i) + " what "
                      + (freed == freed_.end() ? std::string{"no free"}
                                               : "slot " + std::to_string(freed->second.writer.slot))
                      + " left");
        }
        if (own)
          b.writer = me; // it counts as the writer of its own old bytes
        if (freed != freed_.end())
          freed_.erase(freed);
      }
    }
    auto* first = reinterpret_cast<const char*>(base + b.offset);
    b.content.assign(first, first + size);
    blocks_[r->block] = std::move(b);
    remember(*r);
  }

  void do_free() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto who = requester(s);
    auto* b = live_block(ref);
    bool permitted = who && b != nullptr && allowed(*who, *b, access::none);
    auto r = mm_.free(s, ref);
    if (ok(r) != permitted)
      violation(std::string{"free "} + (permitted ? "refused" : "accepted") + " of " + str(ref));
    if (r) {
      release(ref.block);
      finish_drained();
    }
  }

  void do_write() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto [offset, length] = pick_range(size_hint(ref));
    length = std::min<uint64_t>(length, ceiling_ + 1);
    auto data = pattern(length);
    auto who = requester(s);
    auto* b = live_block(ref);
    bool permitted = who && b != nullptr && allowed(*who, *b, access::read_write)
                     && in_bounds(offset, length, ref.size);
    auto r = mm_.write(s, ref, offset, data);
    if (ok(r) != permitted)
      violation(std::string{"write "} + (permitted ? "refused" : "accepted") + " to " + str(ref));
    if (r) {
      std::copy(data.begin(), data.end(), b->content.begin() + static_cast<ptrdiff_t>(offset));
      note_writer(*b, writer_of(s));
    }
  }

  void do_read() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto [offset, length] = pick_range(size_hint(ref));
    auto who = requester(s);
    auto* b = live_block(ref);
    bool permitted = who && b != nullptr && allowed(*who, *b, access::read)
                     && in_bounds(offset, length, ref.size);
    auto r = mm_.read(s, ref, offset, length);
    if (ok(r) != permitted)
      violation(std::string{"read "} + (permitted ? "refused" : "accepted") + " of " + str(ref));
    if (r) {
      auto first = b->content.begin() + static_cast<ptrdiff_t>(offset);
      if (r->size() != length || !std::equal(r->begin(), r->end(), first))
        violation("read returned other bytes than were written to " + str(ref));
    }
  }

  void do_copy() {
    auto s = pick_session();
    auto src = pick_ref();
    auto dst = pick_ref();
    std::vector<copy_range> ranges(in_.below(max_copy_ranges + 3));
    for (auto& cr : ranges) {
      auto [so, len] = pick_range(size_hint(src));
      cr.src_offset = so;
      cr.length = len;
      cr.dst_offset = in_.flag() ? so : pick_range(size_hint(dst)).first;
    }
    auto who = requester(s);
    auto* from = live_block(src);
    auto* to = live_block(dst);
    bool permitted = who && from != nullptr && to != nullptr && !ranges.empty()
                     && allowed(*who, *from, access::read)
                     && allowed(*who, *to, access::read_write);
    uint64_t total = 0;
    for (const auto& cr : ranges) {
      permitted = permitted && in_bounds(cr.src_offset, cr.length, src.size)
                  && in_bounds(cr.dst_offset, cr.length, dst.size);
      total += permitted ? cr.length : 0;
    }
    permitted = permitted && ranges.size() <= max_copy_ranges && total <= max_copy_bytes;
    auto r = mm_.copy(s, src, dst, ranges);
    if (ok(r) != permitted)
      violation(std::string{"copy "} + (permitted ? "refused" : "accepted") + " from "
                + str(src) + " to " + str(dst));
    if (r) {
      for (const auto& cr : ranges)
        std::memmove(to->content.data() + cr.dst_offset, from->content.data() + cr.src_offset,
                     cr.length);
      note_writer(*to, writer_of(s));
    }
  }

  void do_share() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto to = pick_process();
    auto mode = static_cast<access_mode>(in_.byte() % 4);
    auto who = requester(s);
    auto* b = live_block(ref);
    bool permitted = who && b != nullptr && allowed(*who, *b, access::none)
                     && (mode == access_mode::read || mode == access_mode::read_write)
                     && live_slot(to) && to != b->owner;
    auto r = mm_.share(s, ref, to, mode);
    if (r && !permitted)
      violation("share accepted: " + str(ref) + " to " + to_string(to));
    if (r)
      b->grants[to] = mode == access_mode::read_write ? access::read_write : access::read;
  }

  void do_revoke() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto from = pick_process();
    auto who = requester(s);
    auto* b = live_block(ref);
    // A non-owner's open views pin its grant entry: revoking it then is block_in_use.
    bool permitted = who && b != nullptr && allowed(*who, *b, access::none)
                     && (from == b->owner || views_of(from, ref.block) == 0);
    auto r = mm_.revoke(s, ref, from);
    if (ok(r) != permitted)
      violation(std::string{"revoke "} + (permitted ? "refused" : "accepted") + " of "
                + str(ref) + " from " + to_string(from));
    if (r)
      b->grants.erase(from);
  }

  // Whether `slot` holds an entry in the block's grant list: a grant, or views of a non-owner.
  bool has_grant_entry(process_id slot, uint32_t index) {
    auto i = blocks_.find(index);
    if (i == blocks_.end())
      return false;
    return i->second.grants.count(slot) != 0
           || (i->second.owner != slot && views_of(slot, index) != 0);
  }

  void do_transfer() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto to = pick_process();
    auto who = requester(s);
    auto* b = live_block(ref);
    bool giving = to == process_id::engine;
    bool viewed_by_others = std::any_of(views_.begin(), views_.end(), [&](const view& v) {
      return v.index == ref.block && v.slot != to && v.slot != process_id::engine
             && b != nullptr && v.slot != b->owner;
    });
    bool permitted = who && b != nullptr && allowed(*who, *b, access::none) && live_slot(to)
                     && to != b->owner && views_of(b->owner, ref.block) == 0
                     && !viewed_by_others && (!giving || !b->name.empty())
                     && (giving || b->payer == to || quota_ok(to, b->bytes, b->payer));
    auto r = mm_.transfer(s, ref, to);
    if (ok(r) != permitted)
      violation(std::string{"transfer "} + (permitted ? "refused" : "accepted") + " of "
                + str(ref) + " to " + to_string(to));
    if (r) {
      if (*r != ref)
        violation("transfer changed the ref");
      b->owner = to;
      b->grants.clear(); // every grant ends with the transfer
      if (!giving)
        b->payer = to;
    }
  }

  void do_name() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto name = pick_name();
    auto who = requester(s);
    auto* b = live_block(ref);
    bool valid = !name.empty() && name.size() <= admin::max_name_length
                 && name.find('\0') == std::string::npos;
    auto bound = names_.find(name);
    bool permitted = who && b != nullptr && allowed(*who, *b, access::none) && valid
                     && (bound == names_.end() || bound->second == ref.block);
    auto r = mm_.name(s, ref, name);
    if (r && !permitted)
      violation("name accepted: '" + name + "' for " + str(ref));
    if (!r && permitted && (bound != names_.end() || names_.size() < max_names))
      violation("name refused: '" + name + "' for " + str(ref) + ": " + describe(r.error()));
    if (r && bound == names_.end()) {
      if (!b->name.empty())
        names_.erase(b->name);
      b->name = name;
      names_[name] = ref.block;
    }
  }

  void do_lookup() {
    auto s = pick_session();
    auto name = pick_name();
    auto who = requester(s);
    auto bound = names_.find(name);
    auto r = mm_.lookup(s, name);
    bool permitted = who && bound != names_.end();
    if (ok(r) != permitted)
      violation(std::string{"lookup "} + (permitted ? "refused" : "accepted") + " of '" + name
                + "'");
    if (r) {
      if (*r != blocks_.at(bound->second).ref)
        violation("lookup returned another block");
      remember(*r);
    }
  }

  void do_remove() {
    auto s = pick_session();
    auto name = pick_name();
    auto who = requester(s);
    auto bound = names_.find(name);
    bool permitted = who && bound != names_.end()
                     && (blocks_.at(bound->second).owner == *who
                         || blocks_.at(bound->second).owner == process_id::engine);
    auto r = mm_.remove(s, name);
    if (ok(r) != permitted)
      violation(std::string{"remove "} + (permitted ? "refused" : "accepted") + " of '" + name
                + "'");
    if (r) {
      release(bound->second);
      finish_drained();
    }
  }

  void do_map() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto mode = in_.flag() ? access_mode::read_write : access_mode::read;
    auto need = mode == access_mode::read_write ? access::read_write : access::read;
    auto who = requester(s);
    auto* b = live_block(ref);
    bool permitted = who && b != nullptr && allowed(*who, *b, need);
    auto r = mm_.map(s, ref, mode);
    if (r && !permitted)
      violation("map accepted: " + str(ref) + " for slot " + to_string(s.process));
    if (!r && permitted && (b->owner == *who || has_grant_entry(*who, ref.block)))
      violation("map refused: " + str(ref) + ": " + describe(r.error()));
    if (!r)
      return;
    if (r->offset != b->offset || r->size != ref.size || r->writable != (mode == access_mode::read_write)
        || r->data_segment != mm_.data_segment(b->segment).name())
      violation("map returned a bad lease for " + str(ref));
    views_.push_back({*who, ref.block, r->writable, b->segment, r->offset, r->size});
    if (r->writable)
      note_writer(*b, writer_of(s));
  }

  void do_unmap() {
    auto s = pick_session();
    block_ref ref = pick_ref();
    if (!views_.empty() && in_.byte() < 200) { // mostly a view that is open
      const auto& v = views_[in_.below(views_.size())];
      ref = block_ref{mm_.engine_id(), v.index, in_.u32(), in_.u64()};
      if (in_.byte() < 220) {
        for (const auto& p : procs_)
          if (p.live && p.s.process == v.slot)
            s = p.s;
        if (v.slot == process_id::engine)
          s = mm_.engine_session();
      }
    }
    auto who = requester(s);
    bool permitted = who && ref.engine == mm_.engine_id() && views_of(*who, ref.block) > 0;
    auto r = mm_.unmap(s, ref);
    if (ok(r) != permitted)
      violation(std::string{"unmap "} + (permitted ? "refused" : "accepted") + " of "
                + str(ref) + " for slot " + to_string(s.process));
    if (r) {
      auto i = std::find_if(views_.begin(), views_.end(), [&](const view& v) {
        return v.slot == *who && v.index == ref.block;
      });
      views_.erase(i);
      finish_drained();
    }
  }

  // A process writes through a view it holds: anywhere in the view's pages (a mapping covers
  // whole pages, so also past the block's size). Only that block's bytes may change.
  void do_view_write() {
    if (views_.empty())
      return;
    const auto v = views_[in_.below(views_.size())];
    if (!v.writable)
      return;
    uint64_t span = (v.size + page - 1) / page * page;
    uint64_t off = in_.below(span);
    uint64_t n = in_.below(std::min<uint64_t>(span - off, 600) + 1);
    if (n == 0)
      return;
    auto data = pattern(n);
    std::memcpy(mm_.data_segment(v.segment).data() + v.offset + off, data.data(), n);
    auto i = blocks_.find(v.index);
    if (i == blocks_.end() || i->second.offset != v.offset || i->second.segment != v.segment)
      return; // a draining block: nobody else can see it
    auto& content = i->second.content;
    for (uint64_t k = 0; k < n && off + k < content.size(); ++k)
      content[off + k] = data[k];
  }

  void do_misc() {
    auto s = pick_session();
    auto ref = pick_ref();
    auto who = requester(s);
    auto* b = live_block(ref);
    switch (in_.byte() % 5) {
      case 0: {
        auto mode = in_.flag() ? access_mode::read_write : access_mode::read;
        auto need = mode == access_mode::read_write ? access::read_write : access::read;
        bool permitted = who && b != nullptr && allowed(*who, *b, need);
        if (ok(mm_.authorize(s, ref, mode)) != permitted)
          violation("authorize disagrees for " + str(ref));
        break;
      }
      case 1:
        if (ok(mm_.check_session(s)) != who.has_value())
          violation("check_session disagrees");
        break;
      case 2: {
        auto r = mm_.exported_version(ref);
        bool exported = b != nullptr
                        && (b->owner == process_id::engine
                            || b->grants.count(process_id::engine) != 0);
        if (ok(r) != exported)
          violation("exported_version disagrees for " + str(ref));
        break;
      }
      case 3: {
        auto r = mm_.engine_bytes(ref);
        if (ok(r) != (b != nullptr))
          violation("engine_bytes disagrees for " + str(ref));
        if (r) {
          if (r->data() != mm_.data_segment(b->segment).data() + b->offset
              || r->size() != ref.size)
            violation("engine_bytes gives another place for " + str(ref));
          note_writer(*b, anyone); // the engine may write through the span
        }
        break;
      }
      default: {
        auto name = in_.byte() < 200 ? "p" + std::to_string(in_.below(procs_.size() + 1))
                                     : in_.text(40);
        auto r = mm_.find_process(s, name);
        const process* first = nullptr;
        for (const auto& p : procs_) // the only live process of that name
          if (p.live && p.name == name) {
            if (first != nullptr)
              violation("two live processes named '" + name + "'");
            first = &p;
          }
        bool permitted = who && first != nullptr;
        if (ok(r) != permitted || (r && *r != first->s.process))
          violation("find_process disagrees for '" + name + "'");
      }
    }
  }

  // -- checks ----------------------------------------------------------------------------------

  void verify(const std::string& when) {
    if (auto err = mm_.check(); !err.empty())
      violation("check() " + when + ": " + err);
    // One warning per capacity, logged the first time its use passed 80 %.
    for (const auto& c : mm_.capacities()) {
      auto warnings = std::count_if(log_.begin(), log_.end(), [&](const std::string& line) {
        return line.find("raise " + c.setting + " ") != std::string::npos;
      });
      bool passed = c.peak * 100 > c.capacity * memory_manager::warn_percent;
      if (warnings != (passed ? 1 : 0) || c.used > c.peak || c.peak > c.capacity)
        violation(c.name + ": " + std::to_string(warnings) + " warnings at peak "
                  + std::to_string(c.peak) + " of " + std::to_string(c.capacity) + " " + when);
    }
    auto st = mm_.stats();
    uint64_t used = 0;
    for (const auto& [i, b] : blocks_)
      used += b.bytes;
    for (const auto& [i, d] : draining_)
      used += d.bytes;
    auto live = std::count_if(procs_.begin(), procs_.end(), [](auto& p) { return p.live; });
    if (st.blocks != blocks_.size() + draining_.size() || st.used_bytes != used
        || st.free_bytes != st.arena_bytes - used || st.arena_bytes > ceiling_
        || st.names != names_.size()
        || st.processes != static_cast<uint32_t>(live)
        || st.draining_blocks != draining_.size())
      violation("statistics differ from the model " + when + ": blocks "
                + std::to_string(st.blocks) + " vs " + std::to_string(blocks_.size()) + "+"
                + std::to_string(draining_.size()) + ", used " + std::to_string(st.used_bytes)
                + " vs " + std::to_string(used) + ", names " + std::to_string(st.names) + " vs "
                + std::to_string(names_.size()));
    for (const auto& ps : st.process_list) {
      uint32_t count = 0;
      for (const auto& [i, b] : blocks_)
        count += b.owner == ps.id;
      if (!live_slot(ps.id) || ps.bytes_in_use != in_use(ps.id) || ps.blocks != count)
        violation("process " + to_string(ps.id) + " accounts " + std::to_string(ps.bytes_in_use)
                  + " bytes in " + std::to_string(ps.blocks) + " blocks, the model "
                  + std::to_string(in_use(ps.id)) + " in " + std::to_string(count));
    }
  }

  void verify_contents() {
    for (const auto& [i, b] : blocks_) {
      const auto* bytes = mm_.data_segment(b.segment).data() + b.offset;
      if (std::memcmp(bytes, b.content.data(), b.content.size()) != 0)
        violation("the bytes of " + str(b.ref) + " differ from what was written");
    }
  }

  void finish() {
    for (auto& p : procs_)
      if (p.live) {
        if (!mm_.unregister(p.s))
          violation("unregister refused at the end");
        reclaim_model(p.s.process);
      }
    auto engine = mm_.engine_session();
    while (!views_.empty()) {
      auto v = views_.back();
      if (v.slot != process_id::engine)
        violation("a view of a process that is gone");
      if (!mm_.unmap(engine, block_ref{mm_.engine_id(), v.index, 0, 0}))
        violation("the engine could not close its view");
      views_.pop_back();
    }
    finish_drained();
    std::vector<block_ref> held;
    for (const auto& [i, b] : blocks_)
      held.push_back(b.ref);
    for (const auto& r : held) {
      if (!mm_.free(engine, r))
        violation("the engine could not free " + str(r));
      release(r.block);
    }
    verify("at the end");
    auto st = mm_.stats();
    if (st.free_bytes != arena_bytes || st.arena_bytes != arena_bytes || st.blocks != 0
        || st.grants != 0 || st.names != 0 || st.processes != 0
        || st.largest_free_block != arena_bytes || st.data_segments.size() != 1)
      violation("memory or table entries leaked at the end");
    if (scrub_ == scrub_policy::on_free) {
      mm_.zero_freed_memory();
      const auto& arena = mm_.arena();
      for (uint64_t i = 0; i < arena.size(); ++i)
        if (arena.data()[i] != std::byte{0})
          violation("freed memory holds a process's byte at " + std::to_string(i)
                    + " after zeroing");
    }
  }

  input& in_;
  memory_manager& mm_;
  std::vector<std::string> log_; // lines the memory manager logged
  scrub_policy scrub_;
  uint64_t default_quota_;
  uint64_t ceiling_; // engine.max_arena
  int last_op_ = -1;
  std::vector<process> procs_;
  std::map<uint32_t, block> blocks_;       // live blocks by index
  std::map<uint32_t, block> draining_; // freed blocks with open views, by index
  std::map<std::string, uint32_t> names_;  // name -> block index
  // scrub on_free: freed pages not zeroed yet, by data segment and offset (entries of a segment
  // that went away linger: its pages are gone, a new segment's are zero)
  std::map<std::pair<uint32_t, uint64_t>, freed_page> freed_;
  std::vector<view> views_;
  std::vector<block_ref> refs_;            // refs seen, including stale ones
};

} // namespace

// Before the first input: segments of earlier runs of this target that were stopped (timeout,
// Ctrl-C, a crash) before they could remove them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cafshm::test::remove_stale_test_segments();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input in{data, size};
  auto config = in.byte();
  engine_settings s;
  s.name = "cafshm-fuzz-mm-" + std::to_string(::getpid());
  s.arena_bytes = arena_bytes;
  s.max_arena_bytes = (config & 8) != 0 ? max_arena_bytes : 0;
  s.min_block_bytes = page;
  s.max_processes = max_processes;
  s.max_blocks = max_blocks;
  s.max_grants = max_grants;
  s.max_names = max_names;
  s.scrub = static_cast<scrub_policy>(config % 3);
  s.scrub_delay = std::chrono::minutes{1}; // the thread stays idle: each input runs the same
  s.default_quota_bytes = (config & 4) != 0 ? 64 * 1024 : 0;
  s.max_copy_ranges = max_copy_ranges;
  s.max_copy_bytes = max_copy_bytes;
  auto mm = memory_manager::create(s);
  if (!mm)
    violation("cannot create the memory manager: " + describe(mm.error()));
  harness{in, **mm, s.scrub, s.default_quota_bytes}.run();
  return 0;
}
