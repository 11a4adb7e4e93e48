// Stress clients (tests/helpers/cafshm-stress-client.cpp) as tests drive them, and comparison of
// an engine's usage before and after a fault: shared by the fault-injection and engine-restart
// tests.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cafshm/engine_stats.hpp"
#include "memory_manager.hpp"
#include "shm_segment.hpp"
#include "testing/child_process.hpp"
#include "testing/daemon_process.hpp"

namespace cafshm::test {

using namespace std::chrono_literals;

inline std::string stress_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-stress-client";
}

// A cafshm-stress-client and what it reported.
struct worker {
  std::unique_ptr<child_process> process;
  uint64_t ops = 0;
  std::vector<std::string> problems; // ERROR and MISMATCH lines
  int rides = 0;                       // "rode-through" lines (--ride-through)
  bool restarted = false;              // "engine-restarted" (--ride-through)

  explicit worker(std::vector<std::string> argv)
    : process(std::make_unique<child_process>(std::move(argv))) {
  }

  // One of `peers` workers PREFIX-0.. handing blocks to each other.
  // `extra`: further options (--ops KIND, --ride-through).
  worker(const daemon_process& d, const std::string& prefix, int index, int peers, uint64_t seed,
         const std::string& timeout_ms = "5000", const std::vector<std::string>& extra = {})
    : worker(with(
        {stress_bin(), "--engine", d.address_text(), "--prefix", prefix, "--index",
         std::to_string(index), "--peers", std::to_string(peers), "--seed", std::to_string(seed),
         "--report-ms", "20", "--max-block", std::to_string(256 << 10), "--timeout-ms",
         timeout_ms},
        extra)) {
  }

  static std::vector<std::string> with(std::vector<std::string> argv,
                                       const std::vector<std::string>& extra) {
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  bool running() { return process->wait_for_line("running ", 30s).has_value(); }

  // Reads its lines until it reported more than `after` operations; false at EOF or timeout.
  bool progressed_beyond(uint64_t after, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto line = process->read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
      if (!line)
        return false;
      take(*line);
      if (ops > after)
        return true;
    }
    return false;
  }

  std::string report() const {
    std::string out;
    for (const auto& p : problems)
      out += p + "; ";
    return out;
  }

  void take(const std::string& line) {
    if (line.rfind("stats ops=", 0) == 0)
      ops = std::stoull(line.substr(10));
    else if (line.rfind("ERROR", 0) == 0 || line.rfind("MISMATCH", 0) == 0)
      problems.push_back(line);
    else if (line.rfind("rode-through", 0) == 0)
      ++rides;
    else if (line == "engine-restarted")
      restarted = true;
  }

  // Closes its stdin and reads everything up to its exit; returns its wait status.
  std::optional<int> stop() {
    process->close_stdin();
    while (auto line = process->read_line(30s))
      take(*line);
    return process->wait(30s);
  }
};

inline bool same_usage(const engine_stats& a, const engine_stats& b) {
  return a.processes == b.processes && a.blocks == b.blocks && a.grants == b.grants
         && a.names == b.names && a.free_bytes == b.free_bytes
         && a.largest_free_block == b.largest_free_block
         && a.free_bytes_by_order == b.free_bytes_by_order && a.draining_blocks == 0
         && a.transmits_in == b.transmits_in && a.transmits_out == b.transmits_out;
}

inline std::string usage(const engine_stats& s) {
  std::ostringstream out;
  out << "processes " << s.processes << ", blocks " << s.blocks << ", grants " << s.grants
      << ", names " << s.names << ", free " << s.free_bytes << " of " << s.arena_bytes
      << ", draining " << s.draining_blocks << ", transfers in/out " << s.transmits_in << "/"
      << s.transmits_out;
  return out.str();
}

inline bool segments_exist(const std::string& engine) {
  return shm_segment::exists(memory_manager::data_segment_name(engine))
         || shm_segment::exists(memory_manager::admin_segment_name(engine));
}


} // namespace cafshm::test
