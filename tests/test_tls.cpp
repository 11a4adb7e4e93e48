// Mutual TLS between engines (remote.tls, CAF's openssl module): two cafshmd with certificates of
// one CA exchange blocks over their TLS peer listeners; an untrusted or certificate-less peer is
// refused without leaking anything; misconfigurations are config errors, never CAF exceptions.
// Certificates are made at test time with the openssl command line, in a directory removed at
// the end.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"
#include "testing/child_process.hpp"
#include "support/client_system.hpp"
#include "support/command.hpp"
#include "testing/daemon_process.hpp"
#include "support/free_port.hpp"
#include "support/test_pki.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::pki;
using test::run_command;
using test::unique_name;
namespace fs = std::filesystem;

namespace {

// A cafshmd whose peer listener is on a port free a moment ago (retried should another process
// take it first); `peers` is that listener, `mode` what the daemon said about it.
struct peer_daemon {
  std::unique_ptr<daemon_process> daemon;
  uint16_t peer_port = 0;
  std::string mode; // "(tls)" or "(plain)"

  template <class Yaml>
  peer_daemon(const std::string& prefix, const std::string& arena, Yaml remote_yaml) {
    auto name = unique_name(prefix);
    for (int attempt = 0; attempt < 5 && !daemon; ++attempt) {
      auto port = test::free_port();
      auto d = std::make_unique<daemon_process>(name, arena, 0, remote_yaml(port));
      if (!d->ready())
        continue;
      auto line = d->process().wait_for_line("cafshmd peers on ", 10s);
      if (!line)
        continue;
      auto expected = "127.0.0.1:" + std::to_string(port) + " ";
      REQUIRE_MESSAGE(line->rfind(expected, 0) == 0, *line);
      mode = line->substr(expected.size());
      peer_port = port;
      daemon = std::move(d);
    }
    REQUIRE_MESSAGE(daemon, "cafshmd " << name << " did not start with a peer listener");
  }

