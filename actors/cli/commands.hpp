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
/// Refuses (before allocating) inputs of more than `max_bytes`; a pipe or device (/dev/zero)
/// is read only up to that.
void put(const settings& s, const std::string& name, const std::string& file,
         uint64_t max_bytes);

/// Writes the block called `name` to `file` ("" or "-" = stdout).
void get(const settings& s, const std::string& name, const std::string& file);

/// Lists the named blocks.
void ls(const settings& s);

/// Removes the name and frees its block.
void rm(const settings& s, const std::string& name);

/// Sends the block called `name` to the engine at `to` ("host:port" of its peer listener, or a
/// peer name configured at the local engine), where the engine holds it under `as`. Prints one
/// line: sizes, payload bytes actually sent, whether the destination's cache had the content.
/// Transfers that take longer than a second show their progress (bytes, rate, time left) on
/// stderr. With `json`, the line is one JSON object (write_transmit_json).
void transmit(const settings& s, const std::string& name, const std::string& to,
              const std::string& as, bool json);

} // namespace cafshm::cli
