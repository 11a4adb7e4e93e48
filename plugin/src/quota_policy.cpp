#include "quota_policy.hpp"

#include <cerrno>
#include <charconv>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "cafshm/error.hpp"

namespace cafshm {

namespace {

std::optional<uint32_t> numeric_id(const std::string& text) {
  uint32_t id = 0;
  auto last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data(), last, id);
  if (text.empty() || ec != std::errc{} || end != last)
    return std::nullopt;
  return id;
}

} // namespace

process_credentials own_credentials() noexcept {
  return {static_cast<uint32_t>(::geteuid()), static_cast<uint32_t>(::getegid())};
}

std::optional<uint32_t> user_id_of(const std::string& name) {
  if (name.empty())
    return std::nullopt;
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(4096);
  while (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == ERANGE
         && buffer.size() < (1u << 20))
    buffer.resize(buffer.size() * 2);
  if (found != nullptr)
    return found->pw_uid;
  return numeric_id(name); // a uid without a passwd entry (containers) is still a user
}

std::optional<uint32_t> group_id_of(const std::string& name) {
  if (name.empty())
    return std::nullopt;
  group entry{};
  group* found = nullptr;
  std::vector<char> buffer(4096);
  while (::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == ERANGE
         && buffer.size() < (1u << 20))
    buffer.resize(buffer.size() * 2);
  if (found != nullptr)
    return found->gr_gid;
  return numeric_id(name);
}

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

uint64_t quota_policy::limit_for(const process_credentials& who) const noexcept {
  for (const auto& r : rules_)
    if (r.is_user && r.id == who.uid)
      return r.bytes;
  for (const auto& r : rules_)
    if (!r.is_user && r.id == who.gid)
      return r.bytes;
  return default_bytes_;
}

} // namespace cafshm
