// Data connections with remote.tls (data_tls.hpp): the payload crosses the socket only inside a
// mutual TLS session with certificates of the engines' CA; a connection without TLS, without a
// certificate of the CA on either side, is refused and counted, and the token it tried stays
// good for the real sender.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xxhash.h>

#include "cafshm/error.hpp"
#include "data_connection.hpp"
#include "data_tls.hpp"
#include "support/tcp_proxy.hpp"
#include "support/test_pki.hpp"
#include "test_names.hpp"

using namespace cafshm;
using namespace std::chrono_literals;

namespace {

constexpr auto deadline = 60s;

std::vector<char> pattern(size_t n, uint64_t seed) {
  std::vector<char> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return v;
}

std::shared_ptr<const data_tls> tls_of(const test::pki& certs, const std::string& who) {
  auto t = data_tls::create(certs.settings(who));
  REQUIRE_MESSAGE(t, (t ? std::string{} : describe(t.error())));
  return *t;
}

// How a transfer's side ended: its digest, or why it failed.
struct ending {
  std::promise<std::pair<uint64_t, caf::error>> promise;
  std::future<std::pair<uint64_t, caf::error>> future = promise.get_future();
  data_done callback() {
    return [this](uint64_t digest, caf::error err) { promise.set_value({digest, std::move(err)}); };
  }
  std::pair<uint64_t, caf::error> get() {
    REQUIRE(future.wait_for(deadline) == std::future_status::ready);
    return future.get();
  }
};

// A data port expecting one transfer of `size` bytes under token 7 (transfer id 9).
struct expected_transfer {
  static constexpr uint64_t token = 7;
  static constexpr uint64_t id = 9;
  std::vector<unsigned char> link_key = std::vector<unsigned char>(32, 0x5a);
  std::vector<unsigned char> proof = data_connection_proof(link_key, token, id);
  std::vector<char> dest;
  ending received;
  std::unique_ptr<data_listener> port;
  std::shared_ptr<data_receive> job; // as the engine's transfer record holds it

  expected_transfer(size_t size, std::shared_ptr<const data_tls> tls) : dest(size) {
    auto l = data_listener::open("127.0.0.1", 10s, std::move(tls));
    REQUIRE_MESSAGE(l, (l ? std::string{} : describe(l.error())));
    port = std::move(*l);
    job = std::make_shared<data_receive>(
      std::span{reinterpret_cast<std::byte*>(dest.data()), dest.size()}, uint64_t{64 << 10}, id,
      proof, 10s, 2, received.callback());
    port->expect(token, job);
  }

  // Sends `src` to the port (or to `via`) with `tls` (null: plain TCP); how the sender ended.
  std::pair<uint64_t, caf::error> send(const std::vector<char>& src,
                                       std::shared_ptr<const data_tls> tls, uint16_t via = 0) {
    ending sent;
    auto s = std::make_shared<data_send>(
      data_send::target{"127.0.0.1", via != 0 ? via : port->port(), token, proof},
      std::span{reinterpret_cast<const std::byte*>(src.data()), src.size()}, uint64_t{64 << 10},
      4, 10s, 2, std::move(tls), sent.callback());
    s->start();
    return sent.get();
  }
};

} // namespace

TEST_CASE("data connections with remote.tls: the payload crosses the socket only inside a TLS "
          "session between certificates of the CA") {
  test::pki certs;
  expected_transfer rx{(1u << 20) + 5, tls_of(certs, "b")};
  auto src = pattern(rx.dest.size(), 3);
  test::tcp_proxy route{rx.port->port()}; // what a party on the route sees
  REQUIRE(route.port() != 0);
  auto [digest, err] = rx.send(src, tls_of(certs, "a"), route.port());
  CHECK_MESSAGE(!err, describe(err));
  auto [got, rx_err] = rx.received.get();
  CHECK_MESSAGE(!rx_err, describe(rx_err));
  CHECK(digest == XXH3_64bits(src.data(), src.size()));
  CHECK(got == digest);
  CHECK(rx.dest == src);
  CHECK(rx.port->refused() == 0);
  // The route carried the whole payload and more, but none of it (nor the hello's proof) in
  // the clear: no 32-byte piece of the block appears in what it relayed.
  auto seen = route.client_bytes();
  CHECK(seen.size() > src.size());
  CHECK(seen.find("cafshmD1") == std::string::npos);
  CHECK(seen.find(std::string(rx.proof.begin(), rx.proof.end())) == std::string::npos);
  size_t in_clear = 0;
  for (size_t at = 0; at + 32 <= src.size(); at += 4096)
    in_clear += seen.find(std::string_view{src.data() + at, 32}) != std::string::npos;
  CHECK(in_clear == 0);
}

