#include "link_seal.hpp"

#include <cstring>
#include <iostream>

#include <caf/node_id.hpp>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "cafshm/error.hpp"
#include "openssl_ptr.hpp"

namespace cafshm {

namespace {

using pkey_ptr = openssl_ptr<EVP_PKEY, EVP_PKEY_free>;
using pkey_ctx_ptr = openssl_ptr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using kdf_ptr = openssl_ptr<EVP_KDF, EVP_KDF_free>;
using kdf_ctx_ptr = openssl_ptr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using mac_ptr = openssl_ptr<EVP_MAC, EVP_MAC_free>;
using mac_ctx_ptr = openssl_ptr<EVP_MAC_CTX, EVP_MAC_CTX_free>;

void put_u64(std::vector<unsigned char>& out, uint64_t x) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<unsigned char>(x >> shift));
}

void put_bytes(std::vector<unsigned char>& out, const std::vector<char>& bytes) {
  put_u64(out, bytes.size());
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// GMAC (AES-256-GCM over authenticated data only), fetched once: EVP_MAC_fetch is costly.
EVP_MAC* gmac() {
  static mac_ptr mac{EVP_MAC_fetch(nullptr, "GMAC", nullptr)};
  return mac.get();
}

} // namespace

struct link_key_exchange::key_holder {
  pkey_ptr key;
};

caf::expected<link_key_exchange> link_key_exchange::generate() {
  link_key_exchange x;
  x.key_ = std::make_shared<key_holder>();
  x.key_->key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  size_t len = link_public_key_bytes;
  x.public_.resize(len);
  if (!x.key_->key
      || EVP_PKEY_get_raw_public_key(x.key_->key.get(),
                                     reinterpret_cast<unsigned char*>(x.public_.data()), &len)
           != 1
      || len != link_public_key_bytes) {
    ERR_clear_error();
    return make_error(errc::peer_failure, "cannot make an X25519 key for a link");
  }
  return x;
}

caf::expected<link_keys>
link_key_exchange::derive(const std::vector<char>& peer_public, link_role own_role,
                          uint64_t dialer, uint64_t listener,
                          const std::vector<char>& dialer_nonce,
                          const std::vector<char>& listener_nonce) const {
  auto refused = [](const char* why) {
    ERR_clear_error();
    return make_error(errc::access_denied, std::string{"link key agreement failed: "} + why);
  };
  if (peer_public.size() != link_public_key_bytes)
    return refused("the peer's public key is no X25519 key");
  pkey_ptr peer{EVP_PKEY_new_raw_public_key(
    EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(peer_public.data()),
    peer_public.size())};
  pkey_ctx_ptr ctx{peer ? EVP_PKEY_CTX_new(key_->key.get(), nullptr) : nullptr};
  unsigned char secret[32];
  size_t secret_len = sizeof secret;
  // OpenSSL refuses an all-zero result (a low-order public key)
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1
      || EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1
      || EVP_PKEY_derive(ctx.get(), secret, &secret_len) != 1 || secret_len != sizeof secret)
    return refused("the peer's public key is no usable X25519 key");
  const auto& dialer_public = own_role == link_role::dialer ? public_ : peer_public;
  const auto& listener_public = own_role == link_role::dialer ? peer_public : public_;
  std::vector<unsigned char> salt;
  put_bytes(salt, dialer_nonce);
  put_bytes(salt, listener_nonce);
  static constexpr char label[] = "cafshm link keys v1";
  std::vector<unsigned char> info(label, label + sizeof label);
  put_u64(info, dialer);
  put_u64(info, listener);
  put_bytes(info, dialer_public);
  put_bytes(info, listener_public);
  unsigned char out[2 * link_mac_key_bytes];
  kdf_ptr kdf{EVP_KDF_fetch(nullptr, "HKDF", nullptr)};
  kdf_ctx_ptr kctx{kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr};
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, secret, secret_len),
    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt.data(), salt.size()),
    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
    OSSL_PARAM_construct_end()};
  bool ok = kctx && EVP_KDF_derive(kctx.get(), out, sizeof out, params) == 1;
  OPENSSL_cleanse(secret, sizeof secret);
  if (!ok)
    return refused("HKDF-SHA256 failed");
  link_keys keys;
  keys.dialer_to_listener.assign(out, out + link_mac_key_bytes);
  keys.listener_to_dialer.assign(out + link_mac_key_bytes, out + sizeof out);
  OPENSSL_cleanse(out, sizeof out);
  return keys;
}

