// Which quota a registering process gets: the engine's quota rules (engine.quotas, per Unix user
// or group, else engine.default_quota) applied to the credentials the engine knows for the
// process. A process may ask for less than that, never more (memory_manager::register_process).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "cafshm/settings.hpp"

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

class quota_policy {
public:
  /// Resolves the names of `s.quotas`; an unknown user or group is errc::config_error.
  static caf::expected<quota_policy> make(const engine_settings& s);

  /// The most a process with `who` may use: the first rule for its user, else the first for
  /// its group, else the default. 0 = unlimited.
  uint64_t limit_for(const process_credentials& who) const noexcept;

private:
  struct rule {
    bool is_user;
    uint32_t id;
    uint64_t bytes;
  };
  std::vector<rule> rules_;
  uint64_t default_bytes_ = 0;
};

} // namespace cafshm
