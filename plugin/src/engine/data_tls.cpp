#include "data_tls.hpp"

#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cafshm/error.hpp"
#include "openssl_errors.hpp"

namespace cafshm {

namespace {

// The passphrase of an encrypted key, from the tls_settings the context is made from.
int passphrase_callback(char* buf, int size, int, void* user) {
  const auto* pass = static_cast<const std::string*>(user);
  if (!pass || pass->empty() || size <= 0 || pass->size() > static_cast<size_t>(size))
    return 0;
  std::memcpy(buf, pass->data(), pass->size());
  return static_cast<int>(pass->size());
}

} // namespace

void free_ssl_session(ssl_st* s) noexcept {
  SSL_free(s);
}

caf::expected<std::shared_ptr<const data_tls>> data_tls::create(const tls_settings& t) {
  std::shared_ptr<data_tls> self{new data_tls};
  self->ctx_ = SSL_CTX_new(TLS_method());
  auto* ctx = self->ctx_;
  auto fail = [](const char* setting, const std::string& what) {
    return make_error(errc::config_error, std::string{setting} + ": " + what + " for data "
                                            "connections: " + openssl_errors());
  };
  if (!ctx)
    return fail("remote.tls", "cannot make a TLS context");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(ctx, t.certificate.c_str()) != 1)
    return fail("remote.tls.certificate", "cannot load '" + t.certificate + "'");
  // The passphrase is needed only while the key loads: the callback's data is unset after.
  std::string pass = t.passphrase;
  SSL_CTX_set_default_passwd_cb(ctx, passphrase_callback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &pass);
  bool key_ok = SSL_CTX_use_PrivateKey_file(ctx, t.key.c_str(), SSL_FILETYPE_PEM) == 1;
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  SSL_CTX_set_default_passwd_cb(ctx, nullptr);
  if (!key_ok)
    return fail("remote.tls.key", "cannot load the private key '" + t.key + "'");
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("remote.tls.key", "the key does not belong to the certificate");
  if (SSL_CTX_load_verify_locations(ctx, t.cafile.empty() ? nullptr : t.cafile.c_str(),
                                    t.capath.empty() ? nullptr : t.capath.c_str())
      != 1)
    return fail(t.cafile.empty() ? "remote.tls.capath" : "remote.tls.cafile",
                "cannot load the CA certificates");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  ERR_clear_error();
  return std::shared_ptr<const data_tls>{std::move(self)};
}

data_tls::~data_tls() {
  SSL_CTX_free(ctx_);
}

ssl_session data_tls::session(int fd, bool accepting) const {
  ssl_session s{SSL_new(ctx_)};
  if (!s || SSL_set_fd(s.get(), fd) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  if (accepting)
    SSL_set_accept_state(s.get());
  else
    SSL_set_connect_state(s.get());
  return s;
}

std::string tls_failure(ssl_st* s, const std::string& fallback) {
  std::string out;
  if (s) {
    auto verify = SSL_get_verify_result(s);
    if (verify != X509_V_OK)
      out = std::string{"the peer's certificate: "} + X509_verify_cert_error_string(verify);
  }
  bool queued = ERR_peek_error() != 0;
  auto reasons = queued ? openssl_errors() : std::string{};
  if (!reasons.empty())
    out += (out.empty() ? "" : "; ") + reasons;
  return out.empty() ? fallback : out;
}

} // namespace cafshm
