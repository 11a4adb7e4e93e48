// The data connection of remote transfers (data_connection.hpp): the payload leaves the link for
// a TCP connection of its own, proved with a one-time token and the link's key; forged and
// replayed tokens are refused and counted, a cut connection delivers nothing partial, and the
// engine answers requests while a big payload moves.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "data_connection.hpp"
#include "support/client_system.hpp"
#include "support/fake_peer.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;

namespace {

std::string remote_yaml(const std::string& chunk, int window) {
  return "remote:\n  chunk: " + chunk + "\n  window: " + std::to_string(window)
         + "\n  cache: 0\n";
}

void put_u64(unsigned char* p, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<unsigned char>(x >> (8 * i));
}

uint64_t get_u64(const unsigned char* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i)
    x = (x << 8) | p[i];
  return x;
}

// A TCP connection of the test to an engine's data port, closed when it goes.
struct data_socket {
  int fd = -1;
  data_socket(const std::string& host, uint16_t port) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    REQUIRE(::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) == 0);
    fd = ::socket(found->ai_family, SOCK_STREAM, 0);
    bool ok = fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0;
    ::freeaddrinfo(found);
    REQUIRE(ok);
    timeval tv{10, 0}; // a test never waits forever on the engine
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~data_socket() { close(); }
  void close() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
  bool send_bytes(const void* p, size_t n) {
    return ::send(fd, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
  }
  void hello(uint64_t token, const std::vector<unsigned char>& proof) {
    unsigned char h[48];
    std::memcpy(h, "cafshmD1", 8);
    put_u64(h + 8, token);
    REQUIRE(proof.size() == 32);
    std::memcpy(h + 16, proof.data(), 32);
    REQUIRE(send_bytes(h, sizeof h));
  }
  void frame(uint64_t offset, const std::vector<char>& bytes) {
    unsigned char f[24];
    put_u64(f, offset);
    put_u64(f + 8, bytes.size());
    put_u64(f + 16, XXH3_64bits(bytes.data(), bytes.size()));
    REQUIRE(send_bytes(f, sizeof f));
    REQUIRE(send_bytes(bytes.data(), bytes.size()));
  }
  // The next acknowledgement: bytes verified, status, digest; nullopt when the engine closed.
  std::optional<std::array<uint64_t, 3>> ack() {
    unsigned char a[24];
    if (::recv(fd, a, sizeof a, MSG_WAITALL) != static_cast<ssize_t>(sizeof a))
      return std::nullopt;
    return std::array<uint64_t, 3>{get_u64(a), get_u64(a + 8), get_u64(a + 16)};
  }
  // Whether the engine closed the connection (without sending anything).
  bool closed_by_engine() {
    char c;
    return ::recv(fd, &c, 1, 0) == 0;
  }
};

// A test playing a sending engine against cafshmd `b`, as engine 4242.
struct fake_sender {
  caf::scoped_actor& self;
  test::fake_peer_link link;

  transmit_receipt offer(const transmit_offer& o) {
    transmit_receipt r;
    caf::error err;
    self->request(link.gateway, 10s, offer_atom::value, link.seal(offer_atom::value, o), o)
      .receive([&](transmit_receipt& x, peer_seal&) { r = std::move(x); },
               [&](caf::error& e) { err = std::move(e); });
    REQUIRE_MESSAGE(!err, describe(err));
    return r;
  }
  caf::error commit(uint64_t id, uint64_t hash) {
    caf::error err;
    self->request(link.gateway, 10s, commit_atom::value, link.seal(commit_atom::value, id, hash),
                  id, hash)
      .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
    return err;
  }
  std::vector<unsigned char> proof(uint64_t token, uint64_t id) {
    return data_connection_proof(link.out.key, token, id);
  }
};

std::vector<char> pattern(size_t n, char seed) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<char>(seed + i * 7);
  return v;
}

uint64_t hash_in_place(client& c, const block_ref& ref) {
  auto view = c.map(ref, access_mode::read);
  REQUIRE(view);
  auto h = XXH3_64bits(view->data(), view->size());
  REQUIRE(c.unmap(std::move(*view)));
  return h;
}

