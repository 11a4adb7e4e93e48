#include "remote_link.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include <caf/actor_cast.hpp>
#include <caf/atom.hpp>
#include <caf/node_id.hpp>
#include <caf/send.hpp>
#include <xxhash.h>

#include "bounded_text.hpp"
#include "cafshm/config.hpp"
#include "cafshm/error.hpp"
#include "dial_policy.hpp"
#include "secure_random.hpp"

namespace cafshm::remote {

namespace {

std::chrono::milliseconds timeout(const engine_state& st) {
  return st.config.client.request_timeout;
}

bool in_bounds(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

uint64_t hash_of(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

void free_blocks(engine_state& st, const std::vector<block_ref>& refs) {
  for (const auto& r : refs)
    st.mm->free(st.mm->engine_session(), r);
}

// Records where to send to engine `id`. A dialed link replaces whatever was there; a link the
// peer opened (hello) replaces only another such link, never a dialed one: a hello that claims
// the id of an engine this engine dialed cannot redirect what is sent to that engine. While an
// engine id is linked, only the identity that proved it first (the same certificate, see
// peer_authenticator::verify) may link under it again. Returns false if `link` was not taken.
bool add_peer(engine_pointer self, uint64_t id, peer_link link) {
  auto& st = self->state;
  if (auto i = st.peers.find(id); i != st.peers.end()) {
    if (i->second.identity != link.identity)
      return false;
    if (i->second.dialed && !link.dialed)
      return true; // keeps sending through the dialed link; the hello's token stays valid
    st.peer_by_address.erase(i->second.address);
    st.peers.erase(i);
  }
  self->monitor(link.handle);
  st.peer_by_address[link.address] = id;
  st.peers.emplace(id, std::move(link));
  return true;
}

// Binds a fresh token to engine `id`. Both directions of a pair of engines that dialed each
// other may hold one, so an engine keeps its latest max_tokens_per_peer; older ones end.
void issue_token(engine_state& st, uint64_t id, uint64_t token) {
  auto& tokens = st.token_of_peer[id];
  tokens.push_back(token);
  st.issued_tokens[token] = id;
  while (tokens.size() > max_tokens_per_peer) {
    st.issued_tokens.erase(tokens.front());
    tokens.pop_front();
  }
}

// The engine id a peer message comes from: the one its token was issued to.
caf::expected<uint64_t> peer_of(const engine_state& st, uint64_t token) {
  if (auto i = st.issued_tokens.find(token); i != st.issued_tokens.end())
    return i->second;
  return make_error(errc::access_denied, "peer message without a valid link token");
}

// Links to host:port and calls f(expected<peer engine id>): finds the gateway there (a port
// publishes either the gateway or the engine, which names its gateway), then runs the
// handshake, each side proving its engine id.
template <class F>
void connect(engine_pointer self, const std::string& host, uint16_t port, F f) {
  auto& st = self->state;
  std::string address = host + ":" + std::to_string(port);
  if (!st.connector) {
    f(make_error(errc::config_error, "remote engines need caf::io::middleman in this process"));
    return;
  }
  if (st.auth->mode() == peer_auth_mode::closed) {
    f(st.auth->verify({}, {}).error());
    return;
  }
  auto failed = [f, address](const char* step) {
    return [f, address, step](caf::error& e) mutable {
      if (e.category() == error_category && code_of(e) != errc::peer_failure)
        f(make_error(code_of(e), "engine at " + address + " refused the link (" + step
                                   + "): " + describe(e)));
      else
        f(make_error(errc::peer_failure,
                     "engine at " + address + " did not answer " + step + ": " + describe(e)));
    };
  };
  self->request(st.connector, timeout(st), caf::connect_atom::value, host, port)
    .then(
      [self, f, address, failed](caf::node_id&, caf::strong_actor_ptr& ptr,
                                 std::set<std::string>&) mutable {
        if (!ptr) {
          f(make_error(errc::peer_failure, "no engine published at " + address));
          return;
        }
        auto published = caf::actor_cast<caf::actor>(ptr);
        self->request(published, timeout(self->state), gateway_atom::value)
          .then(
            [self, f, address, failed](caf::actor& found) mutable {
              auto gw = caf::actor_cast<peer_actor>(found);
              if (!gw) {
                f(make_error(errc::peer_failure, "engine at " + address + " has no gateway"));
                return;
              }
              auto& st = self->state;
              auto own = st.mm->engine_id();
              std::vector<char> nonce(link_nonce_bytes);
              secure_random(std::as_writable_bytes(std::span{nonce}));
              self->request(gw, timeout(st), challenge_atom::value, own, nonce)
                .then(
                  [self, f, address, failed, gw, own, nonce](uint64_t id, std::vector<char>& theirs,
                                                             peer_proof& proof) mutable {
                    auto& st = self->state;
                    if (id == 0 || id == own || theirs.size() != link_nonce_bytes) {
                      f(make_error(errc::peer_failure,
                                   "engine at " + address + " answered an invalid challenge"));
                      return;
                    }
                    auto who = st.auth->verify(
                      link_transcript(link_role::listener, own, id, nonce, theirs), proof);
                    if (!who) {
                      f(make_error(errc::access_denied, "engine at " + address
                                                          + " did not prove engine id "
                                                          + std::to_string(id) + ": "
                                                          + describe(who.error())));
                      return;
                    }
                    auto mine = st.auth->prove(
                      link_transcript(link_role::dialer, own, id, nonce, theirs));
                    if (!mine) {
                      f(std::move(mine.error()));
                      return;
                    }
                    auto reverse = secure_token(); // for the peer's messages back
                    self
                      ->request(gw, timeout(st), hello_atom::value, own, reverse,
                                caf::actor_cast<caf::actor>(st.gateway), theirs,
                                std::move(*mine))
                      .then(
                        [self, f, address, gw, id, reverse,
                         who = std::move(*who)](uint64_t listener, uint64_t token) mutable {
                          if (listener != id || token == 0) {
                            f(make_error(errc::peer_failure, "engine at " + address
                                                               + " answered an invalid hello"));
                            return;
                          }
                          issue_token(self->state, id, reverse);
                          if (!add_peer(self, id, peer_link{gw, token, address, true, who})) {
                            f(make_error(errc::access_denied,
                                         "engine id " + std::to_string(id) + " at " + address
                                           + " is linked already with another identity"));
                            return;
                          }
                          f(id);
                        },
                        failed("hello"));
                  },
                  failed("the challenge"));
            },
            failed("where its gateway is"));
      },
      [self, f, address](caf::error& e) mutable {
        f(make_error(errc::peer_failure,
                     "cannot reach engine at " + address + ": " + self->system().render(e)));
      });
}

// Resolves "host:port" or a configured peer name, linking on demand.
template <class F>
void with_peer(engine_pointer self, const std::string& spec, F f) {
  auto& st = self->state;
  std::string address = spec;
  for (const auto& p : st.config.remote.peers)
    if (p.name == spec)
      address = p.address.host + ":" + std::to_string(p.address.port);
  if (auto i = st.peer_by_address.find(address); i != st.peer_by_address.end()) {
    f(caf::expected<uint64_t>{i->second});
    return;
  }
  auto ep = parse_endpoint(address);
  if (!ep) {
    f(caf::expected<uint64_t>{make_error(errc::invalid_argument,
                                         quote_bounded(spec)
                                           + " is neither HOST:PORT nor a configured peer")});
    return;
  }
  if (!dial_allowed(st.config.remote, ep->host, ep->port)) {
    f(caf::expected<uint64_t>{make_error(
      errc::peer_not_allowed,
      "this engine dials only configured peers (remote.peers) and hosts of remote.allow_dial, not "
        + quote_bounded(address))});
    return;
  }
  connect(self, ep->host, ep->port, f);
}

outgoing_transfer* find_out(engine_pointer self, uint64_t id) {
  auto i = self->state.outgoing.find(id);
  return i == self->state.outgoing.end() ? nullptr : &i->second;
}

void unpin(engine_state& st, const outgoing_transfer& t) {
  st.mm->detach(st.mm->engine_session(), t.ref);
}

void fail(engine_pointer self, uint64_t id, caf::error err) {
  auto* t = find_out(self, id);
  if (t == nullptr)
    return;
  auto& st = self->state;
  auto p = st.peers.find(t->peer);
  if (p != st.peers.end())
    self->send(p->second.handle, abort_atom::value, p->second.token, id);
  if (err.category() != error_category) // CAF's own, e.g. a request to a cut-off peer timed out
    err = make_error(errc::peer_failure,
                     "transfer to " + (p != st.peers.end() ? p->second.address : "the peer")
                       + " failed: " + describe(err));
  unpin(st, *t);
  if (t->is_pull)
    t->pulled.deliver(std::move(err));
  else
    t->receipt.deliver(std::move(err));
  st.outgoing.erase(id);
}

void finish(engine_pointer self, uint64_t id, transmit_receipt receipt) {
  auto* t = find_out(self, id);
  if (t == nullptr)
    return;
  unpin(self->state, *t);
  receipt.payload_bytes = t->payload_bytes;
  if (t->is_pull)
    t->pulled.deliver(t->offer.source_version);
  else
    t->receipt.deliver(std::move(receipt));
  self->state.outgoing.erase(id);
}

void pump(engine_pointer self, uint64_t id);

void send_chunk(engine_pointer self, uint64_t id, uint64_t offset) {
  auto* t = find_out(self, id);
  auto peer = self->state.peers.find(t->peer);
  if (peer == self->state.peers.end()) {
    fail(self, id, make_error(errc::peer_failure, "the destination engine went down"));
    return;
  }
  uint64_t n = std::min<uint64_t>(t->offer.chunk_bytes, t->bytes.size() - offset);
  auto* first = reinterpret_cast<const char*>(t->bytes.data()) + offset;
  transfer_chunk c{t->offer.sender, id, offset, 0, std::vector<char>(first, first + n)};
  c.hash = XXH3_64bits(c.data.data(), c.data.size());
  ++t->in_flight;
  t->payload_bytes += n;
  self->request(peer->second.handle, timeout(self->state), chunk_atom::value,
                peer->second.token, std::move(c))
    .then(
      [self, id, n](done_atom) {
        if (auto* t = find_out(self, id)) {
          --t->in_flight;
          t->acked += n;
          pump(self, id);
        }
      },
      [self, id, offset](caf::error& e) {
        auto* t = find_out(self, id);
        if (t == nullptr)
          return;
        --t->in_flight;
        if (code_of(e) == errc::checksum_mismatch && t->retries_left > 0) {
          --t->retries_left;
          send_chunk(self, id, offset);
        } else {
          fail(self, id, std::move(e));
        }
      });
}

void commit_transfer(engine_pointer self, uint64_t id) {
  auto* t = find_out(self, id);
  auto peer = self->state.peers.find(t->peer);
  if (peer == self->state.peers.end()) {
    fail(self, id, make_error(errc::peer_failure, "the destination engine went down"));
    return;
  }
  self->request(peer->second.handle, timeout(self->state), commit_atom::value,
                peer->second.token, id)
    .then([self, id](transmit_receipt& r) { finish(self, id, std::move(r)); },
          [self, id](caf::error& e) { fail(self, id, std::move(e)); });
}

void pump(engine_pointer self, uint64_t id) {
  auto* t = find_out(self, id);
  if (t == nullptr)
    return;
  uint64_t size = t->bytes.size();
  while (t->in_flight < std::max<uint32_t>(1, self->state.config.remote.window_chunks)
         && t->next_offset < size) {
    auto offset = t->next_offset;
    t->next_offset += std::min<uint64_t>(t->offer.chunk_bytes, size - offset);
    send_chunk(self, id, offset);
    if ((t = find_out(self, id)) == nullptr)
      return;
  }
  if (t->in_flight == 0 && t->acked == size)
    commit_transfer(self, id);
}

// Pins `ref`, offers it to `peer` and runs the transfer; the promise in `t` ends it.
void start(engine_pointer self, uint64_t peer, const block_ref& ref, outgoing_transfer t) {
  auto& st = self->state;
  auto& mm = *st.mm;
  auto pin = mm.attach(mm.engine_session(), ref, access_mode::read);
  auto bytes = mm.engine_bytes(ref);
  if (!pin || !bytes) {
    auto err = pin ? bytes.error() : pin.error();
    if (pin)
      mm.detach(mm.engine_session(), ref);
    if (t.is_pull)
      t.pulled.deliver(std::move(err));
    else
      t.receipt.deliver(std::move(err));
    return;
  }
  uint64_t id = secure_token();
  while (st.outgoing.count(id) != 0)
    id = secure_token();
  t.peer = peer;
  t.ref = ref;
  t.bytes = *bytes;
  t.retries_left = st.config.remote.checksum_retries;
  t.offer.sender = mm.engine_id();
  t.offer.id = id;
  t.offer.size = ref.size;
  t.offer.hash = hash_of(t.bytes);
  t.offer.chunk_bytes = st.config.remote.chunk_bytes;
  t.offer.source = ref;
  auto handle = st.peers.at(peer).handle;
  auto token = st.peers.at(peer).token;
  auto offer = t.offer;
  st.outgoing.emplace(id, std::move(t));
  self->request(handle, timeout(st), offer_atom::value, token, std::move(offer))
    .then(
      [self, id](transmit_receipt& r) {
        if (r.remote.valid()) // the destination had the content: no payload
          finish(self, id, std::move(r));
        else
          pump(self, id);
      },
      [self, id](caf::error& e) { fail(self, id, std::move(e)); });
}

// Names the block, hands it to its destination process and tells the target actor.
caf::expected<block_ref> deliver(engine_state& st, const incoming_transfer& in) {
  auto& mm = *st.mm;
  auto engine = mm.engine_session();
  const auto& target = in.offer.target;
  if (!target.name.empty())
    if (auto ok = mm.name(engine, in.block, target.name); !ok)
      return ok.error();
  block_ref result = in.block;
  if (in.destination == admin::engine_slot) // published: readable by every process here
    mm.conceal(in.block, false);
  if (in.destination != admin::engine_slot) {
    auto moved = mm.transfer(engine, in.block, in.destination);
    if (!moved)
      return moved.error();
    result = *moved;
  }
  if (target.deliver_to)
    caf::anon_send(target.deliver_to, delivered_atom::value, result);
  return result;
}

// Keeps a copy of a received block in the cache, if it fits.
void remember(engine_state& st, const block_ref& block, std::span<const std::byte> bytes,
              uint64_t hash) {
  if (!st.cache || st.cache->capacity() < bytes.size())
    return;
  auto& mm = *st.mm;
  auto copy = mm.allocate(mm.engine_session(), bytes.size());
  if (!copy)
    return; // the arena is too full to cache: not an error of the transfer
  mm.conceal(*copy, true); // a copy of another process's block: not for every process to read
  std::memcpy(mm.engine_bytes(*copy)->data(), bytes.data(), bytes.size());
  (void) block;
  free_blocks(st, st.cache->insert({*copy, hash, std::nullopt, 0}));
}

std::vector<char> copy_range(engine_state& st, const block_ref& local, uint64_t offset,
                             uint64_t length) {
  auto bytes = st.mm->engine_bytes(local);
  auto* first = reinterpret_cast<const char*>(bytes->data()) + offset;
  return {first, first + length};
}

} // namespace

// -- linking ------------------------------------------------------------------------------------

caf::result<uint64_t> link(engine_pointer self, const std::string& host, uint16_t port) {
  auto rp = self->make_response_promise<uint64_t>();
  with_peer(self, host + ":" + std::to_string(port), [rp](caf::expected<uint64_t> id) mutable {
    if (id)
      rp.deliver(*id);
    else
      rp.deliver(std::move(id.error()));
  });
  return rp;
}

caf::result<uint64_t, uint64_t> hello(engine_pointer self, uint64_t peer_id,
                                     uint64_t reverse_token, caf::actor gateway,
                                     std::string identity) {
  auto& st = self->state;
  auto handle = caf::actor_cast<peer_actor>(gateway);
  if (!handle || peer_id == 0 || peer_id == st.mm->engine_id() || reverse_token == 0)
    return make_error(errc::invalid_argument, "hello needs a gateway, an engine id and a token");
  if (st.token_of_peer.count(peer_id) == 0 && st.token_of_peer.size() >= max_inbound_peers)
    return make_error(errc::capacity_exceeded,
                      "this engine accepts at most " + std::to_string(max_inbound_peers)
                        + " peer engines");
  auto token = secure_token();
  auto node = handle.node();
  if (!add_peer(self, peer_id,
                peer_link{handle, reverse_token, "node " + to_string(node), false, identity}))
    return make_error(errc::access_denied, "engine id " + std::to_string(peer_id)
                                             + " is linked already with another identity");
  issue_token(st, peer_id, token);
  return {st.mm->engine_id(), token};
}

// -- sending ------------------------------------------------------------------------------------

caf::result<transmit_receipt> transmit(engine_pointer self, const session& s,
                                       const block_ref& ref, const std::string& peer,
                                       transmit_target target) {
  if (auto ok = self->state.mm->authorize(s, ref, access_mode::read); !ok)
    return std::move(ok.error());
  auto rp = self->make_response_promise<transmit_receipt>();
  with_peer(self, peer, [self, s, ref, target, rp](caf::expected<uint64_t> id) mutable {
    if (!id) {
      rp.deliver(std::move(id.error()));
      return;
    }
    if (auto ok = self->state.mm->authorize(s, ref, access_mode::read); !ok) {
      rp.deliver(std::move(ok.error())); // freed while we linked
      return;
    }
    outgoing_transfer t;
    t.offer.target = std::move(target);
    t.receipt = rp;
    start(self, *id, ref, std::move(t));
  });
  return rp;
}

caf::result<uint64_t> version(engine_pointer self, uint64_t token, const block_ref& ref) {
  if (auto from = peer_of(self->state, token); !from)
    return std::move(from.error());
  return self->state.mm->exported_version(ref);
}

caf::result<uint64_t> pull(engine_pointer self, uint64_t token, const block_ref& ref) {
  auto& st = self->state;
  auto requester = peer_of(st, token);
  if (!requester)
    return std::move(requester.error());
  auto v = st.mm->exported_version(ref);
  if (!v)
    return std::move(v.error());
  if (st.peers.count(*requester) == 0)
    return make_error(errc::peer_failure, "pull from an engine that is not linked");
  auto rp = self->make_response_promise<uint64_t>();
  outgoing_transfer t;
  t.is_pull = true;
  t.pulled = rp;
  t.offer.cache_fill = true;
  t.offer.source_version = *v;
  start(self, *requester, ref, std::move(t));
  return rp;
}

// -- receiving ----------------------------------------------------------------------------------

caf::result<transmit_receipt> offer(engine_pointer self, uint64_t token, transfer_offer& o) {
  auto& st = self->state;
  auto& mm = *st.mm;
  auto engine = mm.engine_session();
  auto from = peer_of(st, token);
  if (!from)
    return std::move(from.error());
  o.sender = *from; // who sends is what the link says, not what the offer claims
  auto key = std::make_pair(o.sender, o.id);
  if (o.size == 0 || o.chunk_bytes == 0 || st.incoming.count(key) != 0)
    return make_error(errc::invalid_argument, "malformed or duplicate transfer offer");
  if (o.cache_fill) {
    // Only the answer to a pull of this engine, from the engine that owns the block.
    auto pending = st.pending_pulls.find({o.source.engine, o.source.block, o.source.generation});
    if (o.source.engine != *from || pending == st.pending_pulls.end()
        || o.size != o.source.size)
      return make_error(errc::access_denied, "a cache fill nobody asked this engine for");
    if (!st.cache || st.cache->capacity() < o.size)
      return make_error(errc::invalid_argument,
                        "remote reads need remote.cache >= the block size");
    st.pending_pulls.erase(pending);
  }
  incoming_transfer in;
  in.destination = admin::engine_slot;
  if (!o.cache_fill && !o.target.process.empty()) {
    auto slot = mm.find_process(engine, o.target.process);
    if (!slot)
      return std::move(slot.error());
    in.destination = *slot;
  }
  if (!o.cache_fill && st.cache) {
    if (const auto* hit = st.cache->find(o.hash, o.size)) {
      auto block = mm.allocate(engine, o.size);
      if (!block)
        return std::move(block.error());
      mm.conceal(*block, true); // until delivered
      auto src = mm.engine_bytes(hit->local);
      std::memcpy(mm.engine_bytes(*block)->data(), src->data(), o.size);
      in.offer = o;
      in.block = *block;
      auto delivered = deliver(st, in);
      if (!delivered) {
        mm.free(engine, *block);
        return std::move(delivered.error());
      }
      ++st.cache->counters().hits;
      st.cache->counters().bytes_saved += o.size;
      return transmit_receipt{*delivered, o.size, 0, o.hash, true};
    }
    ++st.cache->counters().misses;
  }
  auto block = mm.allocate(engine, o.size); // out_of_memory refuses before any payload moves
  if (!block)
    return std::move(block.error());
  mm.conceal(*block, true); // partial and not yet delivered: only the engine reads it
  in.offer = std::move(o);
  in.block = *block;
  in.bytes = *mm.engine_bytes(*block);
  in.from = caf::actor_cast<caf::actor_addr>(self->current_sender());
  in.last_activity = std::chrono::steady_clock::now();
  if (in.from)
    self->monitor(in.from);
  st.incoming.emplace(key, std::move(in));
  return transmit_receipt{}; // no receipt yet: send the chunks
}

caf::result<done_atom> chunk(engine_pointer self, uint64_t token, transfer_chunk& c) {
  auto& st = self->state;
  auto from = peer_of(st, token);
  if (!from)
    return std::move(from.error());
  auto i = st.incoming.find({*from, c.id});
  if (i == st.incoming.end())
    return make_error(errc::stale_block, "chunk of an unknown transfer");
  auto& in = i->second;
  if (!in_bounds(c.offset, c.data.size(), in.bytes.size())) {
    st.mm->free(st.mm->engine_session(), in.block);
    st.incoming.erase(i);
    return make_error(errc::out_of_range, "chunk beyond the end of the block; transfer aborted");
  }
  if (XXH3_64bits(c.data.data(), c.data.size()) != c.hash)
    return make_error(errc::checksum_mismatch,
                      "chunk at offset " + std::to_string(c.offset) + " failed its checksum");
  if (!c.data.empty()) // an empty chunk's data() is null: memcpy(p, nullptr, 0) is UB
    std::memcpy(in.bytes.data() + c.offset, c.data.data(), c.data.size());
  in.last_activity = std::chrono::steady_clock::now();
  return done_atom::value;
}

caf::result<transmit_receipt> commit(engine_pointer self, uint64_t token, uint64_t id) {
  auto& st = self->state;
  auto& mm = *st.mm;
  auto from = peer_of(st, token);
  if (!from)
    return std::move(from.error());
  auto i = st.incoming.find({*from, id});
  if (i == st.incoming.end())
    return make_error(errc::stale_block, "commit of an unknown transfer");
  auto in = std::move(i->second);
  st.incoming.erase(i);
  auto hash = hash_of(in.bytes);
  if (hash != in.offer.hash) {
    mm.free(mm.engine_session(), in.block);
    return make_error(errc::checksum_mismatch, "the received block does not match its checksum");
  }
  if (in.offer.cache_fill) {
    free_blocks(st, st.cache->insert({in.block, hash, in.offer.source, in.offer.source_version}));
    return transmit_receipt{in.block, in.bytes.size(), 0, hash, false};
  }
  remember(st, in.block, in.bytes, hash);
  auto delivered = deliver(st, in);
  if (!delivered) {
    mm.free(mm.engine_session(), in.block);
    return std::move(delivered.error());
  }
  return transmit_receipt{*delivered, in.bytes.size(), 0, hash, false};
}

void abort(engine_pointer self, uint64_t token, uint64_t id) {
  auto& st = self->state;
  auto from = peer_of(st, token);
  if (!from)
    return;
  if (auto i = st.incoming.find({*from, id}); i != st.incoming.end()) {
    st.mm->free(st.mm->engine_session(), i->second.block);
    st.incoming.erase(i);
  }
}

// -- remote reads -------------------------------------------------------------------------------

caf::result<std::vector<char>> read(engine_pointer self, const session& s, const block_ref& ref,
                                    uint64_t offset, uint64_t length) {
  auto& st = self->state;
  if (auto ok = st.mm->check_session(s); !ok)
    return std::move(ok.error());
  auto peer = st.peers.find(ref.engine);
  if (peer == st.peers.end())
    return make_error(errc::stale_block, to_string(ref) + " belongs to no linked engine");
  if (!in_bounds(offset, length, ref.size))
    return make_error(errc::out_of_range, "read beyond the end of " + to_string(ref));
  if (!st.cache)
    return make_error(errc::invalid_argument, "remote reads need remote.cache > 0");
  auto rp = self->make_response_promise<std::vector<char>>();
  auto handle = peer->second.handle;
  auto token = peer->second.token;
  auto serve = [self, rp, ref, offset, length](uint64_t version, bool fetched) mutable {
    auto& st = self->state;
    std::vector<block_ref> stale;
    const auto* hit = st.cache->find_source(ref, version, stale);
    free_blocks(st, stale);
    if (hit == nullptr)
      return false;
    if (!fetched) {
      ++st.cache->counters().hits;
      st.cache->counters().bytes_saved += ref.size;
    }
    rp.deliver(copy_range(st, hit->local, offset, length));
    return true;
  };
  self->request(handle, timeout(st), version_atom::value, token, ref)
    .then(
      [self, rp, ref, handle, token, serve](uint64_t v) mutable {
        if (serve(v, false))
          return;
        ++self->state.cache->counters().misses;
        auto key = std::make_tuple(ref.engine, ref.block, ref.generation);
        self->state.pending_pulls.insert(key); // consumed by the cache fill offer
        self->request(handle, timeout(self->state) * 4, pull_atom::value, token, ref)
          .then(
            [rp, serve](uint64_t pulled) mutable {
              if (!serve(pulled, true))
                rp.deliver(make_error(errc::peer_failure, "the fetched block did not stay cached"));
            },
            [self, rp, key](caf::error& e) mutable {
              if (auto i = self->state.pending_pulls.find(key);
                  i != self->state.pending_pulls.end())
                self->state.pending_pulls.erase(i);
              rp.deliver(std::move(e));
            });
      },
      [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

// -- failures and numbers -----------------------------------------------------------------------

bool peer_down(engine_pointer self, const caf::actor_addr& source) {
  auto& st = self->state;
  bool was_peer = false;
  for (auto i = st.peers.begin(); i != st.peers.end();) {
    if (i->second.handle.address() != source) {
      ++i;
      continue;
    }
    was_peer = true;
    auto id = i->first;
    if (auto t = st.token_of_peer.find(id); t != st.token_of_peer.end()) {
      for (auto token : t->second)
        st.issued_tokens.erase(token);
      st.token_of_peer.erase(t);
    }
    st.peer_by_address.erase(i->second.address);
    i = st.peers.erase(i);
    std::vector<uint64_t> failed;
    for (auto& [tid, t] : st.outgoing)
      if (t.peer == id)
        failed.push_back(tid);
    for (auto tid : failed)
      fail(self, tid, make_error(errc::peer_failure, "the destination engine went down"));
  }
  for (auto i = st.incoming.begin(); i != st.incoming.end();) {
    if (i->second.from == source) {
      st.mm->free(st.mm->engine_session(), i->second.block);
      i = st.incoming.erase(i);
    } else {
      ++i;
    }
  }
  return was_peer;
}

void expire_idle(engine_pointer self, std::chrono::milliseconds idle) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  for (auto i = st.incoming.begin(); i != st.incoming.end();) {
    if (now - i->second.last_activity > idle) {
      st.mm->free(st.mm->engine_session(), i->second.block);
      i = st.incoming.erase(i);
    } else {
      ++i;
    }
  }
}

void fill_stats(const engine_state& st, engine_stats& stats) {
  for (const auto& [id, p] : st.peers)
    stats.peers.push_back(p.address);
  std::sort(stats.peers.begin(), stats.peers.end());
  stats.transfers_out = static_cast<uint32_t>(st.outgoing.size());
  for (const auto& [id, t] : st.outgoing) {
    auto p = st.peers.find(t.peer);
    stats.outgoing.push_back(
      {id, p == st.peers.end() ? std::string{} : p->second.address, t.bytes.size(), t.acked});
  }
  stats.transfers_in = static_cast<uint32_t>(st.incoming.size());
  if (!st.cache)
    return;
  stats.cache_capacity = st.cache->capacity();
  stats.cache_bytes = st.cache->bytes();
  stats.cache_entries = static_cast<uint32_t>(st.cache->size());
  const auto& c = st.cache->counters();
  stats.cache_hits = c.hits;
  stats.cache_misses = c.misses;
  stats.cache_evictions = c.evictions;
  stats.cache_bytes_saved = c.bytes_saved;
}

} // namespace cafshm::remote
