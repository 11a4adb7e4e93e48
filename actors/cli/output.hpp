// Renderings of an engine's statistics: JSON for tools, aligned text for people.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "cafshm/engine_stats.hpp"
#include "cafshm/remote.hpp"

namespace cafshm::cli {

/// Exactly one JSON object followed by a newline.
void write_json(std::ostream& out, const engine_stats& s);

/// What `transmit --json` prints at the end: one JSON object (name, destination, sizes, whether
/// the cache had it, how long it took and the rate), followed by a newline.
void write_transmit_json(std::ostream& out, const std::string& name, const std::string& to,
                         const std::string& as, const transmit_receipt& r, double seconds);

/// The `stat` report: sizes, free memory by block size, processes and names.
void write_text(std::ostream& out, const engine_stats& s);

/// One line per named block: name, size in bytes, owner slot (0 = held by the engine).
void write_names(std::ostream& out, const engine_stats& s, bool header = false);

/// "512 B", "4 KiB", "1.5 MiB", "2 GiB".
std::string human_size(uint64_t bytes);

/// Transfers in progress between the engine and one peer engine, in both directions.
struct peer_transfers {
  std::string peer;          // as engine_stats::peers names it
  uint32_t out = 0;          // transfers the engine sends to it
  uint64_t out_done = 0;     // bytes of those the peer confirmed
  uint64_t out_bytes = 0;    // bytes of those in all
  uint32_t in = 0;           // transfers the engine receives from it
  uint64_t in_done = 0;      // bytes of those received and verified
  uint64_t in_bytes = 0;
};

/// One entry per peer with transfers in progress, ordered by peer.
std::vector<peer_transfers> transfers_by_peer(const engine_stats& s);

} // namespace cafshm::cli
