// Actors that processes published at their engine under a name, so that another process on the
// same engine finds them without knowing ports or hosts. Engine-private memory (not admin
// memory): an entry lives as long as its publisher and its actor. When either ends, the entry
// stays as a record of why, so that a lookup answers errc::actor_gone instead of "not found";
// a new publication under the name replaces it. Records are bounded by `capacity`.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "cafshm/protocol.hpp"

namespace cafshm {

class actor_directory {
public:
  explicit actor_directory(size_t capacity) : capacity_(capacity) {}

  /// Publishes `actor` of process `slot` as `name`. A name held by a live entry of another
  /// process is refused (errc::name_taken); the same process may publish a name again.
  caf::error publish(process_id slot, const std::string& name, caf::actor actor);
  /// Ends the publication of `name` by process `slot`.
  caf::error unpublish(process_id slot, const std::string& name);
  caf::expected<published_actor> lookup(const std::string& name) const;

  /// The process `slot` ended: its entries become records of that.
  void process_ended(process_id slot);
  /// A published actor went down (terminated, or the engine lost the connection to its process,
  /// after which the handle reaches nobody): its entries become records of that.
  void actor_down(const caf::actor_addr& actor, const caf::error& reason);

private:
  struct entry {
    caf::actor actor;      // null once gone
    process_id process = process_id::engine; // the publisher
    std::string gone_why;  // why the entry ended (empty while live)
  };
  void end(entry& e, std::string why);

  size_t capacity_;
  std::map<std::string, entry> entries_;
};

} // namespace cafshm
