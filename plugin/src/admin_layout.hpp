// Layout of administrative memory: the second shared-memory segment, holding all memory-management
// data and no payload. Only the engine writes it; clients and tools may map it read-only to see
// their own process entry or statistics. Everything is an offset or an index, never a pointer.
//
//   offset 0                 admin_header            (sizeof = 256)
//   header.allocator_offset  allocator state         (tlsf_allocator::state_bytes)
//   header.segment_offset    segment_entry[max_segments]    entry 0 is the initial data segment
//   header.process_offset    process_entry[max_processes]   slot 0 is the engine itself
//   header.block_offset      block_entry[max_blocks]
//   header.grant_offset      grant_entry[max_grants]
//   header.name_offset       name_entry[max_names]
// Sections start 64-byte aligned. All integers are native-endian (one machine shares them).
//
// The arena is one or more data segments (separate shared-memory objects). The allocator works on
// one page space; each data segment is a range of its pages (segment_entry), the pages between
// segments are holes. Segment 0 (named header.data_segment) has the initial size and stays for
// the engine's lifetime; segment i > 0 is named "<header.data_segment>.<i>", added when no free
// block fits a request (while the arena stays within max_arena_bytes) and removed again once it is
// empty. A block lies in exactly one segment; block_entry::page is a page of the page space.
// When no gap of the page space takes a new segment, the engine moves the added segments down
// (segment_entry::first_page and the pages of their blocks change together, the segments'
// objects and the offsets within them do not).
//
// Admin memory outlives its engine: an engine that starts over the segments of a dead engine of
// the same name adopts them when their layout_version is this one, their geometry matches its
// settings, every data segment of the table is there with its size, `changing` is 0 and
// check_admin_memory (admin_check.hpp) finds them consistent.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cafshm::admin {

constexpr uint64_t magic = 0x314d485346414321ull; // "!CAFSHM1"
constexpr uint32_t layout_version = 4; // 3: process_entry::start_ticks, header::changing;
                                        // 4: segment table (an arena that grows)
constexpr uint32_t no_index = 0xffffffffu;
constexpr uint32_t engine_slot = 0; // the engine's own process entry (holds engine-held blocks)
constexpr uint32_t max_segments = 64; // data segments of one arena, the initial one included

/// Written once by the engine at creation (magic last), then only the counters change.
struct admin_header {
  uint64_t magic;              // admin::magic once the segment is fully formatted
  uint32_t layout_version;     // admin::layout_version
  uint32_t header_bytes;       // sizeof(admin_header)
  uint64_t engine_id;          // random, non-zero; block_refs carry it
  int32_t engine_pid;          // pid of the process owning both segments (the adopting one
                               //   after an adoption)
  uint32_t changing;           // 1 while the engine changes the tables of admin memory (set
                               //   before, cleared after, with release fences): an engine
                               //   that died with 1 here may have left them half-changed
  uint64_t start_epoch_ns;     // CLOCK_REALTIME when the engine created the segments
  uint64_t arena_bytes;        // size of all data segments together, a multiple of 2^min_order
                               //   (changes when a segment is added or removed)
  uint32_t min_order;          // log2 of the smallest block (the allocator's page)
  uint32_t max_segments;       // entries of the segment table (admin::max_segments)
  uint32_t max_processes;      // capacities of the tables below
  uint32_t max_blocks;
  uint32_t max_grants;
  uint32_t max_names;
  uint64_t allocator_offset;   // section offsets from the start of the segment
  uint64_t allocator_bytes;
  uint64_t segment_offset;
  uint64_t process_offset;
  uint64_t block_offset;
  uint64_t grant_offset;
  uint64_t name_offset;
  uint64_t total_bytes;        // size of this segment
  uint32_t live_processes;     // counters, maintained by the engine after every request
  uint32_t live_blocks;        //   blocks in state live or draining
  uint32_t live_grants;
  uint32_t live_names;
  uint64_t used_bytes;         // bytes occupied by live and draining blocks (each: its size
                               //   rounded up to 2^min_order)
  uint64_t requested_bytes;    // sum of requested sizes over live blocks
  uint64_t requests;           // requests served
  uint64_t rejected;           // requests refused with an error
  char data_segment[64];       // name of the data segment, NUL-terminated
  uint32_t free_block_head;    // heads of the free lists of the block, grant and name tables
  uint32_t free_grant_head;
  uint32_t free_name_head;
  uint32_t reserved1;
  uint64_t peak_used_bytes;    // high-water marks of used_bytes and the live counters since
  uint32_t peak_processes;     //   the engine started (engine included in none of them)
  uint32_t peak_blocks;
  uint32_t peak_grants;
  uint32_t peak_names;
  uint32_t adoptions;          // times an engine adopted these segments after its predecessor died
  uint32_t live_segments;      // data segments in the table (1 + the added ones)
  uint64_t initial_arena_bytes; // size of segment 0 (engine.arena)
  uint64_t max_arena_bytes;    // ceiling of arena_bytes (engine.max_arena)
  uint64_t peak_arena_bytes;   // high-water mark of arena_bytes
  uint32_t segments_added;     // counters since the segments were made: data segments added
  uint32_t segments_removed;   //   and removed again
  uint8_t reserved3[8];
};
static_assert(sizeof(admin_header) == 336);

