// TLS for the data connections (data_connection.hpp) of an engine with remote.tls: the
// certificate, key and CA certificates of its peer links, mutual as they are. Each side presents
// its certificate and takes the other's only if it chains to remote.tls.cafile/capath; a peer
// without a certificate, with one of another CA, or without TLS at all ends in the handshake.
// No host name is checked: the hello inside the session proves the link key
// (data_connection_proof), which binds the connection to the peer link that carried the offer.
//
// TLS 1.3 only (both sides are engines of this version), no session tickets or resumption: each
// data connection is one transfer. One context serves both roles: the data port accepts
// (server), a sending engine connects (client). Thread-safe: sessions are made on any thread.
#pragma once

#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "cafshm/settings.hpp"
#include "openssl_ptr.hpp"

struct ssl_st;
struct ssl_ctx_st;

namespace cafshm {

void free_ssl_session(ssl_st* s) noexcept;
using ssl_session = openssl_ptr<ssl_st, free_ssl_session>;

class data_tls {
public:
  /// Loads the certificate (chain), the key (with the passphrase) and the CA certificates; a
  /// file that cannot be used is errc::config_error naming its setting.
  static caf::expected<std::shared_ptr<const data_tls>> create(const tls_settings& t);

  ~data_tls();
  data_tls(const data_tls&) = delete;
  data_tls& operator=(const data_tls&) = delete;

  /// A session on connected socket `fd` (not owned: freeing the session leaves it open), in
  /// the role of the data port (`accepting`) or of the sender. Null if OpenSSL failed.
  ssl_session session(int fd, bool accepting) const;

private:
  data_tls() = default;
  ssl_ctx_st* ctx_ = nullptr;
};

/// The reasons OpenSSL gave on this thread for what just failed (its error queue, emptied),
/// with the peer's certificate verification result if that was the cause; `fallback` if the
/// queue was empty.
std::string tls_failure(ssl_st* s, const std::string& fallback);

} // namespace cafshm
