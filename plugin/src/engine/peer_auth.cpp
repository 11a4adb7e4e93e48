#include "peer_auth.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "cafshm/error.hpp"
#include "openssl_errors.hpp"
#include "openssl_ptr.hpp"
#include "peer_key_file.hpp"

namespace cafshm {

namespace {

using bio_ptr = openssl_ptr<BIO, BIO_free_all>;
using x509_ptr = openssl_ptr<X509, X509_free>;
using pkey_ptr = openssl_ptr<EVP_PKEY, EVP_PKEY_free>;
using md_ctx_ptr = openssl_ptr<EVP_MD_CTX, EVP_MD_CTX_free>;
using store_ptr = openssl_ptr<X509_STORE, X509_STORE_free>;
using store_ctx_ptr = openssl_ptr<X509_STORE_CTX, X509_STORE_CTX_free>;

void free_x509_stack(STACK_OF(X509) * s) {
  sk_X509_pop_free(s, X509_free);
}
using x509_stack_ptr = openssl_ptr<STACK_OF(X509), free_x509_stack>;

caf::error refused(std::string why) {
  ERR_clear_error();
  return make_error(errc::access_denied, "peer proof refused: " + std::move(why));
}

bio_ptr memory_bio(const std::string& text) {
  return bio_ptr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

// Ed25519 and Ed448 sign the message itself; every other key type signs its SHA-256.
const EVP_MD* digest_for(EVP_PKEY* key) {
  auto id = EVP_PKEY_get_base_id(key);
  return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
}

caf::expected<std::vector<char>> sign(EVP_PKEY* key, const std::vector<unsigned char>& tbs) {
  md_ctx_ptr md{EVP_MD_CTX_new()};
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, digest_for(key), nullptr, key) != 1
      || EVP_DigestSign(md.get(), nullptr, &len, tbs.data(), tbs.size()) != 1)
    return make_error(errc::config_error, "cannot sign with the TLS key: " + openssl_errors());
  std::vector<char> sig(len);
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, tbs.data(),
                     tbs.size())
      != 1)
    return make_error(errc::config_error, "cannot sign with the TLS key: " + openssl_errors());
  sig.resize(len);
  return sig;
}

// Hands OpenSSL the configured passphrase, never a prompt on the terminal.
int passphrase_cb(char* buf, int size, int, void* user) {
  const auto* pass = static_cast<const std::string*>(user);
  if (pass->empty() || size <= 0)
    return 0;
  auto n = std::min(pass->size(), static_cast<size_t>(size - 1));
  std::memcpy(buf, pass->data(), n);
  return static_cast<int>(n);
}

pkey_ptr read_key(const std::string& pem, const std::string& passphrase) {
  auto bio = memory_bio(pem);
  return pkey_ptr{bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, passphrase_cb,
                                                const_cast<std::string*>(&passphrase))
                      : nullptr};
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

void put_u64(std::vector<unsigned char>& out, uint64_t x) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<unsigned char>(x >> shift));
}

} // namespace

struct peer_authenticator::openssl_state {
  pkey_ptr key;
  store_ptr trusted;
};

peer_authenticator::~peer_authenticator() = default;

std::vector<unsigned char> link_transcript(link_role prover, uint64_t dialer, uint64_t listener,
                                           const std::vector<char>& dialer_nonce,
                                           const std::vector<char>& listener_nonce,
                                           const std::vector<char>& dialer_public,
                                           const std::vector<char>& listener_public) {
  static constexpr char label[] = "cafshm peer link v2";
  std::vector<unsigned char> out(label, label + sizeof label); // with its NUL
  out.push_back(static_cast<unsigned char>(prover));
  put_u64(out, dialer);
  put_u64(out, listener);
  for (const auto* field : {&dialer_nonce, &listener_nonce, &dialer_public, &listener_public}) {
    put_u64(out, field->size());
    out.insert(out.end(), field->begin(), field->end());
  }
  return out;
}

caf::expected<std::shared_ptr<peer_authenticator>>
peer_authenticator::create(const remote_settings& r) {
  std::shared_ptr<peer_authenticator> self{new peer_authenticator};
  if (r.tls.enabled()) {
    const auto& tls = r.tls;
    self->mode_ = peer_auth_mode::certificate;
    auto cert = read_file(tls.certificate);
    auto key = read_file(tls.key);
    if (!cert || !key)
      return make_error(errc::config_error, "remote.tls: cannot read '"
                                              + (cert ? tls.key : tls.certificate) + "'");
    self->certificate_pem_ = std::move(*cert);
    self->ssl_ = std::make_unique<openssl_state>();
    self->ssl_->key = read_key(*key, tls.passphrase);
    if (!self->ssl_->key)
      return make_error(errc::config_error, "remote.tls.key: cannot load the private key '"
                                              + tls.key + "': " + openssl_errors());
    self->ssl_->trusted.reset(X509_STORE_new());
    if (!tls.cafile.empty() && X509_STORE_load_file(self->ssl_->trusted.get(), tls.cafile.c_str()) != 1)
      return make_error(errc::config_error, "remote.tls.cafile: cannot load CA certificates "
                                            "from '" + tls.cafile + "': " + openssl_errors());
    if (!tls.capath.empty() && X509_STORE_load_path(self->ssl_->trusted.get(), tls.capath.c_str()) != 1)
      return make_error(errc::config_error, "remote.tls.capath: cannot use '" + tls.capath
                                              + "': " + openssl_errors());
    auto data = data_tls::create(tls);
    if (!data)
      return std::move(data.error());
    self->data_tls_ = std::move(*data);
    return self;
  }
  if (!r.peer_key_file.empty()) {
    self->mode_ = peer_auth_mode::shared_key;
    std::string why;
    auto key = read_peer_key(r.peer_key_file, why);
    if (!key)
      return make_error(errc::config_error, "remote.peer_key_file: " + why);
    self->shared_key_ = std::move(*key);
    return self;
  }
  self->mode_ = r.unauthenticated_peers ? peer_auth_mode::open : peer_auth_mode::closed;
  return self;
}

