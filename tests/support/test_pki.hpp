// A certificate authority made for one test with the openssl command line, in a directory of its
// own removed when the test ends: certificates "a" (encrypted key, passphrase "secret") and "b"
// signed by the CA, and "rogue", a self-signed certificate no engine trusts.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "cafshm/settings.hpp"
#include "support/command.hpp"
#include "testing/unique_name.hpp"

namespace cafshm::test {

class pki {
public:
  pki() : dir_(std::filesystem::temp_directory_path() / unique_name("cafshm-test-tls")) {
    std::filesystem::create_directories(dir_);
    auto version = run_command({"openssl", "version"});
    REQUIRE_MESSAGE(version.code == 0, "the openssl command is missing: run scripts/setup.sh");
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj",
             "/CN=cafshm test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign,cRLSign"});
    leaf("a", "secret");
    leaf("b", "");
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", path("rogue.key"), "-out", path("rogue.pem"), "-days", "2",
             "-subj", "/CN=rogue engine"});
  }

  ~pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }

  /// remote.tls of an engine with certificate `who` ("a", "b" or "rogue"), trusting the CA.
  tls_settings settings(const std::string& who) const {
    tls_settings t;
    t.certificate = path(who + ".pem");
    t.key = path(who + ".key");
    t.cafile = path("ca.pem");
    if (who == "a")
      t.passphrase = "secret";
    return t;
  }

  /// remote: section of an engine with TLS peers on 127.0.0.1:port.
  std::string yaml(const std::string& who, uint16_t port) const {
    std::string r = "remote:\n  listen: {host: 127.0.0.1, port: " + std::to_string(port)
                    + "}\n  tls:\n    certificate: " + path(who + ".pem") + "\n    key: "
                    + path(who + ".key") + "\n    cafile: " + path("ca.pem") + "\n";
    if (who == "a")
      r += "    passphrase: secret\n";
    return r;
  }

  void write(const std::string& file, const std::string& text) const {
    std::ofstream out{dir_ / file};
    out << text;
    REQUIRE(out.good());
  }

private:
  void openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    auto r = run_command(args);
    REQUIRE_MESSAGE(r.code == 0, "openssl " << args[1] << " failed: " << r.err);
  }

  void leaf(const std::string& who, const std::string& passphrase) {
    std::vector<std::string> key{"genpkey", "-algorithm", "EC", "-pkeyopt",
                                 "ec_paramgen_curve:P-256", "-out", path(who + ".key")};
    if (!passphrase.empty())
      key.insert(key.end(), {"-aes256", "-pass", "pass:" + passphrase});
    openssl(key);
    openssl({"req", "-new", "-key", path(who + ".key"), "-passin", "pass:" + passphrase, "-subj",
             "/CN=engine " + who, "-out", path(who + ".csr")});
    openssl({"x509", "-req", "-in", path(who + ".csr"), "-CA", path("ca.pem"), "-CAkey",
             path("ca.key"), "-set_serial", who == "a" ? "1001" : "1002", "-days", "2", "-out",
             path(who + ".pem")});
  }

  std::filesystem::path dir_;
};

} // namespace cafshm::test
