#include "remote_link.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iostream>
#include <optional>
#include <set>

#include <caf/actor_cast.hpp>
#include <caf/atom.hpp>
#include <caf/node_id.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <xxhash.h>

#include "bounded_text.hpp"
#include "cafshm/config.hpp"
#include "cafshm/error.hpp"
#include "dial_policy.hpp"
#include "secure_random.hpp"

namespace cafshm::remote {

namespace {

using clock = std::chrono::steady_clock;

// Handshake and small requests: the client's request timeout.
std::chrono::milliseconds timeout(const engine_state& st) {
  return st.config.client.request_timeout;
}

// Requests of a transmit (offer, chunk, commit) wait without a limit of their own: queued
// behind other transmits on a slow link they may take long. A transmit ends when its peer goes
// down or says nothing at all for remote.stall_timeout (check_stalls).
constexpr caf::infinite_t no_request_timeout = caf::infinite;

void log_line(const engine_state& st, const std::string& text) {
  std::cerr << "cafshm engine '" << st.config.engine.name << "': " << text << std::endl;
}

// Notes an answer from peer `id` (and, if `t` is given, progress of that transmit).
void heard_from(engine_state& st, uint64_t id, outgoing_transmit* t = nullptr) {
  auto now = clock::now();
  if (auto p = st.peers.find(id); p != st.peers.end())
    p->second.last_heard = now;
  if (t != nullptr)
    t->last_progress = now;
}

// An engine id as `cafshm stat` shows it (hexadecimal).
std::string hex_id(uint64_t id) {
  char text[17];
  auto end = std::to_chars(text, text + sizeof text, id, 16).ptr;
  return {text, end};
}

// "name (host:port)" for a configured peer, else the address it was linked by.
std::string describe_peer(const peer_link& p) {
  return p.name.empty() ? p.address : p.name + " (" + p.address + ")";
}

// Chunks a receiver holds ahead of a gap at most (a sender keeps remote.window_chunks <= 64 in
// flight, so only a misbehaving one gets near).
constexpr size_t max_chunks_ahead = 1024;

bool in_bounds(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

uint64_t hash_of(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

// The XXH3 of a block this engine sends: the one computed before while the block's stamp is
// unchanged (no request wrote it, no view that may write it was opened since, none is open),
// else computed now and remembered if no view that may write it is open.
uint64_t digest_of(engine_state& st, const block_ref& ref, std::span<const std::byte> bytes) {
  auto stamp = st.mm->content_stamp(ref);
  if (stamp)
    if (auto d = st.digests.find(ref.block); d != st.digests.end() && d->second.stamp == *stamp) {
      ++st.digests_reused;
      return d->second.hash;
    }
  auto hash = hash_of(bytes);
  if (stamp)
    st.digests[ref.block] = {*stamp, hash};
  return hash;
}

void free_blocks(engine_state& st, const std::vector<block_ref>& refs) {
  for (const auto& r : refs)
    st.mm->free(st.mm->engine_session(), r);
}

// Frees the block of an incoming transmit that ends undelivered, after stopping its data
// connection (whose thread writes into the block) and using up its token.
void drop_incoming(engine_state& st, incoming_transmit& in) {
  if (in.data) {
    if (st.data_port)
      st.data_port->forget(in.data_token);
    in.data->cancel();
    in.data.reset();
  }
  st.mm->free(st.mm->engine_session(), in.block);
}

// Ends `t`'s data connection, if any, before its block is unpinned.
void stop_sending(outgoing_transmit& t) {
  if (t.data) {
    t.data->cancel();
    t.data.reset();
  }
}

// Where this engine's data connection threads report their end: the engine actor, with the
// gateway key (a weak handle: a thread never keeps the engine alive).
data_done report_to(engine_pointer self, uint64_t peer, uint64_t id, bool incoming) {
  auto engine = caf::actor_cast<caf::actor_addr>(self);
  auto key = self->state.gateway_key;
  return [engine, key, peer, id, incoming](uint64_t digest, caf::error err) {
    if (auto a = caf::actor_cast<caf::actor>(engine))
      caf::anon_send(a, data_end_atom::value, key, peer, id, incoming, digest, std::move(err));
  };
}

// The host of the engine's remote listener: its data port listens on the same interface.
const std::string& listener_host(const engine_state& st) {
  return st.config.remote.listen.port != 0 ? st.config.remote.listen.host
                                            : st.config.engine.listen.host;
}

bool wildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
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
  for (size_t i = 0; i < st.config.remote.peers.size(); ++i) {
    const auto& p = st.config.remote.peers[i];
    if (link.dialed && link.address == p.address.host + ":" + std::to_string(p.address.port)) {
      link.name = p.name;
      st.configured[i].engine_id = id;
    }
  }
  st.peer_by_address[link.address] = id;
  st.peers.emplace(id, std::move(link));
  return true;
}

// Binds a fresh token to engine `id`, its messages opened with `key` (the key of the peer's
// direction of that handshake), this engine's answers to them sealed with `answer_key`. Both
// directions of a pair of engines that dialed each other may hold one, so an engine keeps its
// latest max_tokens_per_peer; older ones end.
void issue_token(engine_state& st, uint64_t id, uint64_t token, std::vector<unsigned char> key,
                 std::vector<unsigned char> answer_key) {
  auto& tokens = st.token_of_peer[id];
  tokens.push_back(token);
  st.issued_tokens[token]
    = issued_link{id, link_opener{std::move(key)}, link_sealer{token, std::move(answer_key)}};
  while (tokens.size() > max_tokens_per_peer) {
    st.issued_tokens.erase(tokens.front());
    tokens.pop_front();
  }
}

// A peer message or answer that failed its seal: counted, logged once per link.
void refused(engine_state& st, link_opener& link, uint64_t peer, const std::string& what,
             const caf::error& err) {
  ++st.peer_messages_refused;
  if (link.logged)
    return;
  link.logged = true;
  log_line(st, "refused " + what + " on the link with engine " + hex_id(peer) + ": "
                 + describe(err) + " (further refusals on this link are counted, not logged)");
}

// The engine id a peer message comes from: the one its token was issued to, if the message's
// MAC is that of the link's key and its sequence above the last one taken (link_seal.hpp). A
// refusal is counted, and logged once per link.
template <class... Ts>
caf::expected<uint64_t> peer_of(engine_state& st, const peer_seal& seal, caf::atom_value type,
                                const Ts&... fields) {
  auto i = st.issued_tokens.find(seal.token);
  if (i == st.issued_tokens.end())
    return make_error(errc::access_denied, "peer message without a valid link token");
  auto& link = i->second;
  if (auto err = link.in.open(seal, type, fields...)) {
    refused(st, link.in, link.peer, "a " + to_string(type), err);
    return err;
  }
  return link.peer;
}

// Checks the answer of peer `peer` to this engine's request of `type` (link_seal.hpp).
template <class... Ts>
caf::error check_answer(engine_state& st, uint64_t peer, link_opener& answers,
                        const peer_seal& seal, caf::atom_value type, const Ts&... fields) {
  auto err = answers.open_answer(seal, type, fields...);
  if (err)
    refused(st, answers, peer, "the answer to a " + to_string(type), err);
  return err;
}

// The seal of this engine's answer of `x` to a request of `type` that came under `token`.
template <class T>
caf::result<T, peer_seal> sealed(engine_state& st, uint64_t token, caf::atom_value type,
                                 caf::result<T> r) {
  if (r.flag != caf::rt_value)
    return std::move(r.err);
  auto x = r.value.template get_as<T>(0);
  auto i = st.issued_tokens.find(token);
  if (i == st.issued_tokens.end())
    return make_error(errc::peer_failure, "the link ended before the answer");
  auto seal = i->second.answers.answer(type, x);
  return {std::move(x), std::move(seal)};
}

// Links to host:port and calls f(expected<peer engine id>): finds the gateway there (a port
// publishes either the gateway or the engine, which names its gateway), then runs the
// handshake, each side proving its engine id.
template <class F>
void connect(engine_pointer self, const std::string& host, uint16_t port, F done) {
  auto& st = self->state;
  std::string address = host + ":" + std::to_string(port);
  // A peer of another protocol version is logged once per address (until it links).
  auto f = [self, address, done](caf::expected<uint64_t> result) mutable {
    auto& st = self->state;
    if (result)
      st.version_refused.erase(address);
    else if (code_of(result.error()) == errc::version_mismatch
             && st.version_refused.size() < max_logged_version_refusals
             && st.version_refused.insert(address).second)
      log_line(st, "not linked to " + address + ": " + describe(result.error()));
    done(std::move(result));
  };
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
      if (e == caf::sec::unexpected_message || e == caf::sec::unexpected_response)
        f(make_error(errc::version_mismatch,
                     "engine at " + address + " cannot read " + step + " of protocol version "
                       + std::to_string(protocol_version)
                       + " (or answered it in another shape): it is no cafshm engine of this "
                         "version"));
      else if (e.category() == error_category && code_of(e) != errc::peer_failure)
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
              auto exchange = link_key_exchange::generate();
              if (!exchange) {
                f(std::move(exchange.error()));
                return;
              }
              self->request(gw, timeout(st), challenge_atom::value, protocol_version, own, nonce,
                            exchange->public_key())
                .then(
                  [self, f, address, failed, gw, own, nonce,
                   exchange = std::move(*exchange)](uint32_t version, uint64_t id,
                                                    std::vector<char>& theirs,
                                                    std::vector<char>& their_public,
                                                    peer_proof& proof) mutable {
                    auto& st = self->state;
                    if (version != protocol_version) {
                      f(make_error(errc::version_mismatch,
                                   "engine at " + address + " speaks protocol version "
                                     + std::to_string(version) + "; this engine speaks protocol "
                                     "version " + std::to_string(protocol_version)
                                     + ": link only engines of one cafshm version"));
                      return;
                    }
                    if (id == 0 || id == own || theirs.size() != link_nonce_bytes) {
                      f(make_error(errc::peer_failure,
                                   "engine at " + address + " answered an invalid challenge"));
                      return;
                    }
                    auto who = st.auth->verify(
                      link_transcript(link_role::listener, own, id, nonce, theirs,
                                      exchange.public_key(), their_public),
                      proof);
                    if (!who) {
                      f(make_error(errc::access_denied, "engine at " + address
                                                          + " did not prove engine id "
                                                          + std::to_string(id) + ": "
                                                          + describe(who.error())));
                      return;
                    }
                    auto keys = exchange.derive(their_public, link_role::dialer, own, id, nonce,
                                                theirs);
                    if (!keys) {
                      f(make_error(errc::access_denied, "engine at " + address + ": "
                                                          + describe(keys.error())));
                      return;
                    }
                    auto mine = st.auth->prove(
                      link_transcript(link_role::dialer, own, id, nonce, theirs,
                                      exchange.public_key(), their_public));
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
                        [self, f, address, gw, id, reverse, who = std::move(*who),
                         keys = std::move(*keys)](uint64_t listener, uint64_t token) mutable {
                          if (listener != id || token == 0) {
                            f(make_error(errc::peer_failure, "engine at " + address
                                                               + " answered an invalid hello"));
                            return;
                          }
                          issue_token(self->state, id, reverse, keys.listener_to_dialer,
                                      keys.dialer_to_listener);
                          auto answers
                            = std::make_shared<link_opener>(link_opener{keys.listener_to_dialer});
                          if (!add_peer(self, id,
                                        peer_link{gw, link_sealer{token, keys.dialer_to_listener},
                                                  std::move(answers), address, true, who, {},
                                                  address.substr(0, address.rfind(':'))})) {
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

outgoing_transmit* find_out(engine_pointer self, uint64_t id) {
  auto i = self->state.outgoing.find(id);
  return i == self->state.outgoing.end() ? nullptr : &i->second;
}

void unpin(engine_state& st, const outgoing_transmit& t) {
  st.mm->unmap(st.mm->engine_session(), t.ref);
}

void fail(engine_pointer self, uint64_t id, caf::error err) {
  auto* t = find_out(self, id);
  if (t == nullptr)
    return;
  auto& st = self->state;
  auto p = st.peers.find(t->peer);
  if (p != st.peers.end())
    self->send(p->second.handle, abort_atom::value, p->second.out.seal(abort_atom::value, id), id);
  if (err.category() != error_category) // CAF's own, e.g. a request to a cut-off peer timed out
    err = make_error(errc::peer_failure,
                     "transfer to " + (p != st.peers.end() ? describe_peer(p->second)
                                                           : std::string{"the peer"})
                       + " failed: " + describe(err));
  stop_sending(*t);
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
  auto& st = self->state;
  stop_sending(*t);
  unpin(st, *t);
  receipt.payload_bytes = t->payload_bytes;
  if (t->is_pull) {
    if (auto i = st.issued_tokens.find(t->pull_token); i != st.issued_tokens.end())
      t->pulled.deliver(t->offer.source_version,
                        i->second.answers.answer(pull_atom::value, t->offer.source_version));
    else
      t->pulled.deliver(make_error(errc::peer_failure, "the link ended before the answer"));
  } else
    t->receipt.deliver(std::move(receipt));
  self->state.outgoing.erase(id);
}

void pump(engine_pointer self, uint64_t id);
void send_offer(engine_pointer self, uint64_t id);

// The destination named a data connection for the payload: a thread connects, proves the token
// with `link_key` and streams the block; its end comes back as data_end_atom. `link_key` is the
// key of the link that carried the offer, which the destination checks the proof with: the
// peer's current link may be a newer one (two handshakes crossed while the offer was on its way).
void send_over_data_connection(engine_pointer self, uint64_t id, const transmit_receipt& r,
                               const std::vector<unsigned char>& link_key) {
  auto* t = find_out(self, id);
  auto& st = self->state;
  auto peer = st.peers.find(t->peer);
  if (peer == st.peers.end()) {
    fail(self, id, make_error(errc::peer_failure, "the destination engine went down"));
    return;
  }
  data_send::target to;
  to.host = wildcard(r.data_host) ? peer->second.host : r.data_host;
  to.port = r.data_port;
  to.token = r.data_token;
  to.proof = data_connection_proof(link_key, r.data_token, id);
  t->data = std::make_shared<data_send>(std::move(to), t->bytes, t->offer.chunk_bytes,
                                        st.config.remote.window_chunks,
                                        st.config.remote.stall_timeout,
                                        st.config.remote.checksum_retries,
                                        st.auth->data_connection_tls(),
                                        report_to(self, t->peer, id, false));
  t->data->start();
}

void send_chunk(engine_pointer self, uint64_t id, uint64_t offset) {
  auto* t = find_out(self, id);
  auto peer = self->state.peers.find(t->peer);
  if (peer == self->state.peers.end()) {
    fail(self, id, make_error(errc::peer_failure, "the destination engine went down"));
    return;
  }
  uint64_t n = std::min<uint64_t>(t->offer.chunk_bytes, t->bytes.size() - offset);
  auto* first = reinterpret_cast<const char*>(t->bytes.data()) + offset;
  transmit_chunk c{t->offer.sender, id, offset, 0, std::vector<char>(first, first + n)};
  c.hash = XXH3_64bits(c.data.data(), c.data.size());
  if (t->offer.hash == 0 && offset == t->digested) { // first send of the next chunk in order
    t->digest.update(std::as_bytes(std::span{c.data}));
    t->digested += n;
  }
  ++t->in_flight;
  t->payload_bytes += n;
  auto seal = peer->second.out.seal(chunk_atom::value, c);
  self->request(peer->second.handle, no_request_timeout, chunk_atom::value, std::move(seal),
                std::move(c))
    .then(
      [self, id, n, answers = peer->second.answers](done_atom done, peer_seal& s) {
        if (auto* t = find_out(self, id)) {
          if (auto err = check_answer(self->state, t->peer, *answers, s, chunk_atom::value, done)) {
            fail(self, id, std::move(err));
            return;
          }
          heard_from(self->state, t->peer, t);
          --t->in_flight;
          t->acked += n;
          pump(self, id);
        }
      },
      [self, id, offset](caf::error& e) {
        auto* t = find_out(self, id);
        if (t == nullptr)
          return;
        heard_from(self->state, t->peer, t);
        --t->in_flight;
        if (code_of(e) == errc::checksum_mismatch && t->retries_left > 0) {
          --t->retries_left;
          send_chunk(self, id, offset);
        } else {
          fail(self, id, std::move(e));
        }
      });
}

void commit_transmit(engine_pointer self, uint64_t id) {
  auto* t = find_out(self, id);
  auto peer = self->state.peers.find(t->peer);
  if (peer == self->state.peers.end()) {
    fail(self, id, make_error(errc::peer_failure, "the destination engine went down"));
    return;
  }
  auto hash = t->offer.hash != 0 ? t->offer.hash
              : t->sent_digest   ? *t->sent_digest
                                 : t->digest.digest();
  self->request(peer->second.handle, no_request_timeout, commit_atom::value,
                peer->second.out.seal(commit_atom::value, id, hash), id, hash)
    .then(
      [self, id, answers = peer->second.answers](transmit_receipt& r, peer_seal& s) {
        auto* t = find_out(self, id);
        if (t == nullptr)
          return;
        if (auto err = check_answer(self->state, t->peer, *answers, s, commit_atom::value, r))
          fail(self, id, std::move(err));
        else
          finish(self, id, std::move(r));
      },
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
    commit_transmit(self, id);
}

// Pins `ref`, offers it to `peer` and runs the transfer; the promise in `t` ends it.
void start(engine_pointer self, uint64_t peer, const block_ref& ref, outgoing_transmit t) {
  auto& st = self->state;
  auto& mm = *st.mm;
  auto pin = mm.map(mm.engine_session(), ref, access_mode::read);
  auto bytes = mm.engine_bytes(ref);
  if (!pin || !bytes) {
    auto err = pin ? bytes.error() : pin.error();
    if (pin)
      mm.unmap(mm.engine_session(), ref);
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
  t.offer.hash = 0; // computed with the chunks, unless the destination asks for it up front
  t.offer.chunk_bytes = st.config.remote.chunk_bytes;
  t.offer.source = ref;
  st.outgoing.emplace(id, std::move(t));
  send_offer(self, id);
}

void send_offer(engine_pointer self, uint64_t id) {
  auto* t = find_out(self, id);
  auto peer = self->state.peers.find(t->peer);
  if (peer == self->state.peers.end()) {
    fail(self, id, make_error(errc::peer_failure, "the destination engine went down"));
    return;
  }
  self->request(peer->second.handle, no_request_timeout, offer_atom::value,
                peer->second.out.seal(offer_atom::value, t->offer), t->offer)
    .then(
      [self, id, answers = peer->second.answers,
       link_key = peer->second.out.key](transmit_receipt& r, peer_seal& s) {
        auto* t = find_out(self, id);
        if (t == nullptr)
          return;
        if (auto err = check_answer(self->state, t->peer, *answers, s, offer_atom::value, r)) {
          fail(self, id, std::move(err));
          return;
        }
        heard_from(self->state, t->peer, t);
        if (r.remote.valid()) { // the destination had the content: no payload
          finish(self, id, std::move(r));
        } else if (r.cache_hit && t->offer.hash == 0) {
          // The destination keeps a cache and looks the content up by its digest.
          t->offer.hash = digest_of(self->state, t->ref, t->bytes);
          send_offer(self, id);
        } else if (r.data_port != 0) {
          send_over_data_connection(self, id, r, link_key);
        } else {
          pump(self, id);
        }
      },
      [self, id](caf::error& e) { fail(self, id, std::move(e)); });
}

// Names the block, hands it to its destination process and tells the target actor.
caf::expected<block_ref> deliver(engine_state& st, const incoming_transmit& in) {
  auto& mm = *st.mm;
  auto engine = mm.engine_session();
  const auto& target = in.offer.target;
  if (!target.name.empty())
    if (auto ok = mm.name(engine, in.block, target.name); !ok)
      return ok.error();
  block_ref result = in.block;
  if (in.destination == process_id::engine) // published: readable by every process here
    mm.conceal(in.block, false);
  if (in.destination != process_id::engine) {
    auto moved = mm.transfer(engine, in.block, in.destination);
    if (!moved)
      return moved.error();
    result = *moved;
  }
  if (target.deliver_to)
    caf::anon_send(target.deliver_to, delivered_atom::value, result);
  return result;
}

// Delivers transmit `in` (offer and destination set) from the cache, if it holds the offered
// content: a copy of the cached block, or with remote.cache_hit hand_over the cached block
// itself, which leaves the cache (and goes back into it if the delivery fails). nullopt on a
// miss.
std::optional<caf::expected<block_ref>> deliver_cached(engine_state& st, incoming_transmit& in) {
  auto& mm = *st.mm;
  auto engine = mm.engine_session();
  const auto* hit = st.cache->find(in.offer.hash, in.offer.size);
  if (hit == nullptr)
    return std::nullopt;
  std::optional<block_cache::entry> taken;
  if (st.config.remote.cache_hit == cache_hit_policy::hand_over) {
    taken = st.cache->take(in.offer.hash, in.offer.size);
    in.block = taken->local; // concealed while cached, as until delivered
  } else {
    auto block = mm.allocate(engine, in.offer.size);
    if (!block)
      return caf::expected<block_ref>{std::move(block.error())};
    mm.conceal(*block, true); // until delivered
    std::memcpy(mm.engine_bytes(*block)->data(), mm.engine_bytes(hit->local)->data(),
                in.offer.size);
    in.block = *block;
  }
  auto delivered = deliver(st, in);
  if (!delivered) {
    if (taken)
      free_blocks(st, st.cache->insert(std::move(*taken)));
    else
      mm.free(engine, in.block);
  }
  return delivered;
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

// The bytes of a remote read from the cache while the block's version there is `version`
// (stale copies of it are dropped); nullopt on a miss.
std::optional<std::vector<char>> serve_cached(engine_state& st, const block_ref& ref,
                                              uint64_t version, uint64_t offset,
                                              uint64_t length) {
  if (!st.cache)
    return std::nullopt;
  std::vector<block_ref> stale;
  const auto* hit = st.cache->find_source(ref, version, stale);
  free_blocks(st, stale);
  if (hit == nullptr)
    return std::nullopt;
  return copy_range(st, hit->local, offset, length);
}

// Frees the block fetched for read `id` past the cache, if any.
void drop_fetched(engine_state& st, uint64_t id) {
  if (auto f = st.fetched.find(id); f != st.fetched.end()) {
    st.mm->free(st.mm->engine_session(), f->second);
    st.fetched.erase(f);
  }
}

// Ends remote read `id` with `err`: its cache fill under way is dropped (partial block freed),
// a block fetched for it is freed.
void fail_read(engine_pointer self, uint64_t id, caf::error err) {
  auto& st = self->state;
  auto i = st.reads.find(id);
  if (i == st.reads.end())
    return;
  auto r = std::move(i->second);
  st.reads.erase(i);
  if (r.transfer != 0)
    if (auto in = st.incoming.find({r.peer, r.transfer}); in != st.incoming.end()) {
      drop_incoming(st, in->second);
      st.incoming.erase(in);
    }
  drop_fetched(st, id);
  if (err.category() != error_category) // CAF's own, e.g. the link broke
    err = make_error(errc::peer_failure,
                     "remote read of " + to_string(r.ref) + " failed: " + describe(err));
  r.reply.deliver(std::move(err));
}

// The pull of read `id` answered: the block is in the cache or fetched past it.
void finish_read(engine_pointer self, uint64_t id, uint64_t version) {
  auto& st = self->state;
  auto i = st.reads.find(id);
  if (i == st.reads.end()) { // ended meanwhile: what it fetched goes
    drop_fetched(st, id);
    return;
  }
  auto r = std::move(i->second);
  st.reads.erase(i);
  if (auto f = st.fetched.find(id); f != st.fetched.end()) {
    r.reply.deliver(copy_range(st, f->second, r.offset, r.length));
    drop_fetched(st, id);
  } else if (auto cached = serve_cached(st, r.ref, version, r.offset, r.length)) {
    r.reply.deliver(std::move(*cached));
  } else {
    r.reply.deliver(make_error(errc::peer_failure, "the fetched block did not stay cached"));
  }
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
                                     std::string identity, const std::vector<char>& keys) {
  auto& st = self->state;
  auto handle = caf::actor_cast<peer_actor>(gateway);
  if (!handle || peer_id == 0 || peer_id == st.mm->engine_id() || reverse_token == 0
      || keys.size() != 2 * link_mac_key_bytes)
    return make_error(errc::invalid_argument,
                      "hello needs a gateway, an engine id, a token and the link's keys");
  auto middle = keys.begin() + link_mac_key_bytes;
  std::vector<unsigned char> from_dialer(keys.begin(), middle);
  std::vector<unsigned char> to_dialer(middle, keys.end());
  if (st.token_of_peer.count(peer_id) == 0 && st.token_of_peer.size() >= max_inbound_peers)
    return make_error(errc::capacity_exceeded,
                      "this engine accepts at most " + std::to_string(max_inbound_peers)
                        + " peer engines");
  auto token = secure_token();
  auto node = handle.node();
  std::string address = "engine " + hex_id(peer_id) + " (dialed in)";
  auto answers = std::make_shared<link_opener>(link_opener{from_dialer});
  if (!add_peer(self, peer_id,
                peer_link{handle, link_sealer{reverse_token, to_dialer}, std::move(answers),
                          address, false, identity, {}, {}}))
    return make_error(errc::access_denied, "engine id " + std::to_string(peer_id)
                                             + " is linked already with another identity");
  issue_token(st, peer_id, token, std::move(from_dialer), std::move(to_dialer));
  if (st.connector) // where the peer's connection comes from, for stats and logs
    self->request(st.connector, timeout(st), caf::get_atom::value, node)
      .then(
        [self, peer_id, handle, address](const caf::node_id&, const std::string& host,
                                         uint16_t port) {
          auto& st = self->state;
          auto p = st.peers.find(peer_id);
          if (host.empty() || p == st.peers.end() || p->second.handle != handle
              || p->second.address != address)
            return;
          auto from = "engine " + hex_id(peer_id) + " from " + host + ":"
                      + std::to_string(port) + " (dialed in)";
          st.peer_by_address.erase(address);
          st.peer_by_address[from] = peer_id;
          p->second.address = std::move(from);
          p->second.host = host;
        },
        [](caf::error&) {});
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
    outgoing_transmit t;
    t.offer.target = std::move(target);
    t.receipt = rp;
    start(self, *id, ref, std::move(t));
  });
  return rp;
}

static caf::result<uint64_t> take_version(engine_pointer self, const peer_seal& seal,
                                          const block_ref& ref) {
  if (auto from = peer_of(self->state, seal, version_atom::value, ref); !from)
    return std::move(from.error());
  return self->state.mm->exported_version(ref);
}

caf::result<uint64_t, peer_seal> version(engine_pointer self, const peer_seal& seal,
                                         const block_ref& ref) {
  return sealed(self->state, seal.token, version_atom::value, take_version(self, seal, ref));
}

caf::result<uint64_t, peer_seal> pull(engine_pointer self, const peer_seal& seal,
                                      const block_ref& ref) {
  auto& st = self->state;
  auto requester = peer_of(st, seal, pull_atom::value, ref);
  if (!requester)
    return std::move(requester.error());
  auto v = st.mm->exported_version(ref);
  if (!v)
    return std::move(v.error());
  if (st.peers.count(*requester) == 0)
    return make_error(errc::peer_failure, "pull from an engine that is not linked");
  auto rp = self->make_response_promise<uint64_t, peer_seal>();
  outgoing_transmit t;
  t.is_pull = true;
  t.pulled = rp;
  t.pull_token = seal.token;
  t.offer.cache_fill = true;
  t.offer.source_version = *v;
  start(self, *requester, ref, std::move(t));
  return rp;
}

// -- receiving ----------------------------------------------------------------------------------

// Whether payload may come over a data connection: once the data port is open (with TLS when
// the engine has remote.tls, as its peer links).
static bool open_data_port(engine_state& st) {
  if (st.data_port_failed)
    return false;
  if (st.data_port)
    return true;
  auto port = data_listener::open(listener_host(st), st.config.remote.stall_timeout,
                                  st.auth->data_connection_tls());
  if (!port) {
    st.data_port_failed = true;
    log_line(st, "no data port (" + describe(port.error())
                   + "): transfers to this engine send their chunks as link messages");
    return false;
  }
  st.data_port = std::move(*port);
  return true;
}

static caf::result<transmit_receipt> take_offer(engine_pointer self, const peer_seal& seal,
                                               transmit_offer& o) {
  auto& st = self->state;
  auto& mm = *st.mm;
  auto engine = mm.engine_session();
  auto from = peer_of(st, seal, offer_atom::value, o);
  if (!from)
    return std::move(from.error());
  o.sender = *from; // who sends is what the link says, not what the offer claims
  st.last_heard_from[o.sender] = clock::now();
  auto key = std::make_pair(o.sender, o.id);
  if (o.size == 0 || o.chunk_bytes == 0 || st.incoming.count(key) != 0)
    return make_error(errc::invalid_argument, "malformed or duplicate transfer offer");
  incoming_transmit in;
  if (o.cache_fill) {
    // Only the answer to a pull of this engine, from the engine that owns the block, of the
    // size the read was checked against.
    auto pending = std::find_if(st.reads.begin(), st.reads.end(), [&](const auto& r) {
      return r.second.transfer == 0 && r.second.peer == *from && r.second.ref == o.source;
    });
    if (o.source.engine != *from || pending == st.reads.end() || o.size != o.source.size)
      return make_error(errc::access_denied, "a cache fill nobody asked this engine for");
    pending->second.transfer = o.id;
    in.read = pending->first;
  }
  in.destination = process_id::engine;
  if (!o.cache_fill && !o.target.process.empty()) {
    auto slot = mm.find_process(engine, o.target.process);
    if (!slot)
      return std::move(slot.error());
    in.destination = *slot;
  }
  if (!o.cache_fill) // name, quota: refused here, before any payload moves
    if (auto ok = mm.can_receive(in.destination, o.size, o.target.name); !ok)
      return std::move(ok.error());
  if (!o.cache_fill && st.cache && o.hash == 0) // the cache needs the digest to look it up
    return transmit_receipt{{}, 0, 0, 0, true, 0, 0, {}};
  if (!o.cache_fill && st.cache) {
    in.offer = o;
    if (auto delivered = deliver_cached(st, in)) {
      if (!*delivered)
        return std::move(delivered->error());
      ++st.cache->counters().hits;
      st.cache->counters().bytes_saved += o.size;
      return transmit_receipt{**delivered, o.size, 0, o.hash, true, 0, 0, {}};
    }
    ++st.cache->counters().misses;
  }
  auto block = mm.allocate(engine, o.size); // out_of_memory refuses before any payload moves
  if (!block) {
    if (in.read != 0) // the read may take the next offer for its block
      st.reads.at(in.read).transfer = 0;
    return std::move(block.error());
  }
  mm.conceal(*block, true); // partial and not yet delivered: only the engine reads it
  in.offer = std::move(o);
  in.block = *block;
  in.bytes = *mm.engine_bytes(*block);
  in.from = caf::actor_cast<caf::actor_addr>(self->current_sender());
  in.last_activity = std::chrono::steady_clock::now();
  if (in.from)
    self->monitor(in.from);
  transmit_receipt answer; // no receipt yet: send the payload
  if (open_data_port(st)) {
    // the payload comes over a data connection that proves this token with the link's key
    auto token = secure_token();
    const auto& link_key = st.issued_tokens.at(seal.token).in.key;
    in.data = std::make_shared<data_receive>(
      in.bytes, in.offer.chunk_bytes, in.offer.id,
      data_connection_proof(link_key, token, in.offer.id), st.config.remote.stall_timeout,
      st.config.remote.checksum_retries, report_to(self, key.first, key.second, true));
    in.data_token = token;
    st.data_port->expect(token, in.data);
    answer.data_token = token;
    answer.data_port = st.data_port->port();
    answer.data_host = st.data_port->host();
  }
  st.incoming.emplace(key, std::move(in));
  return answer;
}

caf::result<transmit_receipt, peer_seal> offer(engine_pointer self, const peer_seal& seal,
                                               transmit_offer& o) {
  return sealed(self->state, seal.token, offer_atom::value, take_offer(self, seal, o));
}

static caf::result<done_atom> take_chunk(engine_pointer self, const peer_seal& seal,
                                         transmit_chunk& c) {
  auto& st = self->state;
  auto from = peer_of(st, seal, chunk_atom::value, c);
  if (!from)
    return std::move(from.error());
  st.last_heard_from[*from] = clock::now();
  auto i = st.incoming.find({*from, c.id});
  if (i == st.incoming.end())
    return make_error(errc::stale_block, "chunk of an unknown transfer");
  auto& in = i->second;
  if (in.data) { // the sender sends chunks over the link instead: its data connection ends
    if (st.data_port)
      st.data_port->forget(in.data_token);
    in.data->cancel(); // its thread no longer writes the block
    in.data.reset();
  }
  if (!in_bounds(c.offset, c.data.size(), in.bytes.size())) {
    st.mm->free(st.mm->engine_session(), in.block);
    st.incoming.erase(i);
    return make_error(errc::out_of_range, "chunk beyond the end of the block; transfer aborted");
  }
  if (XXH3_64bits(c.data.data(), c.data.size()) != c.hash)
    return make_error(errc::checksum_mismatch,
                      "chunk at offset " + std::to_string(c.offset) + " failed its checksum");
  if (c.offset < in.verified) // those bytes are in the digest already: never rewritten
    return make_error(errc::invalid_argument,
                      "chunk at offset " + std::to_string(c.offset) + " rewrites verified bytes");
  if (!c.data.empty()) // an empty chunk's data() is null: memcpy(p, nullptr, 0) is UB
    std::memcpy(in.bytes.data() + c.offset, c.data.data(), c.data.size());
  in.last_activity = std::chrono::steady_clock::now();
  if (c.offset == in.verified) {
    in.digest.update(std::as_bytes(std::span{c.data}));
    in.verified += c.data.size();
    // chunks that arrived ahead of this one (it was resent): fed from the block now
    for (auto a = in.ahead.begin(); a != in.ahead.end() && a->first <= in.verified;
         a = in.ahead.erase(a)) {
      auto end = a->first + a->second;
      if (end > in.verified) {
        in.digest.update(in.bytes.subspan(in.verified, end - in.verified));
        in.verified = end;
      }
    }
  } else if (c.offset > in.verified && !c.data.empty()) {
    if (in.ahead.size() >= max_chunks_ahead) {
      st.mm->free(st.mm->engine_session(), in.block);
      st.incoming.erase(i);
      return make_error(errc::invalid_argument, "more than " + std::to_string(max_chunks_ahead)
                                                  + " chunks ahead of a gap; transfer aborted");
    }
    in.ahead[c.offset] = std::max(in.ahead[c.offset], uint64_t{c.data.size()});
  }
  return done_atom::value;
}

caf::result<done_atom, peer_seal> chunk(engine_pointer self, const peer_seal& seal,
                                        transmit_chunk& c) {
  return sealed(self->state, seal.token, chunk_atom::value, take_chunk(self, seal, c));
}

static caf::result<transmit_receipt> take_commit(engine_pointer self, const peer_seal& seal,
                                                uint64_t id, uint64_t claimed) {
  auto& st = self->state;
  auto& mm = *st.mm;
  auto from = peer_of(st, seal, commit_atom::value, id, claimed);
  if (!from)
    return std::move(from.error());
  st.last_heard_from[*from] = clock::now();
  auto i = st.incoming.find({*from, id});
  if (i == st.incoming.end())
    return make_error(errc::stale_block, "commit of an unknown transfer");
  auto in = std::move(i->second);
  st.incoming.erase(i);
  if (in.data && in.received_digest) { // its thread ended: every byte verified
    in.data->cancel();
    in.data.reset();
    in.verified = in.bytes.size();
  }
  if (in.verified != in.bytes.size()) {
    drop_incoming(st, in);
    return make_error(errc::invalid_argument,
                      "commit after " + std::to_string(in.verified) + " of "
                        + std::to_string(in.bytes.size()) + " bytes; transfer aborted");
  }
  // fed as the chunks arrived (by this engine or its data connection's thread): the block is
  // not read again
  auto hash = in.received_digest ? *in.received_digest : in.digest.digest();
  if (hash != claimed || (in.offer.hash != 0 && hash != in.offer.hash)) {
    mm.free(mm.engine_session(), in.block);
    return make_error(errc::checksum_mismatch, "the received block does not match its checksum");
  }
  if (in.offer.cache_fill) {
    if (st.cache && st.cache->capacity() >= in.bytes.size())
      free_blocks(st, st.cache->insert({in.block, hash, in.offer.source, in.offer.source_version}));
    else // read once by the remote read that pulled it, then freed
      st.fetched.emplace(in.read, in.block);
    return transmit_receipt{in.block, in.bytes.size(), 0, hash, false, 0, 0, {}};
  }
  remember(st, in.block, in.bytes, hash);
  auto delivered = deliver(st, in);
  if (!delivered) {
    mm.free(mm.engine_session(), in.block);
    return std::move(delivered.error());
  }
  return transmit_receipt{*delivered, in.bytes.size(), 0, hash, false, 0, 0, {}};
}

caf::result<transmit_receipt, peer_seal> commit(engine_pointer self, const peer_seal& seal,
                                                uint64_t id, uint64_t hash) {
  return sealed(self->state, seal.token, commit_atom::value, take_commit(self, seal, id, hash));
}

void abort(engine_pointer self, const peer_seal& seal, uint64_t id) {
  auto& st = self->state;
  auto from = peer_of(st, seal, abort_atom::value, id);
  if (!from)
    return;
  if (auto i = st.incoming.find({*from, id}); i != st.incoming.end()) {
    drop_incoming(st, i->second);
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
  auto rp = self->make_response_promise<std::vector<char>>();
  self->request(peer->second.handle, timeout(st), version_atom::value,
                peer->second.out.seal(version_atom::value, ref), ref)
    .then(
      [self, rp, ref, offset, length, answers = peer->second.answers](uint64_t v,
                                                                      peer_seal& s) mutable {
        auto& st = self->state;
        if (auto err = check_answer(st, ref.engine, *answers, s, version_atom::value, v)) {
          rp.deliver(std::move(err));
          return;
        }
        if (auto cached = serve_cached(st, ref, v, offset, length)) {
          ++st.cache->counters().hits;
          st.cache->counters().bytes_saved += ref.size;
          rp.deliver(std::move(*cached));
          return;
        }
        if (st.cache)
          ++st.cache->counters().misses;
        auto peer = st.peers.find(ref.engine);
        if (peer == st.peers.end()) {
          rp.deliver(make_error(errc::peer_failure, "the engine of " + to_string(ref)
                                                      + " went down"));
          return;
        }
        auto id = st.next_read++;
        st.reads.emplace(id, pending_read{ref.engine, ref, offset, length, 0, rp,
                                          clock::now()});
        self->request(peer->second.handle, no_request_timeout, pull_atom::value,
                      peer->second.out.seal(pull_atom::value, ref), ref)
          .then(
            [self, id, answers = peer->second.answers](uint64_t pulled, peer_seal& s) {
              auto& st = self->state;
              auto r = st.reads.find(id);
              auto from = r != st.reads.end() ? r->second.peer : uint64_t{0};
              if (auto err = check_answer(st, from, *answers, s, pull_atom::value, pulled))
                fail_read(self, id, std::move(err));
              else
                finish_read(self, id, pulled);
            },
            [self, id](caf::error& e) { fail_read(self, id, std::move(e)); });
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
    log_line(st, "peer " + describe_peer(i->second) + " went down");
    for (size_t k = 0; k < st.configured.size(); ++k)
      if (st.configured[k].engine_id == id) {
        st.configured[k].engine_id = 0;
        st.configured[k].backoff = st.config.remote.redial_min;
        self->delayed_send(self, st.config.remote.redial_min, redial_atom::value, uint64_t{k});
      }
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
    std::vector<uint64_t> reads;
    for (const auto& [rid, r] : st.reads)
      if (r.peer == id)
        reads.push_back(rid);
    for (auto rid : reads)
      fail_read(self, rid, make_error(errc::peer_failure, "the block's engine went down"));
  }
  for (auto i = st.incoming.begin(); i != st.incoming.end();) {
    if (i->second.from == source) {
      drop_incoming(st, i->second);
      i = st.incoming.erase(i);
    } else {
      ++i;
    }
  }
  return was_peer;
}

void check_stalls(engine_pointer self) {
  auto& st = self->state;
  auto now = clock::now();
  auto limit = st.config.remote.stall_timeout;
  auto seconds = std::to_string(limit.count() / 1000.0);
  seconds.erase(seconds.find_last_not_of('0') + 1);
  if (seconds.back() == '.')
    seconds.pop_back();
  std::vector<uint64_t> stalled;
  for (const auto& [id, t] : st.outgoing) {
    auto last = t.last_progress;
    if (auto p = st.peers.find(t.peer); p != st.peers.end())
      last = std::max(last, p->second.last_heard);
    if (t.data)
      last = std::max(last, t.data->progress().last());
    if (now - last > limit)
      stalled.push_back(id);
  }
  for (auto id : stalled) {
    auto p = st.peers.find(st.outgoing.at(id).peer);
    fail(self, id, make_error(errc::peer_failure,
                              "transmit to "
                                + (p != st.peers.end() ? describe_peer(p->second)
                                                       : std::string{"the peer"})
                                + " stalled: the destination engine answered nothing for "
                                + seconds + " s (remote.stall_timeout)"));
  }
  std::vector<uint64_t> stalled_reads;
  for (const auto& [id, r] : st.reads) {
    auto last = r.started;
    if (auto h = st.last_heard_from.find(r.peer); h != st.last_heard_from.end())
      last = std::max(last, h->second);
    if (now - last > limit)
      stalled_reads.push_back(id);
  }
  for (auto id : stalled_reads) {
    const auto& r = st.reads.at(id);
    auto p = st.peers.find(r.peer);
    fail_read(self, id, make_error(errc::peer_failure,
                                   "remote read of " + to_string(r.ref) + " from "
                                     + (p != st.peers.end() ? describe_peer(p->second)
                                                            : "engine " + hex_id(r.peer))
                                     + " stalled: that engine sent nothing for " + seconds
                                     + " s (remote.stall_timeout)"));
  }
  for (auto i = st.incoming.begin(); i != st.incoming.end();) {
    auto last = i->second.last_activity;
    if (auto h = st.last_heard_from.find(i->first.first); h != st.last_heard_from.end())
      last = std::max(last, h->second);
    if (i->second.data)
      last = std::max(last, i->second.data->progress().last());
    if (now - last > limit) {
      drop_incoming(st, i->second);
      i = st.incoming.erase(i);
    } else {
      ++i;
    }
  }
}

// -- configured peers ---------------------------------------------------------------------------

void keep_linked(engine_pointer self) {
  auto& st = self->state;
  st.configured.assign(st.config.remote.peers.size(), configured_peer_state{});
  for (size_t i = 0; i < st.configured.size(); ++i) {
    st.configured[i].backoff = st.config.remote.redial_min;
    redial(self, i);
  }
}

void redial(engine_pointer self, uint64_t index) {
  auto& st = self->state;
  if (index >= st.configured.size())
    return;
  auto& c = st.configured[index];
  if (c.dialing || (c.engine_id != 0 && st.peers.count(c.engine_id) != 0))
    return;
  c.dialing = true;
  const auto& peer = st.config.remote.peers[index];
  auto address = peer.address.host + ":" + std::to_string(peer.address.port);
  connect(self, peer.address.host, peer.address.port,
          [self, index, address](caf::expected<uint64_t> id) {
            auto& st = self->state;
            auto& c = st.configured[index];
            const auto& name = st.config.remote.peers[index].name;
            c.dialing = false;
            if (id) {
              log_line(st, "peer " + name + " (" + address + ") linked"
                             + (c.ever_linked ? " again" : "") + ", engine " + hex_id(*id));
              c.ever_linked = true;
              c.engine_id = *id;
              c.backoff = st.config.remote.redial_min;
              return;
            }
            if (c.backoff == st.config.remote.redial_min // the first failure in a row
                && code_of(id.error()) != errc::version_mismatch) // connect logged it
              log_line(st, "peer " + name + " (" + address + ") not linked: "
                             + describe(id.error()) + "; dialing again with back-off up to "
                             + std::to_string(st.config.remote.redial_max.count()) + " ms");
            self->delayed_send(self, c.backoff, redial_atom::value, index);
            c.backoff = std::min(c.backoff * 2, st.config.remote.redial_max);
          });
}

void data_ended(engine_pointer self, uint64_t peer, uint64_t id, bool incoming, uint64_t digest,
                caf::error err) {
  auto& st = self->state;
  if (incoming) {
    auto i = st.incoming.find({peer, id});
    if (i == st.incoming.end() || !i->second.data) // ended meanwhile
      return;
    auto& in = i->second;
    if (err) { // nothing partial stays: the sender fails its transmit on its side
      drop_incoming(st, in);
      st.incoming.erase(i);
      return;
    }
    in.received_digest = digest;
    in.last_activity = clock::now();
    ++st.data_received;
    return;
  }
  auto* t = find_out(self, id);
  if (t == nullptr || !t->data)
    return;
  stop_sending(*t);
  if (err) {
    auto p = st.peers.find(t->peer);
    auto what = describe(err); // "code: text": the code stays the error's own
    if (auto prefix = std::string{to_string(code_of(err))} + ": "; what.rfind(prefix, 0) == 0)
      what.erase(0, prefix.size());
    fail(self, id, make_error(code_of(err), "transfer to "
                                              + (p != st.peers.end() ? describe_peer(p->second)
                                                                     : std::string{"the peer"})
                                              + " failed: " + what));
    return;
  }
  heard_from(st, t->peer, t);
  t->sent_digest = digest;
  t->acked = t->bytes.size();
  t->next_offset = t->bytes.size();
  t->payload_bytes = t->bytes.size();
  ++st.data_sent;
  commit_transmit(self, id);
}

void fill_stats(const engine_state& st, engine_stats& stats) {
  for (const auto& [id, p] : st.peers)
    stats.peers.push_back(describe_peer(p));
  std::sort(stats.peers.begin(), stats.peers.end());
  stats.transmits_out = static_cast<uint32_t>(st.outgoing.size());
  for (const auto& [id, t] : st.outgoing) {
    auto p = st.peers.find(t.peer);
    stats.outgoing.push_back(
      {id, p == st.peers.end() ? std::string{} : describe_peer(p->second), t.bytes.size(),
       t.data ? t.data->progress().bytes() : t.acked, t.is_pull});
  }
  stats.transmits_in = static_cast<uint32_t>(st.incoming.size());
  stats.digests_reused = st.digests_reused;
  stats.peer_messages_refused = st.peer_messages_refused;
  stats.data_connections_refused = st.data_port ? st.data_port->refused() : 0;
  stats.data_connections_sent = st.data_sent;
  stats.data_connections_received = st.data_received;
  for (const auto& [key, in] : st.incoming) {
    auto p = st.peers.find(key.first);
    stats.incoming.push_back({key.second,
                              p == st.peers.end() ? "engine " + hex_id(key.first)
                                                  : describe_peer(p->second),
                              in.bytes.size(),
                              in.data ? in.data->progress().bytes() : in.verified,
                              in.offer.cache_fill});
  }
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
