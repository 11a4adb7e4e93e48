// A snapshot of an engine's memory-management data, as answered by the stats request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/process_id.hpp"

namespace cafshm {

struct process_stats {
  process_id id = process_id::engine;
  int32_t pid = 0;
  std::string name;
  uint64_t quota_bytes = 0;  // 0 = unlimited
  uint64_t bytes_in_use = 0;
  uint32_t blocks = 0;
  uint64_t allocations = 0;
  uint64_t frees = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t denied = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_stats& x) {
  return f(caf::meta::type_name("cafshm::process_stats"), x.id, x.pid, x.name, x.quota_bytes,
           x.bytes_in_use, x.blocks, x.allocations, x.frees, x.reads, x.writes, x.bytes_read,
           x.bytes_written, x.denied);
}

struct named_block {
  std::string name;
  block_ref ref;
  process_id owner = process_id::engine; // process_id::engine: held by the engine
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, named_block& x) {
  return f(caf::meta::type_name("cafshm::named_block"), x.name, x.ref, x.owner);
}

/// Progress of one transfer between this engine and a peer engine, in either direction.
struct transmit_progress {
  uint64_t id = 0;        // transfer id (of the sending engine)
  std::string peer;       // the other engine, as engine_stats::peers names it
  uint64_t bytes = 0;     // size of the block
  uint64_t acked = 0;     // bytes done: confirmed by the destination (outgoing), or received
                          // and verified in order (incoming)
  bool cache_fill = false; // the block of a remote read (a pull), not a transmit
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transmit_progress& x) {
  return f(caf::meta::type_name("cafshm::transmit_progress"), x.id, x.peer, x.bytes, x.acked,
           x.cache_fill);
}

/// One bounded resource of an engine: how much is in use, the most that was in use at once since
/// the engine started, the limit, and the configuration key that sets it.
struct capacity_use {
  std::string name;     // "arena bytes", "blocks", "grants", "names", "processes"
  std::string setting;  // e.g. "engine.max_blocks"
  uint64_t used = 0;
  uint64_t peak = 0;
  uint64_t capacity = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, capacity_use& x) {
  return f(caf::meta::type_name("cafshm::capacity_use"), x.name, x.setting, x.used, x.peak,
           x.capacity);
}

struct engine_stats {
  uint64_t engine_id = 0;
  std::string data_segment;
  std::string admin_segment;
  uint64_t arena_bytes = 0;         // all data segments together
  uint64_t initial_arena_bytes = 0; // the first data segment (engine.arena)
  uint64_t max_arena_bytes = 0;     // the ceiling (engine.max_arena)
  std::vector<std::string> data_segments; // every data segment's name, the first one first
  std::vector<uint64_t> segment_bytes;    // their sizes
  uint32_t segments_added = 0;      // data segments added and removed again since the start
  uint32_t segments_removed = 0;
  uint64_t admin_bytes = 0;
  uint64_t min_block_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t used_bytes = 0;          // arena_bytes - free_bytes
  uint64_t requested_bytes = 0;     // sum of requested sizes of live blocks
  uint64_t largest_free_block = 0;
  std::vector<uint64_t> free_bytes_by_order; // index k: free blocks of min_block * [2^k, 2^(k+1))
  // engine.scrub on-free: free bytes a process wrote that are not zeroed yet, and since the
  // start: bytes zeroed by the scrubbing thread, zeroed by an allocation that came first, and
  // handed back unzeroed to the process that alone wrote them.
  uint64_t unscrubbed_bytes = 0;
  uint64_t scrubbed_in_background = 0;
  uint64_t scrubbed_on_allocation = 0;
  uint64_t scrub_skipped_for_writer = 0;
  uint32_t processes = 0;           // registered, without the engine itself
  uint32_t blocks = 0;              // live + draining
  uint32_t draining_blocks = 0;
  uint32_t grants = 0;
  uint32_t names = 0;
  uint32_t max_processes = 0;
  uint32_t max_blocks = 0;
  uint32_t max_grants = 0;
  uint32_t max_names = 0;
  uint64_t requests = 0;
  uint64_t rejected = 0;
  // The request inbox (local fast path): requests handed to the engine, records refused
  // (not a request message, a request the inbox does not carry, a session of another slot
  // than the record's sender), answers that could not be written to a reply inbox, answers
  // larger than a reply inbox takes or than the room left in it, written as the "too large"
  // mark instead (the client asks again over BASP where that repeats nothing).
  uint64_t inbox_requests = 0;
  uint64_t inbox_refused = 0;
  uint64_t inbox_replies_lost = 0;
  uint64_t inbox_replies_too_large = 0;
  // Notices to local processes that a process is gone (so that they end their proxies of its
  // actors) that found the receiver's actor inbox full: kept now for a later try, written
  // later, forgotten because the receiver was reclaimed first.
  uint32_t gone_notices_pending = 0;
  uint64_t gone_notices_late = 0;
  uint64_t gone_notices_dropped = 0;
  std::vector<capacity_use> capacities; // arena bytes, blocks, grants, names, processes
  std::vector<process_stats> process_list; // the engine (process_id::engine) first
  std::vector<named_block> name_list;
  // Remote side: linked peer engines ("host:port"), transfers, the content cache.
  std::vector<std::string> peers;
  uint32_t transmits_out = 0;       // transfers this engine sends, in progress
  std::vector<transmit_progress> outgoing;
  uint32_t transmits_in = 0;        // transfers this engine receives, in progress
  std::vector<transmit_progress> incoming;
  uint64_t cache_capacity = 0;
  uint64_t cache_bytes = 0;
  uint32_t cache_entries = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_evictions = 0;
  uint64_t cache_bytes_saved = 0;
  // Transmits to an engine with a cache whose block digest this engine had computed before for
  // the unchanged block, and sent without hashing the block again.
  uint64_t digests_reused = 0;
  // Engine-to-engine messages refused under a valid link token for a MAC not made with the
  // link's key or a sequence number not above the last one (a forged or replayed message).
  uint64_t peer_messages_refused = 0;
  // Connections to this engine's data port closed for a hello that was no valid proof of a
  // registered, unused data token (a forged or replayed token, or no cafshm engine).
  uint64_t data_connections_refused = 0;
  // Transfers whose payload went over a data connection (sent and received).
  uint64_t data_connections_sent = 0;
  uint64_t data_connections_received = 0;

