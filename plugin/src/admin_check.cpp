#include "admin_check.hpp"

#include <cstdint>
#include <vector>

#include "admin_layout.hpp"
#include "buddy_allocator.hpp"

namespace cafshm {

using namespace admin;

std::string check_admin_memory(std::span<std::byte> admin) {
  if (admin.size() < sizeof(admin_header))
    return "shorter than the header";
  auto* base = admin.data();
  const auto& h = *reinterpret_cast<const admin_header*>(base);
  if (h.magic != admin::magic || h.total_bytes > admin.size())
    return "bad header";
  auto alloc = buddy_allocator::attach({base + h.allocator_offset, h.allocator_bytes});
  if (auto err = alloc.check(); !err.empty())
    return "allocator: " + err;
  auto* procs = reinterpret_cast<const process_entry*>(base + h.process_offset);
  auto* blocks = reinterpret_cast<const block_entry*>(base + h.block_offset);
  auto* grants = reinterpret_cast<const grant_entry*>(base + h.grant_offset);
  auto* names = reinterpret_cast<const name_entry*>(base + h.name_offset);
  std::vector<uint64_t> bytes_by_payer(h.max_processes, 0); // charged_to

  std::vector<uint32_t> blocks_by_owner(h.max_processes, 0);
  uint64_t used = 0, requested = 0;
  uint32_t live_blocks = 0, live_grants = 0, live_names = 0;
  auto fail = [](uint32_t i, const std::string& what) {
    return "block " + std::to_string(i) + ": " + what;
  };
  for (uint32_t i = 0; i < h.max_blocks; ++i) {
    const auto& blk = blocks[i];
    if (blk.state == block_state::free)
      continue;
    ++live_blocks;
    uint64_t bytes = uint64_t{1} << blk.order;
    used += bytes;
    auto order = alloc.allocated_order(uint64_t{blk.page} << h.min_order);
    if (!order || *order != blk.order)
      return fail(i, "its pages are not an allocated block of its order");
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
      if (g >= h.max_grants || ++live_grants > h.max_grants || grants[g].block != i)
        return fail(i, "grant list corrupt");
      views += grants[g].views;
    }
    if (views != blk.refcount)
      return fail(i, "refcount differs from the open views");
    if (blk.name != no_index) {
      if (blk.name >= h.max_names || names[blk.name].block != i)
        return fail(i, "name entry points elsewhere");
      ++live_names;
    }
  }
  if (used != h.used_bytes || used != h.arena_bytes - alloc.free_bytes())
    return "used bytes: blocks " + std::to_string(used) + ", header "
           + std::to_string(h.used_bytes) + ", allocator "
           + std::to_string(h.arena_bytes - alloc.free_bytes());
  if (requested != h.requested_bytes)
    return "requested bytes differ from the header";
  if (live_blocks != h.live_blocks || live_grants != h.live_grants || live_names != h.live_names)
    return "table counters differ from the tables";
  // No entry lost: the free lists hold exactly the entries not in use.
  auto count_list = [](uint32_t head, uint32_t capacity, auto next) {
    uint32_t n = 0;
    for (auto i = head; i != no_index && n <= capacity; i = next(i))
      ++n;
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
