// Renderings of an engine's statistics: JSON for tools, aligned text for people.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

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

} // namespace cafshm::cli
