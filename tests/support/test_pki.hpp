// A certificate authority made for one test with the openssl command line, in a directory of its
// own removed when the test ends: certificates "a" (key encrypted, passphrase "secret"), "b"
// signed by the CA, and "rogue", a self-signed certificate no engine trusts
// (testing/certificates.hpp, which the benchmarks share). The test fails at once if a
// certificate cannot be made.
#pragma once

#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "testing/certificates.hpp"

namespace cafshm::test {

class pki : public certificates {
public:
  pki() { REQUIRE_MESSAGE(error().empty(), error()); }

  void write(const std::string& file, const std::string& text) const {
    std::ofstream out{directory() / file};
    out << text;
    REQUIRE(out.good());
  }
};

} // namespace cafshm::test