  /// 1 - largest_free_block / free_bytes (0 when nothing or everything is free in one block).
  double fragmentation() const noexcept {
    return free_bytes == 0 ? 0.0
                           : 1.0 - static_cast<double>(largest_free_block)
                                     / static_cast<double>(free_bytes);
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, engine_stats& x) {
  return f(caf::meta::type_name("cafshm::engine_stats"), x.engine_id, x.data_segment,
           x.admin_segment, x.arena_bytes, x.initial_arena_bytes, x.max_arena_bytes,
           x.data_segments, x.segment_bytes, x.segments_added, x.segments_removed, x.admin_bytes, x.min_block_bytes, x.free_bytes,
           x.used_bytes, x.requested_bytes, x.largest_free_block, x.free_bytes_by_order,
           x.unscrubbed_bytes, x.scrubbed_in_background, x.scrubbed_on_allocation,
           x.scrub_skipped_for_writer,
           x.processes, x.blocks, x.draining_blocks, x.grants, x.names, x.max_processes,
           x.max_blocks, x.max_grants, x.max_names, x.requests, x.rejected, x.inbox_requests,
           x.inbox_refused, x.inbox_replies_lost, x.inbox_replies_too_large, x.capacities, x.process_list,
           x.name_list, x.peers, x.transmits_out, x.outgoing, x.transmits_in, x.incoming,
           x.cache_capacity,
           x.cache_bytes, x.cache_entries, x.cache_hits, x.cache_misses, x.cache_evictions,
           x.cache_bytes_saved, x.digests_reused, x.peer_messages_refused,
           x.data_connections_refused, x.data_connections_sent, x.data_connections_received,
           x.gone_notices_pending, x.gone_notices_late, x.gone_notices_dropped);
}

} // namespace cafshm
