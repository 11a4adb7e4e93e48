#include "admin_check.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "admin_layout.hpp"
#include "tlsf_allocator.hpp"

namespace cafshm {

using namespace admin;

std::string check_admin_memory(std::span<std::byte> admin) {
  if (admin.size() < sizeof(admin_header))
    return "shorter than the header";
  auto* base = admin.data();
  const auto& h = *reinterpret_cast<const admin_header*>(base);
  if (h.magic != admin::magic || h.total_bytes > admin.size()
      || h.header_bytes != sizeof(admin_header))
    return "bad header";
  // Every section inside the segment, so that nothing below reads beyond it, also when the
  // memory is corrupt (an engine checks admin memory of a dead engine before adopting it).
  auto inside = [&](uint64_t offset, uint64_t count, uint64_t entry) {
    return offset >= sizeof(admin_header) && offset % 8 == 0 && offset <= h.total_bytes
           && count <= (h.total_bytes - offset) / entry;
  };
  if (!inside(h.allocator_offset, h.allocator_bytes, 1)
      || h.allocator_bytes < sizeof(tlsf_allocator::tlsf_header)
      || h.max_segments != admin::max_segments
      || !inside(h.segment_offset, h.max_segments, sizeof(segment_entry))
      || !inside(h.process_offset, h.max_processes, sizeof(process_entry))
      || !inside(h.block_offset, h.max_blocks, sizeof(block_entry))
      || !inside(h.grant_offset, h.max_grants, sizeof(grant_entry))
      || !inside(h.name_offset, h.max_names, sizeof(name_entry)) || h.max_processes == 0
      || h.min_order >= 40)
    return "a section lies outside the segment";
  {
    tlsf_allocator::tlsf_header th;
    std::memcpy(&th, base + h.allocator_offset, sizeof(th));
    if (th.space_pages > tlsf_allocator::max_pages
        || tlsf_allocator::state_bytes(th.space_pages) > h.allocator_bytes)
      return "allocator: its page space does not fit its section";
  }
  auto alloc = tlsf_allocator::attach({base + h.allocator_offset, h.allocator_bytes});
  if (auto err = alloc.check(); !err.empty())
    return "allocator: " + err;
  // The data segments: disjoint ranges of the page space, each tiled by blocks and followed by a
  // hole, together exactly the allocator's arena; segment 0 at page 0 with the initial size.
  {
    auto* table = reinterpret_cast<const segment_entry*>(base + h.segment_offset);
    std::vector<segment_entry> live;
    uint64_t pages = 0;
    for (uint32_t i = 0; i < h.max_segments; ++i) {
      const auto& seg = table[i];
      if (seg.pages == 0)
        continue;
      if (!alloc.tiles_range(seg.first_page, seg.pages))
        return "data segment " + std::to_string(i) + ": its pages are not a range of blocks "
               + "followed by a hole";
      live.push_back(seg);
      pages += seg.pages;
    }
    std::sort(live.begin(), live.end(),
              [](const auto& a, const auto& b) { return a.first_page < b.first_page; });
    for (size_t k = 1; k < live.size(); ++k)
      if (uint64_t{live[k - 1].first_page} + live[k - 1].pages >= live[k].first_page)
        return "data segments overlap or touch";
    if (table[0].first_page != 0 || (uint64_t{table[0].pages} << h.min_order)
                                      != h.initial_arena_bytes)
      return "data segment 0 is not the initial arena";
    if (live.size() != h.live_segments || (pages << h.min_order) != h.arena_bytes
        || pages != alloc.arena_pages())
      return "data segments: " + std::to_string(live.size()) + " of " + std::to_string(pages)
             + " pages, the header says " + std::to_string(h.live_segments) + " of "
             + std::to_string(h.arena_bytes) + " bytes, the allocator "
             + std::to_string(alloc.arena_pages()) + " pages";
    if (h.arena_bytes > h.max_arena_bytes || h.initial_arena_bytes > h.arena_bytes
        || h.peak_arena_bytes < h.arena_bytes)
      return "arena size outside its initial size and ceiling";
  }
  auto* procs = reinterpret_cast<const process_entry*>(base + h.process_offset);
  auto* blocks = reinterpret_cast<const block_entry*>(base + h.block_offset);
  auto* grants = reinterpret_cast<const grant_entry*>(base + h.grant_offset);
  auto* names = reinterpret_cast<const name_entry*>(base + h.name_offset);
  std::vector<uint64_t> bytes_by_payer(h.max_processes, 0); // charged_to

  std::vector<uint32_t> blocks_by_owner(h.max_processes, 0);
  std::unordered_set<std::string_view> names_seen;
  uint64_t used = 0, requested = 0;
  uint32_t live_blocks = 0, live_grants = 0, live_names = 0;
  auto fail = [](uint32_t i, const std::string& what) {
    return "block " + std::to_string(i) + ": " + what;
  };
  if (procs[engine_slot].state != process_state::live)
    return "the engine's process entry is not live";
  for (uint32_t i = 0; i < h.max_blocks; ++i) {
    const auto& blk = blocks[i];
    if (blk.state == block_state::free)
      continue;
    ++live_blocks;
    if (blk.state != block_state::live && blk.state != block_state::draining)
      return fail(i, "unknown state");
    if (blk.page >= alloc.space_pages())
      return fail(i, "its page lies beyond the arena");
    uint64_t bytes = alloc.occupied_bytes(blk.size);
    used += bytes;
    auto allocated = alloc.allocated_bytes(uint64_t{blk.page} << h.min_order);
    if (blk.size == 0 || !allocated || *allocated != bytes)
      return fail(i, "its pages are not an allocated block of its size");
    if (blk.owner >= h.max_processes || blk.charged_to >= h.max_processes)
      return fail(i, "owner out of range");
    if (procs[blk.charged_to].state != process_state::live)
      return fail(i, "charged to a process that is not registered");
    bytes_by_payer[blk.charged_to] += bytes;
    if (blk.state == block_state::live) {
      if (procs[blk.owner].state != process_state::live)
        return fail(i, "owned by a process that is not registered");
      if (blk.charged_to != blk.owner && blk.owner != engine_slot)
        return fail(i, "charged to another process than its owner");
      ++blocks_by_owner[blk.owner];
      requested += blk.size;
    } else if (blk.refcount == 0) {
      return fail(i, "draining without open views");
    }
    uint64_t views = blk.owner_views;
    for (auto g = blk.grant_head; g != no_index; g = grants[g].next) {
      if (g >= h.max_grants || ++live_grants > h.max_grants || grants[g].block != i
          || grants[g].process >= h.max_processes
          || procs[grants[g].process].state != process_state::live
          || grants[g].mode > access::read_write)
        return fail(i, "grant list corrupt");
      views += grants[g].views;
    }
    if (views != blk.refcount)
      return fail(i, "refcount differs from the open views");
    if (blk.name != no_index) {
      if (blk.name >= h.max_names || names[blk.name].block != i)
        return fail(i, "name entry points elsewhere");
      const auto& n = names[blk.name].name;
      if (n[0] == '\0' || std::memchr(n, '\0', sizeof(n)) == nullptr)
        return fail(i, "its name is empty or not terminated");
      if (!names_seen.insert(std::string_view{n}).second)
        return fail(i, "its name is another block's too");
      ++live_names;
    }
  }
  if (used != h.used_bytes || used != h.arena_bytes - alloc.free_bytes())
    return "used bytes: blocks " + std::to_string(used) + ", header "
           + std::to_string(h.used_bytes) + ", allocator "
           + std::to_string(h.arena_bytes - alloc.free_bytes());
  if (requested != h.requested_bytes)
    return "requested bytes differ from the header";
  if (alloc.arena_bytes() != h.arena_bytes || alloc.page_shift() != h.min_order)
    return "allocator geometry differs from the header";
  if (h.peak_used_bytes < h.used_bytes || h.peak_blocks < h.live_blocks
      || h.peak_grants < h.live_grants || h.peak_names < h.live_names
      || h.peak_processes < h.live_processes)
    return "a high-water mark lies below its counter";
  if (live_blocks != h.live_blocks || live_grants != h.live_grants || live_names != h.live_names)
    return "table counters differ from the tables";
  // No entry lost: the free lists hold exactly the entries not in use.
  auto count_list = [](uint32_t head, uint32_t capacity, auto next) {
    uint32_t n = 0;
    for (auto i = head; i != no_index && n <= capacity; i = next(i)) {
      if (i >= capacity)
        return capacity + 1; // points outside its table
      ++n;
    }
    return n;
  };
  if (count_list(h.free_block_head, h.max_blocks, [&](uint32_t i) { return blocks[i].next_free; })
      != h.max_blocks - live_blocks)
    return "block free list does not hold every unused entry";
  if (count_list(h.free_grant_head, h.max_grants, [&](uint32_t i) { return grants[i].next; })
      != h.max_grants - live_grants)
    return "grant free list does not hold every unused entry";
  if (count_list(h.free_name_head, h.max_names, [&](uint32_t i) { return names[i].next_free; })
      != h.max_names - live_names)
    return "name free list does not hold every unused entry";
  uint32_t processes = 0;
  for (uint32_t slot = 0; slot < h.max_processes; ++slot) {
    const auto& p = procs[slot];
    if (p.state != process_state::live && p.state != process_state::free)
      return "process " + std::to_string(slot) + ": unknown state";
    if (p.state == process_state::live && std::memchr(p.name, '\0', sizeof(p.name)) == nullptr)
      return "process " + std::to_string(slot) + ": name not terminated";
    if (p.state != process_state::live) {
      if (bytes_by_payer[slot] != 0 || blocks_by_owner[slot] != 0)
        return "free slot " + std::to_string(slot) + " owns blocks";
      continue;
    }
    if (slot != engine_slot)
      ++processes;
    if (p.bytes_in_use != bytes_by_payer[slot] || p.block_count != blocks_by_owner[slot])
      return "process " + std::to_string(slot) + " accounts " + std::to_string(p.bytes_in_use)
             + " bytes and " + std::to_string(p.block_count) + " blocks, is charged "
             + std::to_string(bytes_by_payer[slot]) + " bytes and owns "
             + std::to_string(blocks_by_owner[slot]) + " blocks";
    if (p.quota_bytes != 0 && p.bytes_in_use > p.quota_bytes)
      return "process " + std::to_string(slot) + " is charged " + std::to_string(p.bytes_in_use)
             + " bytes, above its quota of " + std::to_string(p.quota_bytes);
  }
  if (processes != h.live_processes)
    return "process count differs from the header";
  return {};
}

} // namespace cafshm