/// One data segment of the arena. Written by the engine only: when it adds the segment and when
/// it removes it; entry 0 once, at creation.
struct segment_entry {
  uint32_t first_page;         // first page of the segment in the allocator's page space
  uint32_t pages;              // its size in pages (2^min_order bytes each); 0: entry unused
  uint64_t created_ns;         // CLOCK_REALTIME when the segment was made
};
static_assert(sizeof(segment_entry) == 16);

enum class process_state : uint8_t { free = 0, live = 1 };

/// One memory-management object per registered process. Slot 0 is the engine.
struct process_entry {
  process_state state;
  uint8_t reserved[3];
  uint32_t generation;         // bumped each time the slot is taken
  int32_t pid;                 // OS pid of the process (for liveness checks)
  uint32_t block_count;        // live blocks it owns (those it pays for may be more)
  uint64_t quota_bytes;        // 0 = unlimited; never above what the engine's quota rules
                               // give the process's user (a process may only ask for less)
  uint64_t bytes_in_use;       // bytes occupied by the blocks charged to it (charged_to)
  uint64_t allocations;        // counters since registration
  uint64_t frees;
  uint64_t reads;
  uint64_t writes;
  uint64_t bytes_read;
  uint64_t bytes_written;
  uint64_t denied;             // requests refused for access or quota
  uint64_t registered_ns;      // CLOCK_REALTIME at registration
  char name[32];               // NUL-terminated, truncated
  uint64_t start_ticks;        // start time of `pid` (field 22 of /proc/PID/stat, clock ticks
                               //   since boot) at registration, 0 if unknown: with the pid it
                               //   identifies the process across pid reuse (adoption, re-attach)
};
static_assert(sizeof(process_entry) == 136);

enum class block_state : uint8_t {
  free = 0,     // on the block table's free list
  live = 1,     // allocated and owned
  draining = 2, // freed by its owner while views were open: unreachable, memory held until
                // refcount drops to 0, then scrubbed and returned to the allocator
};

/// One entry per allocated block.
struct block_entry {
  uint64_t size;               // bytes requested (the range that may be read/written)
  uint64_t version;            // bumped by every write or copy into the block
  uint32_t page;               // offset in the arena / 2^min_order
  uint32_t generation;         // bumped on every free; a block_ref must match it
  uint32_t owner;              // process slot (engine_slot for engine-held blocks)
  uint32_t grant_head;         // first grant_entry of this block or no_index
  uint32_t refcount;           // open views: owner_views + sum of grant views
  uint32_t name;               // name_entry index or no_index
  uint32_t next_free;          // next free table entry when state == free
  uint32_t owner_views;        // views the owner holds open
  uint8_t reserved0;           // the block occupies `size` rounded up to 2^min_order bytes
  block_state state;
  uint8_t reserved[2];
  uint32_t charged_to;         // process slot whose bytes_in_use (and quota) counts the block:
                               // the owner; for a block given to the engine, the giver while
                               // it is registered; for a draining block, its last owner while
                               // it is registered; engine_slot when nobody is
};
static_assert(sizeof(block_entry) == 56);

enum class access : uint8_t { none = 0, read = 1, read_write = 2 };

/// A right (and the open views) of a non-owner process on a block.
struct grant_entry {
  uint32_t block;              // block index, or no_index when the entry is free
  uint32_t process;            // grantee slot
  uint32_t next;               // next entry of the same block, or of the free list
  uint32_t views;              // views the grantee holds open
  access mode;                 // none: right revoked or block freed, views still open
  uint8_t reserved[3];
  uint32_t reserved2;
};
static_assert(sizeof(grant_entry) == 24);

/// A name bound to a block.
struct name_entry {
  char name[56];               // NUL-terminated; empty when the entry is free
  uint32_t block;              // block index or no_index
  uint32_t next_free;
};
static_assert(sizeof(name_entry) == 64);

constexpr size_t max_name_length = sizeof(name_entry::name) - 1;

} // namespace cafshm::admin