// Commits transfer `id` with the block's XXH3 `hash`, checks that `watcher`'s engine delivered
// exactly those bytes under `name`, and removes the block.
void commit_and_check(fake_sender& peer, client& watcher, uint64_t id, uint64_t hash,
                      const std::string& name) {
  auto committed = peer.commit(id, hash);
  CHECK_MESSAGE(!committed, describe(committed));
  auto delivered = watcher.lookup(name);
  REQUIRE(delivered);
  CHECK(hash_in_place(watcher, *delivered) == hash);
  REQUIRE(watcher.remove(name));
}

} // namespace

TEST_CASE("a forged or replayed data token is refused and counted, the transfer under way goes on") {
  daemon_process b{unique_name("cafshm-test-rd"), "64MiB", 0, remote_yaml("64KiB", 2)};
  REQUIRE(b.ready());
  client_system cs;
  auto watcher = client::connect(cs.sys, b.address(), "watcher");
  REQUIRE(watcher);
  auto before = watcher->stats();
  REQUIRE(before);
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::error link_error;
  fake_sender peer{self, test::link_fake_peer(self, *engine, 4242, link_error)};
  REQUIRE_MESSAGE(peer.link.token != 0, describe(link_error));
  auto first = pattern(4096, 1), second = pattern(4096, 2);
  std::vector<char> whole(first);
  whole.insert(whole.end(), second.begin(), second.end());
  auto hash = XXH3_64bits(whole.data(), whole.size());
  auto r = peer.offer(transmit_offer{4242, 1, whole.size(), 0, 4096, {"", "via-data", {}}, {}, 0,
                                     false});
  REQUIRE(r.data_port != 0);
  REQUIRE(r.data_token != 0);
  // The right token with a proof not made with the link's key: closed, counted; the token
  // stays valid for its sender.
  {
    data_socket forged{r.data_host, r.data_port};
    forged.hello(r.data_token, std::vector<unsigned char>(32, 0x5a));
    CHECK(forged.closed_by_engine());
  }
  CHECK(eventually(*watcher, 10s, [](const engine_stats& st) {
    return st.data_connections_refused == 1;
  }));
  data_socket real{r.data_host, r.data_port};
  auto proof = peer.proof(r.data_token, 1);
  real.hello(r.data_token, proof);
  real.frame(0, first);
  auto a1 = real.ack();
  REQUIRE(a1);
  CHECK((*a1)[0] == 4096);
  CHECK((*a1)[1] == 0);
  // The same hello again (a replay of what crossed the wire): the token is used up.
  {
    data_socket replay{r.data_host, r.data_port};
    replay.hello(r.data_token, proof);
    CHECK(replay.closed_by_engine());
  }
  CHECK(eventually(*watcher, 10s, [](const engine_stats& st) {
    return st.data_connections_refused == 2 && st.transmits_in == 1;
  }));
  // The transfer under way is unaffected: its second chunk, the digest, the commit.
  real.frame(4096, second);
  auto a2 = real.ack();
  REQUIRE(a2);
  CHECK((*a2)[0] == whole.size());
  CHECK((*a2)[2] == hash);
  commit_and_check(peer, *watcher, 1, hash, "via-data");
  auto after = watcher->stats();
  REQUIRE(after);
  CHECK(after->data_connections_received == 1);
  CHECK(after->data_connections_refused == 2);
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);
  CHECK(after->transmits_in == 0);
}

