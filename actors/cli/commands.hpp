// The CLI's commands. Each one connects for itself: it registers with the engine, serves its one
// request and unregisters, so that nothing of this process stays registered or mapped.
#pragma once

#include <stdexcept>
#include <string>

#include "cafshm/settings.hpp"

namespace cafshm::cli {

/// A failed command; what() is its one-line reason, e.g. "name_not_found: no block is named 'x'".
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every command reaches the engine at s.client.engine and waits s.client.request_timeout per
// request; each throws `failure`.

/// Prints the engine's statistics, as text or as one JSON object.
void stat(const settings& s, bool json);

/// Stores `file` ("-" = stdin) as a block called `name`, held by the engine until removed.
void put(const settings& s, const std::string& name, const std::string& file);

/// Writes the block called `name` to `file` ("" or "-" = stdout).
void get(const settings& s, const std::string& name, const std::string& file);

/// Lists the named blocks.
void ls(const settings& s);

/// Removes the name and frees its block.
void rm(const settings& s, const std::string& name);

} // namespace cafshm::cli
