#include "unix_identity.hpp"

#include <cerrno>
#include <charconv>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <vector>

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

} // namespace cafshm
