// Unix users and groups as the engine knows them: its own credentials and the ids behind the
// names a configuration gives. One place for the passwd/group look-ups of the engine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cafshm {

/// The Unix user and primary group of a registering process, as the engine learned them (its
/// own for processes in its actor system; the door's peer credentials for others). Never what
/// the process says about itself.
struct process_credentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

/// The credentials of this process (the engine's own).
process_credentials own_credentials() noexcept;

/// Id of the user called `name`, or of the numeric id `name`; nullopt if there is none.
std::optional<uint32_t> user_id_of(const std::string& name);

/// Id of the group called `name`, or of the numeric id `name`; nullopt if there is none.
std::optional<uint32_t> group_id_of(const std::string& name);

} // namespace cafshm
