// How engines prove their engine ids to each other when they link (the handshake of peer_actor
// in cafshm/engine.hpp). One mode per engine, from remote settings:
//   certificate  remote.tls: a proof is the engine's certificate (PEM) and a signature with its
//                private key over the link transcript; it is accepted when the certificate
//                chains to remote.tls.cafile/capath (X509_verify_cert) and the signature
//                verifies with the certificate's public key.
//   shared_key   remote.peer_key_file: a proof is HMAC-SHA256 over the transcript with the key.
//   open         remote.unauthenticated_peers: no proof; any caller may link as any engine id.
//   closed       none of these: the engine links with no peer.
// The transcript binds the role of the prover, both engine ids, fresh nonces of both sides and
// both sides' ephemeral public keys of the link's key agreement (link_seal.hpp), so a proof is
// good for one handshake between two given engines only and authenticates the keys its
// messages are sealed with.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "cafshm/remote.hpp"
#include "data_tls.hpp"
#include "cafshm/settings.hpp"

namespace cafshm {

enum class peer_auth_mode : uint8_t { closed, open, shared_key, certificate };

/// Who proves: the engine that dials or the one that listens.
enum class link_role : char { dialer = 'D', listener = 'L' };

/// The bytes a proof covers: a fixed label, the prover's role, both engine ids, both nonces,
/// both public keys (each length-prefixed).
std::vector<unsigned char> link_transcript(link_role prover, uint64_t dialer, uint64_t listener,
                                           const std::vector<char>& dialer_nonce,
                                           const std::vector<char>& listener_nonce,
                                           const std::vector<char>& dialer_public,
                                           const std::vector<char>& listener_public);

/// Longest certificate text (PEM chain) a proof may carry, and longest signature.
constexpr size_t max_proof_certificate_bytes = 64 * 1024;
constexpr size_t max_proof_signature_bytes = 1024;

class peer_authenticator {
public:
  /// Loads what the mode needs (the key file, the certificate, its private key with the
  /// passphrase, the CA certificates); a file that cannot be used is errc::config_error.
  static caf::expected<std::shared_ptr<peer_authenticator>> create(const remote_settings& r);

  ~peer_authenticator();
  peer_authenticator(const peer_authenticator&) = delete;
  peer_authenticator& operator=(const peer_authenticator&) = delete;

  peer_auth_mode mode() const noexcept { return mode_; }

  /// This engine's proof over `transcript` (empty in modes open and closed).
  caf::expected<peer_proof> prove(const std::vector<unsigned char>& transcript) const;

  /// Checks another engine's proof over `transcript`. Returns who proved it: "certificate
  /// sha256:<fingerprint> (<subject>)", "shared key" or "unauthenticated"; errc::access_denied
  /// with the reason otherwise (always in mode closed).
  caf::expected<std::string> verify(const std::vector<unsigned char>& transcript,
                                    const peer_proof& proof) const;

  /// In mode certificate: TLS for data connections with the same certificate, key and CA
  /// certificates (data_tls.hpp); null in the other modes (data connections are plain TCP).
  const std::shared_ptr<const data_tls>& data_connection_tls() const noexcept {
    return data_tls_;
  }

  /// Proofs made with an arbitrary certificate and key (PEM texts; for tests that play a peer
  /// with a certificate of their choice). The key need not belong to the certificate.
  static caf::expected<peer_proof> sign_with(const std::string& certificate_pem,
                                             const std::string& key_pem,
                                             const std::vector<unsigned char>& transcript);
  /// HMAC-SHA256 of `transcript` with `key`, as a shared-key proof.
  static peer_proof hmac_with(const std::vector<unsigned char>& key,
                              const std::vector<unsigned char>& transcript);

private:
  struct openssl_state;
  peer_authenticator() = default;
  peer_auth_mode mode_ = peer_auth_mode::closed;
  std::vector<unsigned char> shared_key_;
  std::string certificate_pem_;
  std::unique_ptr<openssl_state> ssl_;
  std::shared_ptr<const data_tls> data_tls_;
};

} // namespace cafshm
