#include "testing/certificates.hpp"

#include <cstdlib>
#include <sstream>

#include <unistd.h>

#include "testing/child_process.hpp"
#include "testing/unique_name.hpp"

namespace cafshm::test {

namespace {

// The openssl program as child_process starts it (a path): the first in PATH, "" if none.
std::string openssl_program() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs{path ? path : "/usr/bin:/bin"};
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    auto candidate = (dir.empty() ? std::string{"."} : dir) + "/openssl";
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return {};
}

} // namespace

certificates::certificates(const std::string& prefix)
  : dir_(std::filesystem::temp_directory_path() / unique_name(prefix)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    error_ = "cannot create " + dir_.string() + ": " + ec.message();
    return;
  }
  // Each step runs only if the ones before it succeeded: error_ names the first failure.
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj",
           "/CN=cafshm test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
           "keyUsage=critical,keyCertSign,cRLSign"})
    && leaf("a", "secret") && leaf("b", "")
    && openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", path("rogue.key"), "-out", path("rogue.pem"), "-days", "2",
                "-subj", "/CN=rogue engine"});
}

certificates::~certificates() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

tls_settings certificates::settings(const std::string& who) const {
  tls_settings t;
  t.certificate = path(who + ".pem");
  t.key = path(who + ".key");
  t.cafile = path("ca.pem");
  if (who == "a")
    t.passphrase = "secret";
  return t;
}

std::string certificates::yaml(const std::string& who, uint16_t port) const {
  std::string r = "remote:\n  listen: {host: 127.0.0.1, port: " + std::to_string(port)
                  + "}\n  tls:\n    certificate: " + path(who + ".pem") + "\n    key: "
                  + path(who + ".key") + "\n    cafile: " + path("ca.pem") + "\n";
  if (who == "a")
    r += "    passphrase: secret\n";
  return r;
}

bool certificates::openssl(std::vector<std::string> args) {
  static const std::string program = openssl_program();
  if (program.empty()) {
    error_ = "the openssl command is missing: run scripts/setup.sh";
    return false;
  }
  auto what = args.front();
  args.insert(args.begin(), program);
  auto r = child_process::run(std::move(args), {}, std::chrono::seconds(60));
  if (r.exit_code != 0) {
    error_ = "openssl " + what + " failed: " + r.err;
    return false;
  }
  return true;
}

bool certificates::leaf(const std::string& who, const std::string& passphrase) {
  std::vector<std::string> key{"genpkey", "-algorithm", "EC", "-pkeyopt",
                               "ec_paramgen_curve:P-256", "-out", path(who + ".key")};
  if (!passphrase.empty())
    key.insert(key.end(), {"-aes256", "-pass", "pass:" + passphrase});
  return openssl(key)
         && openssl({"req", "-new", "-key", path(who + ".key"), "-passin", "pass:" + passphrase,
                     "-subj", "/CN=engine " + who, "-out", path(who + ".csr")})
         && openssl({"x509", "-req", "-in", path(who + ".csr"), "-CA", path("ca.pem"), "-CAkey",
                     path("ca.key"), "-set_serial", who == "a" ? "1001" : "1002", "-days", "2",
                     "-out", path(who + ".pem")});
}

} // namespace cafshm::test