caf::expected<peer_proof>
peer_authenticator::prove(const std::vector<unsigned char>& transcript) const {
  switch (mode_) {
    case peer_auth_mode::certificate: {
      auto sig = sign(ssl_->key.get(), transcript);
      if (!sig)
        return std::move(sig.error());
      return peer_proof{certificate_pem_, std::move(*sig)};
    }
    case peer_auth_mode::shared_key:
      return hmac_with(shared_key_, transcript);
    default:
      return peer_proof{};
  }
}

caf::expected<std::string> peer_authenticator::verify(const std::vector<unsigned char>& transcript,
                                                      const peer_proof& proof) const {
  switch (mode_) {
    case peer_auth_mode::closed:
      return make_error(errc::access_denied,
                        "this engine links with no peer: configure remote.tls, "
                        "remote.peer_key_file or remote.unauthenticated_peers");
    case peer_auth_mode::open:
      return std::string{"unauthenticated"};
    case peer_auth_mode::shared_key: {
      auto expected = hmac_with(shared_key_, transcript);
      if (proof.signature.size() != expected.signature.size()
          || CRYPTO_memcmp(proof.signature.data(), expected.signature.data(),
                           expected.signature.size())
               != 0)
        return refused("the HMAC does not match this engine's remote.peer_key_file");
      return std::string{"shared key"};
    }
    case peer_auth_mode::certificate:
      break;
  }
  if (proof.certificate.empty() || proof.certificate.size() > max_proof_certificate_bytes)
    return refused("a certificate of 1.." + std::to_string(max_proof_certificate_bytes)
                   + " bytes is needed");
  if (proof.signature.empty() || proof.signature.size() > max_proof_signature_bytes)
    return refused("a signature of 1.." + std::to_string(max_proof_signature_bytes)
                   + " bytes is needed");
  auto bio = memory_bio(proof.certificate);
  x509_ptr leaf{bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr};
  if (!leaf)
    return refused("no PEM certificate (" + openssl_errors() + ")");
  x509_stack_ptr chain{sk_X509_new_null()};
  while (auto* more = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    if (sk_X509_push(chain.get(), more) == 0) {
      X509_free(more);
      return refused("cannot hold the certificate chain");
    }
  ERR_clear_error(); // the end of the PEM text
  store_ctx_ptr ctx{X509_STORE_CTX_new()};
  if (!ctx || X509_STORE_CTX_init(ctx.get(), ssl_->trusted.get(), leaf.get(), chain.get()) != 1)
    return refused("cannot verify a certificate (" + openssl_errors() + ")");
  if (X509_verify_cert(ctx.get()) != 1)
    return refused(std::string{"the certificate does not chain to this engine's CA: "}
                   + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  auto* key = X509_get0_pubkey(leaf.get());
  md_ctx_ptr md{EVP_MD_CTX_new()};
  if (key == nullptr || !md
      || EVP_DigestVerifyInit(md.get(), nullptr, digest_for(key), nullptr, key) != 1
      || EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(proof.signature.data()),
                          proof.signature.size(), transcript.data(), transcript.size())
           != 1)
    return refused("the signature was not made with the certificate's key over this handshake");
  unsigned char fp[EVP_MAX_MD_SIZE];
  unsigned int fp_len = 0;
  X509_digest(leaf.get(), EVP_sha256(), fp, &fp_len);
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(leaf.get()), subject, sizeof subject);
  return "certificate sha256:" + hex(fp, fp_len) + " (" + subject + ")";
}

caf::expected<peer_proof> peer_authenticator::sign_with(const std::string& certificate_pem,
                                                        const std::string& key_pem,
                                                        const std::vector<unsigned char>& tbs) {
  auto key = read_key(key_pem, {});
  if (!key)
    return make_error(errc::invalid_argument, "not a PEM private key: " + openssl_errors());
  auto sig = sign(key.get(), tbs);
  if (!sig)
    return std::move(sig.error());
  return peer_proof{certificate_pem, std::move(*sig)};
}

peer_proof peer_authenticator::hmac_with(const std::vector<unsigned char>& key,
                                         const std::vector<unsigned char>& transcript) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), transcript.data(),
       transcript.size(), mac, &len);
  return peer_proof{{}, std::vector<char>(mac, mac + len)};
}

} // namespace cafshm
