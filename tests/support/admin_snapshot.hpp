// Checks the administrative memory of an engine that runs in another process (cafshmd) from the
// outside: maps its admin segment read-only, takes a consistent snapshot (two identical copies in
// a row, so the engine was not writing meanwhile), and verifies on the snapshot what
// memory_manager::check() verifies inside the engine (cafshm::check_admin_memory).
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "admin_check.hpp"
#include "memory_manager.hpp"
#include "shm_segment.hpp"

namespace cafshm::test {

/// "" when the admin memory of engine `engine_name` is consistent, else what is wrong.
inline std::string check_admin_memory(const std::string& engine_name) {
  auto seg = shm_segment::open(memory_manager::admin_segment_name(engine_name), false);
  if (!seg)
    return "cannot map the admin segment: " + describe(seg.error());
  size_t words = (seg->size() + 7) / 8;
  std::vector<uint64_t> a(words), b(words);
  bool stable = false;
  for (int tries = 0; tries < 1000 && !stable; ++tries) {
    std::memcpy(a.data(), seg->data(), seg->size());
    std::memcpy(b.data(), seg->data(), seg->size());
    stable = a == b;
  }
  if (!stable)
    return "admin memory kept changing";
  return cafshm::check_admin_memory(
    std::span<std::byte>{reinterpret_cast<std::byte*>(a.data()), seg->size()});
}

} // namespace cafshm::test
