// Values of engine-to-engine transfers (transmit, chunks, remote reads). Registered by the module.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>

#include "cafshm/block_ref.hpp"

namespace cafshm {

/// Where a transmitted block goes on the destination engine.
struct transmit_target {
  std::string process;    // owner of the new block (a registered process name); empty: the
                          // destination engine holds it (readable by all its processes)
  std::string name;       // bind the new block to this name there (optional)
  caf::actor deliver_to;  // receives (delivered_atom, block_ref) once the block is complete
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transmit_target& x) {
  return f(caf::meta::type_name("cafshm::transmit_target"), x.process, x.name, x.deliver_to);
}

/// What a completed transmit answers.
struct transmit_receipt {
  block_ref remote;          // the new block on the destination engine
  uint64_t bytes = 0;        // size of the block
  uint64_t payload_bytes = 0; // bytes actually sent (0 when the destination had the content)
  uint64_t hash = 0;         // XXH3-64 of the block's bytes
  bool cache_hit = false;
  // Between engines only (zero in what transmit returns): the destination's answer to an offer
  // names its data connection (one-time token, host, port) for the payload; port 0: none, the
  // chunks go as link messages.
  uint64_t data_token = 0;
  uint16_t data_port = 0;
  std::string data_host;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transmit_receipt& x) {
  return f(caf::meta::type_name("cafshm::transmit_receipt"), x.remote, x.bytes,
           x.payload_bytes, x.hash, x.cache_hit, x.data_token, x.data_port, x.data_host);
}

/// A sender's announcement of a block, before any payload moves.
struct transmit_offer {
  uint64_t sender = 0;      // engine id of the sender
  uint64_t id = 0;          // transfer id, unique per sender
  uint64_t size = 0;        // bytes of the block
  uint64_t hash = 0;        // XXH3-64 of all bytes
  uint64_t chunk_bytes = 0; // size of every chunk but the last
  transmit_target target;
  block_ref source;         // the block on the sender (for cache fills of remote reads)
  uint64_t source_version = 0;
  bool cache_fill = false;  // true: only fill the destination's cache (a remote read)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transmit_offer& x) {
  return f(caf::meta::type_name("cafshm::transmit_offer"), x.sender, x.id, x.size, x.hash,
           x.chunk_bytes, x.target, x.source, x.source_version, x.cache_fill);
}

/// One chunk of a transfer.
struct transmit_chunk {
  uint64_t sender = 0;
  uint64_t id = 0;
  uint64_t offset = 0;
  uint64_t hash = 0;        // XXH3-64 of data
  std::vector<char> data;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transmit_chunk& x) {
  return f(caf::meta::type_name("cafshm::transmit_chunk"), x.sender, x.id, x.offset, x.hash,
           x.data);
}

/// What an engine shows in a link's handshake to prove its engine id (see peer_actor).
struct peer_proof {
  std::string certificate;     // with remote.tls: the engine's certificate (PEM, leaf first, then
                               // intermediates); empty otherwise
  std::vector<char> signature; // over the link transcript: made with the certificate's private
                               // key (remote.tls), or HMAC-SHA256 with remote.peer_key_file's
                               // key; empty for unauthenticated peers
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_proof& x) {
  return f(caf::meta::type_name("cafshm::peer_proof"), x.certificate, x.signature);
}

/// What authenticates an engine-to-engine message after a link's handshake (see peer_actor):
/// the link token the receiving engine issued (it names the link), the sender's sequence
/// number on that link (strictly increasing per direction) and a MAC (AES-256-GMAC) over the
/// message's type, token, sequence and every field, with the key of that direction that the
/// handshake agreed (plugin/src/engine/link_seal.hpp).
struct peer_seal {
  uint64_t token = 0;
  uint64_t sequence = 0;
  std::vector<char> mac;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_seal& x) {
  return f(caf::meta::type_name("cafshm::peer_seal"), x.token, x.sequence, x.mac);
}

} // namespace cafshm