struct mac_input::state {
  mac_ctx_ptr ctx;
  bool ok = false;
};

mac_input::mac_input(std::span<const unsigned char> key, bool answer, caf::atom_value type,
                     uint64_t token, uint64_t sequence)
  : st_(std::make_unique<state>()) {
  // The nonce: whether it is an answer, then the sequence. A sealer never repeats a sequence of
  // one kind, and each key belongs to one direction of one link, so no nonce repeats under a
  // key (GMAC's requirement).
  unsigned char nonce[12] = {0, 0, 0, static_cast<unsigned char>(answer ? 1 : 0)};
  for (int i = 0; i < 8; ++i)
    nonce[4 + i] = static_cast<unsigned char>(sequence >> (56 - 8 * i));
  char cipher[] = "AES-256-GCM";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                         OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_IV, nonce, sizeof nonce),
                         OSSL_PARAM_construct_end()};
  st_->ctx.reset(gmac() ? EVP_MAC_CTX_new(gmac()) : nullptr);
  st_->ok = st_->ctx && key.size() == link_mac_key_bytes
            && EVP_MAC_init(st_->ctx.get(), key.data(), key.size(), params) == 1;
  static constexpr char request_label[] = "cafshm peer request v1";
  static constexpr char answer_label[] = "cafshm peer answer v1";
  if (answer)
    raw(answer_label, sizeof answer_label);
  else
    raw(request_label, sizeof request_label);
  add(static_cast<uint64_t>(type));
  add(token);
  add(sequence);
}

mac_input::~mac_input() = default;

void mac_input::raw(const void* p, size_t n) {
  if (st_->ok && n > 0)
    st_->ok = EVP_MAC_update(st_->ctx.get(), static_cast<const unsigned char*>(p), n) == 1;
}

void mac_input::add(uint64_t x) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<unsigned char>(x >> (56 - 8 * i));
  raw(b, sizeof b);
}

void mac_input::add_bytes(std::span<const char> bytes) {
  add(uint64_t{bytes.size()});
  raw(bytes.data(), bytes.size());
}

void mac_input::add(const block_ref& x) {
  add(x.engine);
  add(uint64_t{x.block});
  add(uint64_t{x.generation});
  add(x.size);
}

void mac_input::add(const transmit_offer& x) {
  add(x.sender);
  add(x.id);
  add(x.size);
  add(x.hash);
  add(x.chunk_bytes);
  add_bytes(x.target.process);
  add_bytes(x.target.name);
  // the actor a delivery is told to, by its node and id (what names it on every node)
  const auto& to = x.target.deliver_to;
  add(to ? uint64_t{to.id()} : uint64_t{0});
  add_bytes(to ? to_string(to.node()) : std::string{});
  add(x.source);
  add(x.source_version);
  add(uint64_t{x.cache_fill});
}

void mac_input::add(const transmit_receipt& x) {
  add(x.remote);
  add(x.bytes);
  add(x.payload_bytes);
  add(x.hash);
  add(x.data_token);
  add(uint64_t{x.data_port});
  add_bytes(x.data_host);
  add(uint64_t{x.cache_hit});
}

void mac_input::add(const transmit_chunk& x) {
  add(x.sender);
  add(x.id);
  add(x.offset);
  add(x.hash);
  add_bytes(x.data);
}

std::vector<char> mac_input::finish() {
  std::vector<char> mac(EVP_MAX_MD_SIZE);
  size_t len = 0;
  if (!st_->ok
      || EVP_MAC_final(st_->ctx.get(), reinterpret_cast<unsigned char*>(mac.data()), &len,
                       mac.size())
           != 1) {
    ERR_clear_error();
    return {};
  }
  mac.resize(len);
  return mac;
}

caf::error link_opener::accept(const peer_seal& s, const std::vector<char>& expected) {
  if (expected.empty() || s.mac.size() != expected.size()
      || CRYPTO_memcmp(s.mac.data(), expected.data(), expected.size()) != 0) {
    ++refused;
    return make_error(errc::access_denied,
                      "peer message refused: its MAC is not that of the link's key");
  }
  if (s.sequence <= last_sequence) {
    ++refused;
    return make_error(errc::access_denied,
                      "peer message refused: sequence " + std::to_string(s.sequence)
                        + " was not above the link's last (" + std::to_string(last_sequence)
                        + "): a replay");
  }
  last_sequence = s.sequence;
  return {};
}

} // namespace cafshm
