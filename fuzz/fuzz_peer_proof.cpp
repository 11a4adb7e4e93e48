// Fuzz target: the proofs of a link's handshake (plugin/src/engine/peer_auth.cpp), as another
// engine, or anything that reaches the peer gateway, would send them: certificate texts and
// signatures that are valid, mutated or arbitrary, over transcripts of arbitrary engine ids,
// nonces and link public keys, in certificate mode (a test CA and one certificate it issued, fuzz/peer_proof/)
// and shared-key mode.
// Properties: verify() never crashes or reads past its input; in certificate mode a proof is
// accepted only with the CA's certificate and a signature that the certificate's key made over
// exactly this transcript (the identity then names that certificate); in shared-key mode only
// with exactly the HMAC of the transcript; a proof that prove() made is accepted, and refused
// for any other transcript; link_transcript() never maps two different handshakes to the same
// bytes.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "cafshm/error.hpp"
#include "fuzz_input.hpp"
#include "peer_auth.hpp"

using namespace cafshm;
using cafshm::fuzz::input;
using cafshm::fuzz::violation;

namespace {

std::string fixture(const char* file) {
  std::string path = std::string{CAFSHM_FUZZ_DIR} + "/peer_proof/" + file;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    violation("missing fixture " + path);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    text.append(buf, n);
  std::fclose(f);
  return text;
}

struct world {
  std::shared_ptr<peer_authenticator> certificate;
  std::shared_ptr<peer_authenticator> shared;
  std::vector<unsigned char> key{'f', 'u', 'z', 'z', '-', 'p', 'e', 'e', 'r', '-', 'k', 'e', 'y',
                                 '-', '1', '6'};
  std::string leaf_pem = fixture("leaf.pem");
  std::string leaf_key = fixture("leaf.key");
  std::string leaf_identity;

  world() {
    remote_settings r;
    r.tls.certificate = std::string{CAFSHM_FUZZ_DIR} + "/peer_proof/leaf.pem";
    r.tls.key = std::string{CAFSHM_FUZZ_DIR} + "/peer_proof/leaf.key";
    r.tls.cafile = std::string{CAFSHM_FUZZ_DIR} + "/peer_proof/ca.pem";
    auto c = peer_authenticator::create(r);
    if (!c)
      violation("certificate mode: " + describe(c.error()));
    certificate = std::move(*c);
    // the shared key is read from a file only its owner may read
    auto path = "/tmp/cafshm-fuzz-peer-key-" + std::to_string(::getpid());
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr)
      violation("cannot write " + path);
    std::fwrite(key.data(), 1, key.size(), f);
    std::fclose(f);
    ::chmod(path.c_str(), 0600);
    remote_settings k;
    k.peer_key_file = path;
    auto s = peer_authenticator::create(k);
    ::unlink(path.c_str());
    if (!s)
      violation("shared-key mode: " + describe(s.error()));
    shared = std::move(*s);
    auto t = link_transcript(link_role::dialer, 1, 2, {}, {}, {}, {});
    auto p = certificate->prove(t);
    if (!p)
      violation("prove: " + describe(p.error()));
    auto who = certificate->verify(t, *p);
    if (!who)
      violation("the fixture's own proof is refused: " + describe(who.error()));
    leaf_identity = *who;
  }
};

world& the_world() {
  static world* w = new world;
  return *w;
}

struct handshake {
  link_role role;
  uint64_t dialer;
  uint64_t listener;
  std::vector<char> dialer_nonce;
  std::vector<char> listener_nonce;
  std::vector<char> dialer_public;   // the link's ephemeral public keys
  std::vector<char> listener_public;

  static handshake read(input& in) {
    handshake h;
    h.role = in.flag() ? link_role::dialer : link_role::listener;
    h.dialer = in.u64();
    h.listener = in.u64();
    auto a = in.text(40);
    auto b = in.text(40);
    h.dialer_nonce.assign(a.begin(), a.end());
    h.listener_nonce.assign(b.begin(), b.end());
    auto c = in.text(40);
    auto d = in.text(40);
    h.dialer_public.assign(c.begin(), c.end());
    h.listener_public.assign(d.begin(), d.end());
    return h;
  }
  std::vector<unsigned char> transcript() const {
    return link_transcript(role, dialer, listener, dialer_nonce, listener_nonce, dialer_public,
                           listener_public);
  }
  bool operator==(const handshake& o) const {
    return role == o.role && dialer == o.dialer && listener == o.listener
           && dialer_nonce == o.dialer_nonce && listener_nonce == o.listener_nonce
           && dialer_public == o.dialer_public && listener_public == o.listener_public;
  }
};

// Flips bytes of `s` at positions the input picks.
template <class Bytes>
void mutate(input& in, Bytes& s) {
  auto n = in.below(4) + 1;
  for (uint64_t i = 0; i < n && !s.empty(); ++i)
    s[in.below(s.size())] ^= static_cast<char>(in.byte() | 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& w = the_world();
  input in{data, size};
  bool certificate_mode = in.flag();
  auto hs = handshake::read(in);
  auto transcript = hs.transcript();
  auto other = handshake::read(in);
  if (!(other == hs) && other.transcript() == transcript)
    violation("two different handshakes have the same transcript");
  auto& auth = certificate_mode ? *w.certificate : *w.shared;
  // a proof this engine made is accepted for its transcript, refused for any other
  auto own = auth.prove(transcript);
  if (!own)
    violation("prove: " + describe(own.error()));
  if (!auth.verify(transcript, *own))
    violation("a proof made by prove() is refused");
  if (!(other == hs) && auth.verify(other.transcript(), *own))
    violation("a proof was accepted for another handshake");
  // a proof built from the input
  peer_proof proof;
  switch (in.below(3)) {
    case 0: proof.certificate = w.leaf_pem; break;
    case 1:
      proof.certificate = w.leaf_pem;
      mutate(in, proof.certificate);
      break;
    default: proof.certificate = in.text(2048);
  }
  switch (in.below(3)) {
    case 0: proof.signature = own->signature; break;
    case 1:
      proof.signature = own->signature;
      mutate(in, proof.signature);
      break;
    default: {
      auto raw = in.text(300);
      proof.signature.assign(raw.begin(), raw.end());
    }
  }
  auto who = auth.verify(transcript, proof);
  if (!who)
    return 0;
  if (certificate_mode) {
    if (*who != w.leaf_identity)
      violation("a proof was accepted with a certificate other than the CA's: " + *who);
    // accepted: the signature must be one the certificate's key made over this transcript,
    // which an own proof with that signature confirms
    peer_proof check{w.leaf_pem, proof.signature};
    if (!auth.verify(transcript, check))
      violation("an accepted signature does not verify with the CA's certificate");
  } else {
    auto expected = peer_authenticator::hmac_with(w.key, transcript);
    if (proof.signature != expected.signature)
      violation("a shared-key proof other than the HMAC of the transcript was accepted");
  }
  return 0;
}
