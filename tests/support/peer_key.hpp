// A remote.peer_key_file made for one test: 32 random bytes, mode 0600, removed at the end.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <sys/stat.h>

#include "testing/daemon_process.hpp"

namespace cafshm::test {

class peer_key {
public:
  explicit peer_key(const std::string& prefix = "cafshm-test-key")
    : path_(std::filesystem::temp_directory_path() / unique_name(prefix)) {
    std::random_device rd;
    std::string bytes(32, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(rd());
    std::ofstream out{path_, std::ios::binary};
    out << bytes;
    out.close();
    ::chmod(path_.c_str(), 0600);
  }
  ~peer_key() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  peer_key(const peer_key&) = delete;
  peer_key& operator=(const peer_key&) = delete;

  std::string path() const { return path_.string(); }
  /// A remote: section that authenticates peers with this key.
  std::string yaml(const std::string& more = {}) const {
    return "remote:\n  peer_key_file: " + path() + "\n" + more;
  }

private:
  std::filesystem::path path_;
};

} // namespace cafshm::test