  std::string peers() const { return "127.0.0.1:" + std::to_string(peer_port); }
  endpoint clients() const { return daemon->address(); }
};

std::pair<block_ref, uint64_t> random_block(client& c, uint64_t size, uint64_t seed) {
  auto ref = c.allocate(size);
  REQUIRE(ref);
  auto view = c.map(*ref, access_mode::read_write);
  REQUIRE(view);
  std::mt19937_64 rng{seed};
  for (uint64_t i = 0; i < size; i += 8) {
    uint64_t x = rng();
    std::memcpy(view->data() + i, &x, std::min<uint64_t>(8, size - i));
  }
  auto hash = XXH3_64bits(view->data(), size);
  REQUIRE(c.unmap(std::move(*view)));
  return {*ref, hash};
}

uint64_t hash_in_place(client& c, const block_ref& ref) {
  auto view = c.map(ref, access_mode::read);
  REQUIRE(view);
  auto h = XXH3_64bits(view->data(), view->size());
  REQUIRE(c.unmap(std::move(*view)));
  return h;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool one_line(const std::string& text) {
  return !text.empty() && text.back() == '\n' && std::count(text.begin(), text.end(), '\n') == 1;
}

// Whether a plain (non-TLS) CAF connection to host:port completes its handshake.
bool plain_connect_works(caf::actor_system& sys, uint16_t port) {
  caf::scoped_actor self{sys, true};
  bool ok = false;
  self->request(sys.middleman().actor_handle(), 10s, caf::connect_atom::value,
                std::string{"127.0.0.1"}, port)
    .receive([&](caf::node_id&, caf::strong_actor_ptr& p, std::set<std::string>&) { ok = !!p; },
             [&](caf::error&) { ok = false; });
  return ok;
}

} // namespace

TEST_CASE("tls: engines with certificates of one CA exchange identical bytes") {
  pki certs;
  peer_daemon a{"cafshm-test-tls-a", "64MiB", [&](uint16_t p) { return certs.yaml("a", p); }};
  peer_daemon b{"cafshm-test-tls-b", "64MiB", [&](uint16_t p) { return certs.yaml("b", p); }};
  CHECK(a.mode == "(tls)");
  CHECK(b.mode == "(tls)");
  client_system cs;
  auto sender = client::connect(cs.sys, a.clients(), "sender"); // local clients: plain
  auto sink = client::connect(cs.sys, b.clients(), "sink");
  REQUIRE(sender);
  REQUIRE(sink);
  // The peer listener speaks only TLS: a plain CAF handshake does not get through.
  CHECK_FALSE(plain_connect_works(cs.sys, b.peer_port));

  uint64_t size = (5u << 20) + 3;
  auto [ref, hash] = random_block(*sender, size, 11);
  auto receipt = sender->transmit(ref, b.peers(), transmit_target{"sink", "", {}});
  REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
  CHECK(receipt->bytes == size);
  CHECK(receipt->payload_bytes == size);
  CHECK(receipt->hash == hash);
  CHECK(hash_in_place(*sink, receipt->remote) == hash);
  auto st = sink->stats();
  REQUIRE(st);
  CHECK(st->peers.size() == 1);
  // The payload left the link for a data connection, TLS with the same certificates
  // (tests/test_data_tls.cpp shows what it refuses and that no byte crosses it in the clear).
  CHECK(st->data_connections_received == 1);
  CHECK(sender->stats()->data_connections_sent == 1);

  // And back: b dials a's TLS listener with its own certificate. CAF closes that redundant
  // connection (a and b are linked already); with CAF 0.17.6 and OpenSSL 3 this used to cut the
  // existing link as well (see actors/daemon/openssl_error_queue.cpp).
  auto back = sink->transmit(receipt->remote, a.peers(), transmit_target{"", "returned", {}});
  REQUIRE_MESSAGE(back, (back ? std::string{} : describe(back.error())));
  auto returned = sender->lookup("returned");
  REQUIRE(returned);
  CHECK(hash_in_place(*sender, *returned) == hash);

  REQUIRE(sender->remove("returned"));
  REQUIRE(sender->free(ref));
  REQUIRE(sink->free(receipt->remote));
}

TEST_CASE("tls: untrusted and certificate-less peers are refused, and nothing leaks") {
  pki certs;
  peer_daemon a{"cafshm-test-tls-a", "64MiB", [&](uint16_t p) { return certs.yaml("a", p); }};
  peer_daemon b{"cafshm-test-tls-b", "64MiB", [&](uint16_t p) { return certs.yaml("b", p); }};
  // rogue: a self-signed certificate b does not trust (rogue itself trusts b's CA)
  peer_daemon rogue{"cafshm-test-tls-r", "64MiB", [&](uint16_t p) {
                      return "remote:\n  listen: {host: 127.0.0.1, port: " + std::to_string(p)
                             + "}\n  tls: {certificate: " + certs.path("rogue.pem")
                             + ", key: " + certs.path("rogue.key")
                             + ", cafile: " + certs.path("ca.pem") + "}\n";
                    }};
  daemon_process plain{unique_name("cafshm-test-tls-p"), "64MiB"}; // no TLS, no certificate
  REQUIRE(plain.ready());
  client_system cs;
  auto at_a = client::connect(cs.sys, a.clients(), "trusted");
  REQUIRE(at_a);
  auto [trusted_ref, trusted_hash] = random_block(*at_a, 100000, 9);
  auto reader = client::connect(cs.sys, b.clients(), "reader");
  REQUIRE(reader);
  auto trusted_send = [&] {
    auto r = at_a->transmit(trusted_ref, b.peers(), transmit_target{"reader", "", {}}, 30s);
    REQUIRE_MESSAGE(r, (r ? std::string{} : describe(r.error())));
    CHECK(hash_in_place(*reader, r->remote) == trusted_hash);
    REQUIRE(reader->free(r->remote));
  };
  trusted_send(); // a and b are linked before anybody is refused
  auto at_b = client::connect(cs.sys, b.clients(), "watcher");
  auto at_rogue = client::connect(cs.sys, rogue.clients(), "sender");
  auto at_plain = client::connect(cs.sys, plain.address(), "sender");
  REQUIRE(at_b);
  REQUIRE(at_rogue);
  REQUIRE(at_plain);
  auto before = at_b->stats();
  REQUIRE(before);

  auto refused = [&](client& from, uint16_t port) {
    auto to = "127.0.0.1:" + std::to_string(port);
    auto earlier = from.stats();
    REQUIRE(earlier);
    auto [ref, hash] = random_block(from, 1 << 20, 5);
    auto r = from.transmit(ref, to, transmit_target{"", "never", {}}, 30s);
    REQUIRE_FALSE(r);
    INFO(describe(r.error()));
    CHECK(code_of(r.error()) == errc::peer_failure);
    CHECK(contains(describe(r.error()), to));
    auto linked = from.link("127.0.0.1", port);
    REQUIRE_FALSE(linked);
    CHECK(code_of(linked.error()) == errc::peer_failure);
    // The sender's accounting: no transfer left, its block unpinned and still its own.
    CHECK(eventually(from, 5s, [&](const engine_stats& st) {
      return st.transmits_out == 0 && st.blocks == earlier->blocks + 1
             && st.peers == earlier->peers;
    }));
    REQUIRE(from.free(ref));
    auto st = from.stats();
    REQUIRE(st);
    CHECK(st->free_bytes == earlier->free_bytes);
    CHECK(st->blocks == earlier->blocks);
  };
  SUBCASE("an untrusted certificate") { refused(*at_rogue, b.peer_port); }
  SUBCASE("no certificate at all") { refused(*at_plain, b.peer_port); }
  SUBCASE("a trusted engine does not accept an untrusted listener") {
    refused(*at_b, rogue.peer_port);
  }
  CHECK(eventually(*at_b, 5s, [&](const engine_stats& st) {
    return st.transmits_in == 0 && st.transmits_out == 0 && st.blocks == before->blocks
           && st.free_bytes == before->free_bytes && st.peers.size() == 1 && st.names == 0;
  }));
  // A refused handshake leaves errors in OpenSSL's per-thread queue; the link between the
  // trusted engines must survive that (cafshmd clears the queue before every TLS call, see
  // actors/daemon/openssl_error_queue.cpp).
  trusted_send();
  auto st = at_b->stats();
  REQUIRE(st);
  CHECK(st->peers.size() == 1);
  REQUIRE(at_a->free(trusted_ref));
}

TEST_CASE("tls: a link needs a proof made with the key of a certificate of the CA, also at the "
          "plain client port") {
  pki certs;
  peer_daemon a{"cafshm-test-tls-a", "64MiB", [&](uint16_t p) { return certs.yaml("a", p); }};
  peer_daemon b{"cafshm-test-tls-b", "64MiB", [&](uint16_t p) { return certs.yaml("b", p); }};
  client_system cs;
  auto sender = client::connect(cs.sys, a.clients(), "sender");
  auto watcher = client::connect(cs.sys, b.clients(), "watcher");
  REQUIRE(sender);
  REQUIRE(watcher);
  auto [ref, hash] = random_block(*sender, 100000, 3);
  auto receipt = sender->transmit(ref, b.peers(), transmit_target{"watcher", "", {}}, 30s);
  // a and b prove themselves to each other
  REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
  REQUIRE(watcher->free(receipt->remote));
  auto before = watcher->stats();
  REQUIRE(before);
  REQUIRE(before->peers.size() == 1);
  // An attacker without a certificate reaches b's plain client port (engine.listen), where
  // CAF 0.17 lets it address b's peer gateway, and tries to link as some engine.
  std::vector<std::string> argv{CAFSHM_BIN_DIR "/cafshm-attacker", "--engine",
                                "127.0.0.1:" + std::to_string(b.clients().port),
                                "--no-register"};
  test::child_process evil{argv};
  REQUIRE(evil.read_line(20s).value_or("") == "ready unregistered");
  auto ask = [&](const std::string& command) {
    REQUIRE(evil.write_stdin(command + "\n"));
    return evil.read_line(20s).value_or("(no answer)");
  };
  CHECK(ask("peerlink 4242 none") == "peerlink access_denied");
  // a self-signed certificate, properly signed with its own key
  CHECK(ask("peerlink 4242 cert " + certs.path("rogue.pem") + " " + certs.path("rogue.key"))
        == "peerlink access_denied");
  // a certificate of the CA (a's), signed with a key that is not its own
  CHECK(ask("peerlink 4242 cert " + certs.path("a.pem") + " " + certs.path("rogue.key"))
        == "peerlink access_denied");
  CHECK(ask("offer") == "offer access_denied");
  auto st = watcher->stats();
  REQUIRE(st);
  CHECK(st->peers == before->peers);
  CHECK(st->transmits_in == 0);
  CHECK(st->free_bytes == before->free_bytes);
  // Control: with a certificate of the CA and its key the same handshake links (whoever holds
  // them is a peer engine), so the refusals above were the proofs'.
  CHECK(ask("peerlink 4242 cert " + certs.path("b.pem") + " " + certs.path("b.key"))
        == "peerlink ok");
  CHECK(ask("offer") == "offer ok");
  REQUIRE(sender->free(ref));
}

TEST_CASE("tls: misconfigurations are reported as config errors") {
  pki certs;
  auto valid = [&] {
    settings s;
    s.remote.listen.port = 4999;
    s.remote.tls = {certs.path("b.pem"), certs.path("b.key"), certs.path("ca.pem"), "", ""};
    return s;
  };
  CHECK_FALSE(validate(valid()));

  SUBCASE("validate(): combinations and files") {
    struct example {
      const char* what;
      void (*change)(settings&);
      const char* expected;
    };
    const example examples[] = {
      {"cafile without certificate",
       [](settings& s) { s.remote.tls.certificate.clear(), s.remote.tls.key.clear(); },
       "remote.tls.cafile: cafile without certificate"},
      {"certificate without key", [](settings& s) { s.remote.tls.key.clear(); },
       "remote.tls.certificate: certificate without key"},
      {"key without certificate", [](settings& s) { s.remote.tls.certificate.clear(); },
       "remote.tls.key: key without certificate"},
      {"passphrase without key",
       [](settings& s) {
         s.remote.tls = {};
         s.remote.tls.passphrase = "x";
       },
       "remote.tls.passphrase: passphrase without key"},
      {"no CA certificates", [](settings& s) { s.remote.tls.cafile.clear(); },
       "remote.tls.cafile: missing"},
      {"TLS without a peer port", [](settings& s) { s.remote.listen.port = 0; },
       "remote.listen.port: must be 1..65535 when remote.tls is configured"},
      {"the peer port is engine.listen",
       [](settings& s) { s.engine.listen = s.remote.listen; },
       "remote.listen.port: is engine.listen"},
      {"capath is a file", [](settings& s) { s.remote.tls.capath = s.remote.tls.cafile; },
       "is not a directory"},
    };
    for (const auto& ex : examples) {
      INFO(std::string{ex.what});
      auto s = valid();
      ex.change(s);
      auto why = validate(s);
      REQUIRE(why);
      CHECK_MESSAGE(contains(*why, ex.expected), *why);
    }
    for (auto member : {&tls_settings::certificate, &tls_settings::key, &tls_settings::cafile}) {
      auto s = valid();
      s.remote.tls.*member = certs.path("absent.pem");
      auto why = validate(s);
      REQUIRE(why);
      CHECK_MESSAGE(contains(*why, "no such file: '" + certs.path("absent.pem") + "'"), *why);
    }
  }

  SUBCASE("cafshmd refuses to start with one line naming the problem") {
    auto config = [&](const std::string& name, const std::string& remote) {
      certs.write(name, "engine: {name: " + unique_name("cafshm-test-tls-x")
                          + ", listen: {host: 127.0.0.1, port: 0}}\n" + remote);
      return certs.path(name);
    };
    auto tls = [&](const std::string& who, const std::string& extra) {
      return "remote:\n  listen: {host: 127.0.0.1, port: 4999}\n  tls: {certificate: "
             + certs.path(who + ".pem") + ", key: " + certs.path(who + ".key")
             + ", cafile: " + certs.path("ca.pem") + extra + "}\n";
    };
    struct example {
      std::string file;
      std::string expected;
    };
    const example examples[] = {
      {config("cafile-only.yaml", "remote:\n  tls: {cafile: " + certs.path("ca.pem") + "}\n"),
       "remote.tls.cafile: cafile without certificate"},
      {config("wrong-pass.yaml", tls("a", ", passphrase: wrong")),
       "remote.tls.key: cannot load the private key '" + certs.path("a.key")
         + "' (wrong remote.tls.passphrase)"},
      {config("no-pass.yaml", tls("a", "")), "(it is encrypted: set remote.tls.passphrase)"},
      {config("other-key.yaml",
              "remote:\n  listen: {port: 4999}\n  tls: {certificate: " + certs.path("a.pem")
                + ", key: " + certs.path("b.key") + ", cafile: " + certs.path("ca.pem") + "}\n"),
       "is not the private key of the certificate"},
      {config("key-as-ca.yaml",
              "remote:\n  listen: {port: 4999}\n  tls: {certificate: " + certs.path("b.pem")
                + ", key: " + certs.path("b.key") + ", cafile: " + certs.path("b.key") + "}\n"),
       "remote.tls.cafile: cannot load CA certificates"},
      {config("no-port.yaml",
              "remote:\n  tls: {certificate: " + certs.path("b.pem") + ", key: "
                + certs.path("b.key") + ", cafile: " + certs.path("ca.pem") + "}\n"),
       "remote.listen.port: must be 1..65535 when remote.tls is configured"},
    };
    for (const auto& ex : examples) {
      CAPTURE(ex.file);
      auto r = run_command({CAFSHM_BIN_DIR "/cafshmd", "--config", ex.file}, 30s);
      REQUIRE(r.code.has_value());
      CHECK(*r.code == 1);
      CHECK(r.out.empty());
      CHECK_MESSAGE(one_line(r.err), r.err);
      CHECK_MESSAGE(r.err.rfind("cafshmd: " + ex.file + ":", 0) == 0, r.err);
      CHECK_MESSAGE(contains(r.err, ex.expected), r.err);
      CHECK_FALSE(contains(r.err, "secret"));
    }
  }

  SUBCASE("an engine with remote.tls but without CAF's openssl module refuses to run") {
    auto s = valid();
    s.engine.name = unique_name("cafshm-test-tls-m");
    caf::actor_system_config cfg;
    cfg.load<caf::io::middleman>();
    cfg.load<cafshm::module>();
    module::configure(cfg, s);
    caf::actor_system sys{cfg};
    auto engine = local_engine(sys);
    REQUIRE_FALSE(engine);
    CHECK(code_of(engine.error()) == errc::config_error);
    CHECK(contains(describe(engine.error()), "openssl"));
    CHECK_FALSE(fs::exists("/dev/shm/" + s.engine.name + ".data")); // nothing was created
  }
}
