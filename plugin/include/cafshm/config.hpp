// YAML configuration loader. Errors are values that name file:line:column, the key and why.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "cafshm/settings.hpp"

namespace cafshm {

struct config_error {
  std::string file;   // as given to the loader ("<string>" for in-memory text)
  int line = 0;       // 1-based; 0 when the error is about the file as a whole
  int column = 0;     // 1-based
  std::string key;    // dotted path, e.g. "engine.arena"; empty for syntax errors
  std::string reason; // human-readable, e.g. "unknown key 'arnea' (did you mean 'arena'?)"

  /// "file:line:column: key: reason" (parts that are empty are left out).
  std::string to_string() const;
};

using config_result = std::variant<settings, config_error>;

/// Loads and validates a YAML file. Keys that are absent keep their defaults.
config_result load_config(const std::filesystem::path& file);

/// Same for YAML text; `file_name` is used in error messages.
config_result parse_config(std::string_view yaml_text, std::string_view file_name = "<string>");

/// Checks combinations that individual keys cannot (min block > arena, arena not min_block*2^k,
/// zero capacities, ...). load_config/parse_config call it; code that fills settings by hand
/// should too. Returns the reason or nullopt.
std::optional<std::string> validate(const settings& s);

/// Same, for a system whose page size is `page_bytes` (validate(s) uses sysconf's).
std::optional<std::string> validate(const settings& s, uint64_t page_bytes);

/// Parses "64MiB", "4KiB", "1GiB", "512", "2MB" (decimal units too). nullopt when malformed.
std::optional<uint64_t> parse_size(std::string_view text);

/// Parses "200ms", "5s", "1min", "2500" (milliseconds). nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Parses "HOST:PORT" or "[IPv6]:PORT" (brackets removed) with a port of 1..65535 and a
/// non-empty host. nullopt when malformed.
std::optional<endpoint> parse_endpoint(std::string_view text);

} // namespace cafshm
