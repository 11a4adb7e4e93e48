#include "peer_key_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cafshm {

namespace {

std::string octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

std::optional<std::string> stat_problem(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode))
    return "'" + path + "' is not a regular file";
  if (st.st_uid != ::geteuid())
    return "'" + path + "' belongs to uid " + std::to_string(st.st_uid) + ", not to the engine's "
           + "user (uid " + std::to_string(::geteuid()) + ")";
  if ((st.st_mode & 077) != 0)
    return "'" + path + "' has mode " + octal(st.st_mode)
           + ": group and others may use it; run chmod 600 on it";
  auto size = static_cast<size_t>(st.st_size);
  if (size < min_peer_key_bytes || size > max_peer_key_bytes)
    return "'" + path + "' has " + std::to_string(size) + " bytes; a peer key has "
           + std::to_string(min_peer_key_bytes) + ".." + std::to_string(max_peer_key_bytes)
           + " (e.g. head -c 32 /dev/urandom > FILE)";
  return std::nullopt;
}

} // namespace

std::optional<std::string> peer_key_file_problem(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    return "cannot use '" + path + "': " + std::strerror(errno);
  return stat_problem(path, st);
}

std::optional<std::vector<unsigned char>> read_peer_key(const std::string& path,
                                                        std::string& why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    why = "cannot open '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st{};
  std::optional<std::vector<unsigned char>> key;
  if (::fstat(fd, &st) != 0) {
    why = "cannot stat '" + path + "': " + std::strerror(errno);
  } else if (auto problem = stat_problem(path, st)) { // checked on the file that is read
    why = *problem;
  } else {
    std::vector<unsigned char> bytes(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      auto n = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (n <= 0)
        break;
      got += static_cast<size_t>(n);
    }
    if (got == bytes.size())
      key = std::move(bytes);
    else
      why = "cannot read '" + path + "'";
  }
  ::close(fd);
  return key;
}

} // namespace cafshm
