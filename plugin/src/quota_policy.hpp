// Which quota a registering process gets: the engine's quota rules (engine.quotas, per Unix user
// or group, else engine.default_quota per user) applied to the credentials the engine knows for
// the process. A process may ask for less than that, never more
// (memory_manager::register_process). Every quota bounds a set of processes together: a rule's
// bytes all live processes the rule applies to, the default's all live processes of one user
// that no rule applies to; memory_manager sums what they have charged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "cafshm/settings.hpp"
#include "unix_identity.hpp"

namespace cafshm {

class quota_policy {
public:
  /// Resolves the names of `s.quotas`; an unknown user or group is errc::config_error.
  static caf::expected<quota_policy> make(const engine_settings& s);

  /// The most a process with `who` may use: the first rule for its user, else the first for
  /// its group, else the default. 0 = unlimited.
  uint64_t limit_for(const process_credentials& who) const noexcept;

  /// Index (into engine.quotas) of the rule that decides the quota of `who`, or -1 when the
  /// default does.
  int rule_for(const process_credentials& who) const noexcept;

  /// Bytes of rule `index` (0 = unlimited).
  uint64_t rule_bytes(int index) const noexcept { return rules_.at(static_cast<size_t>(index)).bytes; }

  /// engine.default_quota: bytes all live processes of one user without a rule may hold
  /// together (0 = unlimited).
  uint64_t default_bytes() const noexcept { return default_bytes_; }

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
