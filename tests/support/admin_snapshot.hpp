// Checks the administrative memory of an engine that runs in another process (cafshmd) from the
// outside: maps its admin segment read-only, takes a consistent snapshot (two identical copies in
// a row with no change under way, so the engine was not writing meanwhile), and verifies on the snapshot what
// memory_manager::check() verifies inside the engine (cafshm::check_admin_memory).
#pragma once

#include <chrono>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include "admin_check.hpp"
#include "admin_layout.hpp"
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
  // Two equal copies are not enough: an engine preempted in the middle of a change (likely on a
  // loaded machine) leaves the same half-done tables in both. A snapshot counts only with the
  // header's `changing` flag clear, the engine's word that no change is under way.
  auto quiet = [&] {
    admin::admin_header h;
    std::memcpy(&h, a.data(), sizeof(h));
    return h.changing == 0;
  };
  bool stable = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!stable && std::chrono::steady_clock::now() < deadline) {
    std::memcpy(a.data(), seg->data(), seg->size());
    std::memcpy(b.data(), seg->data(), seg->size());
    stable = a == b && quiet();
    if (!stable)
      std::this_thread::sleep_for(std::chrono::microseconds(200)); // let the engine finish
  }
  if (!stable)
    return "admin memory kept changing";
  return cafshm::check_admin_memory(
    std::span<std::byte>{reinterpret_cast<std::byte*>(a.data()), seg->size()});
}

} // namespace cafshm::test
