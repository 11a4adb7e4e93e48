// Renderings of an engine's statistics: JSON for tools, aligned text for people.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "cafshm/engine_stats.hpp"

namespace cafshm::cli {

/// Exactly one JSON object followed by a newline.
void write_json(std::ostream& out, const engine_stats& s);

/// The `stat` report: sizes, free memory by block size, processes and names.
void write_text(std::ostream& out, const engine_stats& s);

/// One line per named block: name, size in bytes, owner slot (0 = held by the engine).
void write_names(std::ostream& out, const engine_stats& s, bool header = false);

/// "512 B", "4 KiB", "1.5 MiB", "2 GiB".
std::string human_size(uint64_t bytes);

} // namespace cafshm::cli