TEST_CASE("a data connection cut mid-transfer delivers nothing partial, a corrupted chunk is sent "
          "again, and a retry succeeds") {
  daemon_process b{unique_name("cafshm-test-rd"), "64MiB", 0, remote_yaml("64KiB", 2)};
  REQUIRE(b.ready());
  client_system cs;
  auto watcher = client::connect(cs.sys, b.address(), "watcher");
  REQUIRE(watcher);
  auto before = watcher->stats();
  REQUIRE(before);
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::error link_error;
  fake_sender peer{self, test::link_fake_peer(self, *engine, 4242, link_error)};
  REQUIRE_MESSAGE(peer.link.token != 0, describe(link_error));
  auto whole = pattern(3 * 4096, 3);
  auto hash = XXH3_64bits(whole.data(), whole.size());
  auto chunk = [&](int i) {
    return std::vector<char>(whole.begin() + i * 4096, whole.begin() + (i + 1) * 4096);
  };
  SUBCASE("cut by the sender after one chunk") {
    auto r = peer.offer(transmit_offer{4242, 7, whole.size(), 0, 4096, {"", "cut", {}}, {}, 0,
                                       false});
    REQUIRE(r.data_port != 0);
    {
      data_socket conn{r.data_host, r.data_port};
      conn.hello(r.data_token, peer.proof(r.data_token, 7));
      conn.frame(0, chunk(0));
      REQUIRE(conn.ack());
      REQUIRE(watcher->stats()->transmits_in == 1);
    } // closed mid-transfer
    CHECK(eventually(*watcher, 10s, [&](const engine_stats& st) {
      return st.transmits_in == 0 && st.blocks == before->blocks
             && st.free_bytes == before->free_bytes;
    }));
    CHECK(code_of(peer.commit(7, hash)) == errc::stale_block); // nothing left to commit
    CHECK_FALSE(watcher->lookup("cut"));
  }
  auto bad_frame = [&](data_socket& conn, int i) {
    auto bad = chunk(i);
    unsigned char f[24];
    put_u64(f, static_cast<uint64_t>(i) * 4096);
    put_u64(f + 8, bad.size());
    put_u64(f + 16, XXH3_64bits(bad.data(), bad.size()) ^ 1);
    REQUIRE(conn.send_bytes(f, sizeof f));
    REQUIRE(conn.send_bytes(bad.data(), bad.size()));
  };
  SUBCASE("a corrupted chunk is asked for again; the frames sent after it are skipped") {
    auto r = peer.offer(transmit_offer{4242, 8, whole.size(), 0, 4096, {"", "resent", {}}, {},
                                       0, false});
    data_socket conn{r.data_host, r.data_port};
    conn.hello(r.data_token, peer.proof(r.data_token, 8));
    conn.frame(0, chunk(0));
    bad_frame(conn, 1);
    conn.frame(2 * 4096, chunk(2)); // in flight when the request to resend comes
    auto a0 = conn.ack();
    REQUIRE(a0);
    CHECK((*a0)[0] == 4096);
    auto again = conn.ack();
    REQUIRE(again);
    CHECK((*again)[0] == 4096); // from the failed chunk's offset
    CHECK((*again)[1] == data_resend_status);
    for (int i = 1; i < 3; ++i) {
      conn.frame(static_cast<uint64_t>(i) * 4096, chunk(i));
      auto a = conn.ack();
      REQUIRE(a);
      CHECK((*a)[0] == static_cast<uint64_t>(i + 1) * 4096);
      CHECK((*a)[1] == 0);
    }
    commit_and_check(peer, *watcher, 8, hash, "resent");
  }
  SUBCASE("a chunk that fails more often than remote.checksum_retries fails the transfer") {
    auto r = peer.offer(transmit_offer{4242, 8, whole.size(), 0, 4096, {"", "cut", {}}, {}, 0,
                                       false});
    data_socket conn{r.data_host, r.data_port};
    conn.hello(r.data_token, peer.proof(r.data_token, 8));
    for (int attempt = 0; attempt < 2; ++attempt) { // remote.checksum_retries: 2 by default
      bad_frame(conn, 0);
      auto a = conn.ack();
      REQUIRE(a);
      CHECK((*a)[1] == data_resend_status);
    }
    bad_frame(conn, 0);
    auto a = conn.ack();
    REQUIRE(a);
    CHECK((*a)[1] == static_cast<uint64_t>(errc::checksum_mismatch));
    CHECK(eventually(*watcher, 10s, [&](const engine_stats& st) {
      return st.transmits_in == 0 && st.blocks == before->blocks
             && st.free_bytes == before->free_bytes;
    }));
    CHECK(code_of(peer.commit(8, hash)) == errc::stale_block);
    CHECK_FALSE(watcher->lookup("cut"));
  }
  // The retry: a new offer, a new token, every chunk.
  auto r = peer.offer(transmit_offer{4242, 9, whole.size(), 0, 4096, {"", "cut", {}}, {}, 0,
                                     false});
  {
    data_socket conn{r.data_host, r.data_port};
    conn.hello(r.data_token, peer.proof(r.data_token, 9));
    for (int i = 0; i < 3; ++i) {
      conn.frame(static_cast<uint64_t>(i) * 4096, chunk(i));
      REQUIRE(conn.ack());
    }
  }
  commit_and_check(peer, *watcher, 9, hash, "cut");
  auto after = watcher->stats();
  CHECK(after->blocks == before->blocks);
  CHECK(after->free_bytes == before->free_bytes);
}

