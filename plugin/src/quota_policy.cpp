#include "quota_policy.hpp"

#include "cafshm/error.hpp"

namespace cafshm {

caf::expected<quota_policy> quota_policy::make(const engine_settings& s) {
  quota_policy result;
  result.default_bytes_ = s.default_quota_bytes;
  for (size_t i = 0; i < s.quotas.size(); ++i) {
    const auto& q = s.quotas[i];
    auto where = "engine.quotas[" + std::to_string(i) + "]";
    if (q.user.empty() == q.group.empty())
      return make_error(errc::config_error, where + ": set exactly one of user and group");
    auto id = q.user.empty() ? group_id_of(q.group) : user_id_of(q.user);
    if (!id)
      return make_error(errc::config_error,
                        where + ": no such Unix " + (q.user.empty() ? "group '" + q.group
                                                                    : "user '" + q.user)
                          + "'");
    result.rules_.push_back({!q.user.empty(), *id, q.bytes});
  }
  return result;
}

int quota_policy::rule_for(const process_credentials& who) const noexcept {
  for (size_t i = 0; i < rules_.size(); ++i)
    if (rules_[i].is_user && rules_[i].id == who.uid)
      return static_cast<int>(i);
  for (size_t i = 0; i < rules_.size(); ++i)
    if (!rules_[i].is_user && rules_[i].id == who.gid)
      return static_cast<int>(i);
  return -1;
}

uint64_t quota_policy::limit_for(const process_credentials& who) const noexcept {
  auto rule = rule_for(who);
  return rule < 0 ? default_bytes_ : rules_[static_cast<size_t>(rule)].bytes;
}

} // namespace cafshm
