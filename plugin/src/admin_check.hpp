// Consistency of administrative memory, checked on its bytes alone: inside the engine after
// every change in tests and fuzzing (memory_manager::check), and from outside on a snapshot of
// another process's admin segment (tests/support/admin_snapshot.hpp).
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace cafshm {

/// "" when the admin memory in `admin` (a whole admin segment or a copy of one, at least
/// header().total_bytes long) is consistent, else what is wrong: the allocator's invariants;
/// every block's pages allocated at its size rounded up to whole pages, owned by a registered
/// process, its refcount equal to its open views, its grant list and name entry pointing back to
/// it; the header's and every process's counters equal to what the tables hold, the high-water
/// marks at least as high; every unused table entry on its free list. Reads `admin` only.
std::string check_admin_memory(std::span<std::byte> admin);

} // namespace cafshm