namespace {

// A receiving side played by the test against a data_send: a listening socket on 127.0.0.1.
struct fake_receiver {
  int listen_fd = -1;
  int fd = -1;
  uint16_t port = 0;
  fake_receiver() {
    listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listen_fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd, 1) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
  }
  ~fake_receiver() {
    if (fd >= 0)
      ::close(fd);
    ::close(listen_fd);
  }
  // Accepts the sender and reads its hello.
  bool accept_hello() {
    fd = ::accept(listen_fd, nullptr, nullptr);
    if (fd < 0)
      return false;
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char hello[48];
    return ::recv(fd, hello, sizeof hello, MSG_WAITALL) == static_cast<ssize_t>(sizeof hello);
  }
  // The next frame's offset and bytes (nullopt if the sender closed).
  std::optional<std::pair<uint64_t, std::vector<char>>> frame() {
    unsigned char f[24];
    if (::recv(fd, f, sizeof f, MSG_WAITALL) != static_cast<ssize_t>(sizeof f))
      return std::nullopt;
    std::vector<char> bytes(get_u64(f + 8));
    if (::recv(fd, bytes.data(), bytes.size(), MSG_WAITALL) != static_cast<ssize_t>(bytes.size()))
      return std::nullopt;
    return std::pair{get_u64(f), std::move(bytes)};
  }
  bool ack(uint64_t verified, uint64_t status, uint64_t digest) {
    unsigned char a[24];
    put_u64(a, verified);
    put_u64(a + 8, status);
    put_u64(a + 16, digest);
    return ::send(fd, a, sizeof a, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof a);
  }
};

} // namespace

TEST_CASE("a data sender starts over from the chunk its receiver asks for again, up to its "
          "retries") {
  auto whole = pattern(5 * 4096, 4);
  auto hash = XXH3_64bits(whole.data(), whole.size());
  std::span<const std::byte> src{reinterpret_cast<const std::byte*>(whole.data()), whole.size()};
  fake_receiver rx;
  std::promise<std::pair<uint64_t, caf::error>> ended;
  auto start = [&](uint32_t retries) {
    auto s = std::make_shared<data_send>(
      data_send::target{"127.0.0.1", rx.port, 1, std::vector<unsigned char>(32, 7)}, src, 4096,
      4, 10s, retries, nullptr, [&](uint64_t digest, caf::error err) {
        ended.set_value({digest, std::move(err)});
      });
    s->start();
    return s;
  };
  SUBCASE("asked once: every byte arrives, and the digests agree") {
    auto sender = start(2);
    REQUIRE(rx.accept_hello());
    std::vector<uint64_t> offsets;
    std::vector<char> got(whole.size());
    uint64_t verified = 0;
    bool asked = false;
    while (verified < whole.size()) {
      auto f = rx.frame();
      REQUIRE(f);
      offsets.push_back(f->first);
      if (f->first != verified)
        continue; // sent before it saw the request: skipped
      if (f->first == 4096 && !asked) { // as if this chunk failed its checksum
        asked = true;
        REQUIRE(rx.ack(verified, data_resend_status, 0));
        continue;
      }
      std::memcpy(got.data() + f->first, f->second.data(), f->second.size());
      verified += f->second.size();
      REQUIRE(rx.ack(verified, 0,
                     verified == whole.size() ? XXH3_64bits(got.data(), got.size()) : 0));
    }
    auto end = ended.get_future();
    REQUIRE(end.wait_for(10s) == std::future_status::ready);
    auto [digest, err] = end.get();
    CHECK_MESSAGE(!err, describe(err));
    CHECK(digest == hash);
    CHECK(got == whole);
    // Its window was full when it was asked: chunks 2..4 came before chunk 1 came again.
    REQUIRE(offsets.size() >= 6);
    CHECK(offsets[0] == 0);
    CHECK(offsets[1] == 4096);
    CHECK(std::count(offsets.begin(), offsets.end(), 4096) == 2);
  }
  SUBCASE("asked more often than its retries: the transfer fails with checksum_mismatch") {
    auto sender = start(1);
    REQUIRE(rx.accept_hello());
    int asked = 0;
    while (asked < 2) {
      auto f = rx.frame();
      REQUIRE(f);
      if (f->first != 0)
        continue;
      ++asked;
      REQUIRE(rx.ack(0, data_resend_status, 0));
    }
    auto end = ended.get_future();
    REQUIRE(end.wait_for(10s) == std::future_status::ready);
    auto [digest, err] = end.get();
    CHECK(code_of(err) == errc::checksum_mismatch);
    CHECK_MESSAGE(describe(err).find("remote.checksum_retries") != std::string::npos,
                  describe(err));
  }
}

