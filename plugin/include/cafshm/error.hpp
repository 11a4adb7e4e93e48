// Error codes of cafshm. Every failed request ends in exactly one of these, carried as a
// caf::error of category "cafshm" so it crosses process and node boundaries unchanged.
#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace cafshm {

enum class errc : uint8_t {
  ok = 0,
  unknown_process,   // the session is not (or no longer) registered with this engine
  stale_block,       // the block_ref's generation or engine does not match a live block
  access_denied,     // requester is neither owner nor holder of a grant of the needed kind
  out_of_range,      // offset/length outside the block
  out_of_memory,     // no free block of the needed order in the arena
  quota_exceeded,    // the process would exceed its byte quota
  name_taken,        // another block already carries that name
  name_not_found,    // no block carries that name
  invalid_argument,  // malformed request (zero size, empty name, self-grant, ...)
  capacity_exceeded, // a fixed admin-memory table (processes, blocks, grants, names) is full
  block_in_use,      // the block has open views that the request would invalidate
  segment_error,     // creating, sizing or mapping a shared-memory segment failed
  engine_unreachable, // the engine did not answer within the timeout or went down
  config_error,      // configuration invalid
  busy,              // the engine is shutting down
  checksum_mismatch, // transferred data failed verification
  peer_failure,      // a remote engine failed or vanished mid-operation
  process_name_taken, // a live process of this engine is already registered under that name
  request_too_large, // one request asks for more work than the engine does per request
  would_deadlock,    // a blocking call on the only scheduler thread: use the async form
  pool_exhausted,    // no block of a pool came back within the wait
  actor_gone,        // the actor published under that name, or its process, has ended
  inbox_full,        // the receiving process's inbox had no room within the sender's wait
  record_abandoned,  // the sender stalled so long mid-record that the inbox's reader skipped it
  peer_not_allowed,  // link/transmit to an address that is neither a configured peer nor
                     // matched by remote.allow_dial
  engine_restarted,  // the engine restarted without adopting its segments: sessions and
                     // blocks of the engine before are gone
  process_exited,    // the process a door ticket stands for has exited: it is not registered
  too_many_processes, // the user already has engine.max_processes_per_user live processes
  version_mismatch,  // a peer engine or a client speaks another protocol_version (or no cafshm
                     // protocol)
};

/// Category atom of every cafshm error.
constexpr caf::atom_value error_category = caf::atom("cafshm");

/// Short, stable name of a code, e.g. "stale_block".
const char* to_string(errc code) noexcept;

/// Turns a code into a caf::error; `what` (optional) says which request and why.
caf::error make_error(errc code);
caf::error make_error(errc code, std::string what);

/// Returns the cafshm code of `err`, or errc::ok if `err` is empty or of another category.
errc code_of(const caf::error& err) noexcept;

/// Renders any error (cafshm or CAF's own) as one readable line.
std::string describe(const caf::error& err);

} // namespace cafshm
