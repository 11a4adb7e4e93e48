// Per-message authentication of engine-to-engine messages after a link's handshake.
//
// Key agreement: each side of a handshake makes an ephemeral X25519 key (link_key_exchange) and
// sends its public key in the challenge (dialer) or its answer (listener); both public keys are
// part of the transcript that the proofs of peer_auth.hpp sign, so a certificate or shared-key
// proof authenticates them. HKDF-SHA256 over the X25519 secret (salt: both nonces; info: a label,
// both engine ids, both public keys) gives one key per direction (link_keys).
//
// Sealing: every later message (offer, chunk, commit, abort, version, pull) carries a
// peer_seal: the link token, the sender's sequence number on that direction (starting at 1,
// strictly increasing) and a MAC with that direction's key over a label, whether it is a
// request or an answer, the message type, the token, the sequence and every field of the
// message (the chunk's bytes included), each length-prefixed. The MAC is AES-256-GMAC (16 bytes)
// with the nonce (answer or request, sequence), chosen over HMAC-SHA256 because OpenSSL's GMAC
// (AES-NI, PCLMULQDQ) was several times as fast over 1 MiB chunks on the development machine.
// Answers (receipt, done, version) travel as CAF responses and carry a seal too: made with the
// key of the answering side's direction, under the request's token, with a sequence of their
// own (requests reach the receiving engine through its gateway, answers straight: the two
// streams are not ordered with each other). The receiver (link_opener) refuses a wrong MAC and a
// sequence not above the last one it took (a replay), errc::access_denied. Whoever learns a
// token (it travels in the clear) but not the key can neither make a message or an answer the
// receiver takes nor replay one.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "cafshm/engine.hpp"
#include "cafshm/remote.hpp"
#include "peer_auth.hpp"

namespace cafshm {

/// Bytes of an X25519 public key and of each direction's MAC key.
constexpr size_t link_public_key_bytes = 32;
constexpr size_t link_mac_key_bytes = 32;

/// The two keys of a link, as HKDF derived them.
struct link_keys {
  std::vector<unsigned char> dialer_to_listener;
  std::vector<unsigned char> listener_to_dialer;
};

/// One side's ephemeral X25519 key of one handshake (never stored beyond it).
class link_key_exchange {
public:
  static caf::expected<link_key_exchange> generate();

  const std::vector<char>& public_key() const noexcept { return public_; }

  /// Both keys of the link, from this side's private key and the other side's public key.
  /// errc::access_denied for a public key that is no X25519 key (or a low-order point).
  caf::expected<link_keys> derive(const std::vector<char>& peer_public, link_role own_role,
                                  uint64_t dialer, uint64_t listener,
                                  const std::vector<char>& dialer_nonce,
                                  const std::vector<char>& listener_nonce) const;

private:
  struct key_holder;
  std::shared_ptr<key_holder> key_;
  std::vector<char> public_;
};

/// The MAC input of one message: fed field by field (every field of the message in order).
class mac_input {
public:
  mac_input(std::span<const unsigned char> key, bool answer, caf::atom_value type,
            uint64_t token, uint64_t sequence);
  ~mac_input();
  mac_input(const mac_input&) = delete;
  mac_input& operator=(const mac_input&) = delete;

  void add(uint64_t x);
  void add(const block_ref& x);
  void add(const transmit_offer& x);
  void add(const transmit_chunk& x);
  void add(const transmit_receipt& x);
  void add(done_atom) {}
  void add_bytes(std::span<const char> bytes); // length-prefixed

  /// The MAC (16 bytes); empty if OpenSSL failed (such a MAC never matches).
  std::vector<char> finish();

private:
  void raw(const void* p, size_t n);
  struct state;
  std::unique_ptr<state> st_;
};

/// The sending side of one direction of a link: its requests (seal) or its answers (answer,
/// `type` being the request's), each kind with its own sequence.
struct link_sealer {
  uint64_t token = 0; // issued by the receiver of the requests
  std::vector<unsigned char> key;
  uint64_t next_sequence = 1;

  template <class... Ts>
  peer_seal seal(caf::atom_value type, const Ts&... fields) {
    return make(false, type, fields...);
  }
  template <class... Ts>
  peer_seal answer(caf::atom_value type, const Ts&... fields) {
    return make(true, type, fields...);
  }

private:
  template <class... Ts>
  peer_seal make(bool answer, caf::atom_value type, const Ts&... fields) {
    auto sequence = next_sequence++;
    mac_input in{key, answer, type, token, sequence};
    (in.add(fields), ...);
    return {token, sequence, in.finish()};
  }
};

/// The receiving side of one direction of a link.
struct link_opener {
  std::vector<unsigned char> key;
  uint64_t last_sequence = 0; // highest sequence taken
  uint64_t refused = 0;       // messages refused on this link
  bool logged = false;        // a refusal was logged (once per link)

  /// Takes the message if its MAC is right and its sequence above the last one taken;
  /// errc::access_denied otherwise.
  template <class... Ts>
  caf::error open(const peer_seal& s, caf::atom_value type, const Ts&... fields) {
    mac_input in{key, false, type, s.token, s.sequence};
    (in.add(fields), ...);
    return accept(s, in.finish());
  }
  /// The same for an answer to a request of `type`.
  template <class... Ts>
  caf::error open_answer(const peer_seal& s, caf::atom_value type, const Ts&... fields) {
    mac_input in{key, true, type, s.token, s.sequence};
    (in.add(fields), ...);
    return accept(s, in.finish());
  }

private:
  caf::error accept(const peer_seal& s, const std::vector<char>& expected);
};

} // namespace cafshm