TEST_CASE("both engines answer requests while a big payload moves over the data connection") {
  daemon_process a{unique_name("cafshm-test-rd"), "1GiB", 0, remote_yaml("1MiB", 4)};
  daemon_process b{unique_name("cafshm-test-rd"), "1GiB", 0, remote_yaml("1MiB", 4)};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  client_system cs;
  client_options opts;
  opts.timeout = 60s;
  auto sender = client::connect(cs.sys, a.address(), "sender", opts);
  auto sink = client::connect(cs.sys, b.address(), "sink", opts);
  REQUIRE(sender);
  REQUIRE(sink);
  uint64_t size = uint64_t{1} << 30;
  auto ref = sender->allocate(size);
  REQUIRE(ref);
  uint64_t hash = 0;
  {
    auto view = sender->map(*ref, access_mode::read_write);
    REQUIRE(view);
    std::mt19937_64 rng{11};
    for (uint64_t i = 0; i < size; i += 8) {
      uint64_t x = rng();
      std::memcpy(view->data() + i, &x, 8);
    }
    hash = XXH3_64bits(view->data(), size);
    REQUIRE(sender->unmap(std::move(*view)));
  }
  transmit_target target;
  target.process = "sink";
  auto pending = std::async(std::launch::async,
                            [&] { return sender->transmit(ref.value(), b.address_text(), target); });
  // Requests to both engines answered while the payload is part-way: the sender reports bytes
  // acknowledged, the receiver bytes verified, both between 0 and the whole block.
  bool sender_mid = false, sink_mid = false;
  while (pending.wait_for(0s) != std::future_status::ready && !(sender_mid && sink_mid)) {
    if (auto st = sender->stats(); st && st->outgoing.size() == 1)
      sender_mid = sender_mid
                   || (st->outgoing[0].acked > 0 && st->outgoing[0].acked < size);
    if (auto st = sink->stats(); st && st->incoming.size() == 1)
      sink_mid = sink_mid || (st->incoming[0].acked > 0 && st->incoming[0].acked < size);
  }
  auto receipt = pending.get();
  REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
  CHECK(sender_mid);
  CHECK(sink_mid);
  CHECK(receipt->hash == hash);
  CHECK(receipt->payload_bytes == size);
  CHECK(hash_in_place(*sink, receipt->remote) == hash);
  auto sst = sender->stats();
  auto bst = sink->stats();
  CHECK(sst->data_connections_sent == 1);
  CHECK(bst->data_connections_received == 1);
  REQUIRE(sink->free(receipt->remote));
  REQUIRE(sender->free(*ref));
}
