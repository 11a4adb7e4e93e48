// The identity of a registered process at its engine: what requests name when they share,
// revoke or transfer a block, what find_process() and find_actor() answer, what stats list.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace cafshm {

/// A registered process of one engine: its slot in that engine's process table. A strong type,
/// so that no integer (a block index, a uid, a count) is taken for a process by mistake: nothing
/// converts to it implicitly; `process_id{n}` says explicitly that n is a slot. Valid only with
/// the engine that gave it out, and only while that process is registered there (a slot is
/// taken again after its process ended). Travels in messages as its underlying uint32_t (CAF
/// serialises enums so); the engine checks every one it receives against its process table.
enum class process_id : uint32_t {
  /// The engine's own entry: a block it holds belongs to no process in particular (see
  /// client::give_to_engine); stats list it first.
  engine = 0,
};

/// The slot number (for tables indexed by process, and for text).
constexpr uint32_t to_slot(process_id p) noexcept {
  return static_cast<uint32_t>(p);
}

/// The slot number as decimal text ("0" is the engine); operator<< writes the same.
std::string to_string(process_id p);
std::ostream& operator<<(std::ostream& out, process_id p);

} // namespace cafshm