TEST_CASE("data connections with remote.tls: a sender without TLS or without a certificate of "
          "the CA is refused and counted, and the token stays good for the real sender") {
  test::pki certs;
  expected_transfer rx{300000, tls_of(certs, "b")};
  auto src = pattern(rx.dest.size(), 5);
  // The exact hello, over plain TCP: a TLS port takes no plain bytes.
  {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(rx.port->port());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    unsigned char hello[48];
    std::memcpy(hello, "cafshmD1", 8);
    for (int i = 0; i < 8; ++i)
      hello[8 + i] = static_cast<unsigned char>(expected_transfer::token >> (8 * i));
    std::memcpy(hello + 16, rx.proof.data(), 32);
    REQUIRE(::send(fd, hello, sizeof hello, MSG_NOSIGNAL) == 48);
    char c;
    CHECK(::recv(fd, &c, 1, 0) <= 0); // closed by the port
    ::close(fd);
    CHECK(cafshm_test::wait_until([&] { return rx.port->refused() == 1; }, deadline));
  }
  // A data sender without TLS.
  auto [d1, plain] = rx.send(src, nullptr);
  CHECK(code_of(plain) == errc::peer_failure);
  CHECK(cafshm_test::wait_until([&] { return rx.port->refused() == 2; }, deadline));
  // A sender whose certificate is self-signed (it trusts the CA itself).
  auto [d2, rogue] = rx.send(src, tls_of(certs, "rogue"));
  CHECK(code_of(rogue) == errc::peer_failure);
  CHECK(cafshm_test::wait_until([&] { return rx.port->refused() == 3; }, deadline));
  CHECK(rx.received.future.wait_for(0s) == std::future_status::timeout); // nothing received
  // The token was never used: the sender with a certificate of the CA delivers.
  auto [digest, err] = rx.send(src, tls_of(certs, "a"));
  CHECK_MESSAGE(!err, describe(err));
  auto [got, rx_err] = rx.received.get();
  CHECK_MESSAGE(!rx_err, describe(rx_err));
  CHECK(got == XXH3_64bits(src.data(), src.size()));
  CHECK(rx.dest == src);
  CHECK(rx.port->refused() == 3);
}

TEST_CASE("data connections with remote.tls: a sender refuses a data port without TLS or "
          "without a certificate of the CA before any payload leaves") {
  test::pki certs;
  auto src = pattern(200000, 7);
  SUBCASE("a data port whose certificate is self-signed") {
    expected_transfer rx{src.size(), tls_of(certs, "rogue")};
    auto [digest, err] = rx.send(src, tls_of(certs, "a"));
    CHECK(code_of(err) == errc::peer_failure);
    CHECK_MESSAGE(describe(err).find("TLS handshake") != std::string::npos, describe(err));
    CHECK_MESSAGE(describe(err).find("certificate") != std::string::npos, describe(err));
    CHECK(cafshm_test::wait_until([&] { return rx.port->refused() == 1; }, deadline));
  }
  SUBCASE("a plain data port") {
    expected_transfer rx{src.size(), nullptr};
    auto [digest, err] = rx.send(src, tls_of(certs, "a"));
    CHECK(code_of(err) == errc::peer_failure);
    CHECK_MESSAGE(describe(err).find("TLS handshake") != std::string::npos, describe(err));
    CHECK(cafshm_test::wait_until([&] { return rx.port->refused() == 1; }, deadline));
  }
}

TEST_CASE("data connections with remote.tls: unusable certificate settings are configuration "
          "errors naming the setting") {
  test::pki certs;
  auto t = certs.settings("a");
  SUBCASE("a wrong passphrase") {
    t.passphrase = "wrong";
    auto r = data_tls::create(t);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::config_error);
    CHECK_MESSAGE(describe(r.error()).find("remote.tls.key") != std::string::npos,
                  describe(r.error()));
  }
  SUBCASE("a key of another certificate") {
    t.key = certs.path("b.key");
    t.passphrase.clear();
    auto r = data_tls::create(t);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::config_error);
    CHECK_MESSAGE(describe(r.error()).find("remote.tls.key") != std::string::npos,
                  describe(r.error()));
  }
  SUBCASE("a missing CA file") {
    t.cafile = certs.path("none.pem");
    auto r = data_tls::create(t);
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(describe(r.error()).find("remote.tls.cafile") != std::string::npos,
                  describe(r.error()));
  }
}
