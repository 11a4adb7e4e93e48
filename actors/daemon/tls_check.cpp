#include "tls_check.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

namespace cafshm::daemon {

namespace {

// OpenSSL's queued errors as one line (repeats left out); empties the queue.
std::string ssl_errors() {
  std::string result;
  while (auto code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (result.find(buf) != std::string::npos)
      continue;
    if (!result.empty())
      result += "; ";
    result += buf;
  }
  return result.empty() ? "unknown OpenSSL error" : result;
}

// Hands OpenSSL the configured passphrase, or none: its default would ask on the terminal.
// Being called at all means that the key is encrypted.
struct passphrase_request {
  const std::string* passphrase;
  bool asked = false;
};

int passphrase_cb(char* buf, int size, int, void* user) {
  auto* req = static_cast<passphrase_request*>(user);
  req->asked = true;
  if (req->passphrase->empty() || size <= 0)
    return 0;
  auto n = std::min(req->passphrase->size(), static_cast<size_t>(size - 1));
  std::memcpy(buf, req->passphrase->data(), n);
  buf[n] = '\0';
  return static_cast<int>(n);
}

} // namespace

std::optional<std::string> check_tls(const tls_settings& tls) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!ctx)
    return "remote.tls: cannot create an OpenSSL context: " + ssl_errors();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) != 1)
    return "remote.tls.certificate: cannot load a PEM certificate from '" + tls.certificate
           + "': " + ssl_errors();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new_file(tls.key.c_str(), "r"), BIO_free};
  if (!bio)
    return "remote.tls.key: cannot read '" + tls.key + "': " + ssl_errors();
  passphrase_request req{&tls.passphrase};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{
    PEM_read_bio_PrivateKey(bio.get(), nullptr, passphrase_cb, &req), EVP_PKEY_free};
  if (!key) {
    std::string why = !req.asked                ? "not a PEM private key"
                      : tls.passphrase.empty() ? "it is encrypted: set remote.tls.passphrase"
                                                : "wrong remote.tls.passphrase";
    return "remote.tls.key: cannot load the private key '" + tls.key + "' (" + why
           + "): " + ssl_errors();
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1
      || SSL_CTX_check_private_key(ctx.get()) != 1)
    return "remote.tls.key: '" + tls.key + "' is not the private key of the certificate '"
           + tls.certificate + "': " + ssl_errors();
  const char* cafile = tls.cafile.empty() ? nullptr : tls.cafile.c_str();
  const char* capath = tls.capath.empty() ? nullptr : tls.capath.c_str();
  if (SSL_CTX_load_verify_locations(ctx.get(), cafile, capath) != 1)
    return std::string{cafile ? "remote.tls.cafile" : "remote.tls.capath"}
           + ": cannot load CA certificates from '" + (cafile ? tls.cafile : tls.capath)
           + "': " + ssl_errors();
  return std::nullopt;
}

} // namespace cafshm::daemon
