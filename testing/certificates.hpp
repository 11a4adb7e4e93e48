// A certificate authority made with the openssl command line in a directory of its own, for a
// test or benchmark run: certificates "a" (key encrypted, passphrase "secret") and "b" signed by
// the CA, and "rogue", a self-signed certificate no engine trusts. The directory and everything
// in it are removed on destruction, also when making a certificate failed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cafshm/settings.hpp"

namespace cafshm::test {

class certificates {
public:
  /// Makes the CA and the three certificates in a new directory under the temporary directory
  /// named after `prefix` (unique_name). error() says what failed, if anything did.
  explicit certificates(const std::string& prefix = "cafshm-test-tls");
  ~certificates();
  certificates(const certificates&) = delete;
  certificates& operator=(const certificates&) = delete;

  /// Empty once every file was made; else the openssl command that failed and its stderr.
  const std::string& error() const noexcept { return error_; }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  const std::filesystem::path& directory() const noexcept { return dir_; }

  /// remote.tls of an engine with certificate `who` ("a", "b" or "rogue"), trusting the CA.
  tls_settings settings(const std::string& who) const;

  /// remote: section of an engine with TLS peers on 127.0.0.1:port (listen and tls keys only).
  std::string yaml(const std::string& who, uint16_t port) const;

private:
  bool openssl(std::vector<std::string> args);
  bool leaf(const std::string& who, const std::string& passphrase);

  std::filesystem::path dir_;
  std::string error_;
};

} // namespace cafshm::test
