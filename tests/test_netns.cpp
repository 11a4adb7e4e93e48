// Two engines in two network namespaces joined by a veth pair; the link is cut in the middle of a
// 256 MiB transmit. The sender must fail with a clear error and both engines' accounting must
// return exactly. Needs root and `ip netns` (CI runs as root); elsewhere the test says why and
// skips. Everything it makes (namespaces, processes, files, shared memory) is removed by guards,
// also when it fails. The addresses come from a /30 that exists only inside these namespaces.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "support/command.hpp"
#include "testing/daemon_process.hpp"

using namespace std::chrono_literals;
using cafshm::test::command;
using cafshm::test::run_command;
using cafshm::test::unique_name;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

namespace {

constexpr uint64_t MiB = 1 << 20;
constexpr uint64_t block_bytes = 256 * MiB;
constexpr uint64_t arena_bytes = 512 * MiB;

// Deletes the namespaces (which takes their veth pair along) on destruction.
struct netns_guard {
  std::vector<std::string> names;
  ~netns_guard() {
    for (const auto& n : names)
      run_command({"ip", "netns", "del", n}, 30s);
  }
};

// Removes a directory and the engines' shared-memory objects on destruction.
struct files_guard {
  fs::path dir;
  std::vector<std::string> engines;
  ~files_guard() {
    std::error_code ec;
    fs::remove_all(dir, ec);
    for (const auto& e : engines)
      for (const char* suffix : {".data", ".admin"})
        fs::remove("/dev/shm/" + e + suffix, ec);
  }
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

// The first number after "key": in one line of `stat --json` output. Top-level keys come first
// in that output (free_bytes, blocks before the per-process entries), so the first is the one.
std::optional<uint64_t> json_number(const std::string& text, const std::string& key) {
  auto at = text.find("\"" + key + "\":");
  if (at == std::string::npos)
    return std::nullopt;
  return std::stoull(text.substr(at + key.size() + 3));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> r;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    r.push_back(line);
  return r;
}

class namespace_pair {
public:
  // Why namespaces cannot be used here, or empty when they are ready.
  std::string skip_reason;

  // `rate`: tbf rate of A's uplink (tc syntax).
  explicit namespace_pair(const std::string& rate = "200mbit") {
    auto pid = std::to_string(::getpid());
    a_ = "cafshm-test-" + pid + "-a";
    b_ = "cafshm-test-" + pid + "-b";
    auto octet = std::to_string(::getpid() % 250);
    address_a_ = "10.200." + octet + ".1";
    address_b_ = "10.200." + octet + ".2";
    if (::geteuid() != 0) {
      skip_reason = "not running as root";
      return;
    }
    if (auto v = run_command({"ip", "-V"}, 10s); v.code != 0) {
      skip_reason = "the ip command (iproute2) is not available";
      return;
    }
    for (const auto& ns : {a_, b_}) {
      guard_.names.push_back(ns);
      if (auto r = run_command({"ip", "netns", "add", ns}, 30s); r.code != 0) {
        skip_reason = "ip netns add failed: " + trim(r.err);
        return;
      }
    }
    // veth names are per namespace: they cannot clash with the host's interfaces.
    if (auto r = run_command({"ip", "-n", a_, "link", "add", "veth-a", "type", "veth", "peer",
                              "name", "veth-b", "netns", b_},
                             30s);
        r.code != 0) {
      skip_reason = "cannot create a veth pair: " + trim(r.err);
      return;
    }
    for (auto [ns, dev, address] : {std::tuple{a_, "veth-a", address_a_},
                                    std::tuple{b_, "veth-b", address_b_}}) {
      for (std::vector<std::string> args :
           {std::vector<std::string>{"addr", "add", address + "/30", "dev", dev},
            std::vector<std::string>{"link", "set", dev, "up"},
            std::vector<std::string>{"link", "set", "lo", "up"}}) {
        args.insert(args.begin(), {"ip", "-n", ns});
        auto r = run_command(args, 30s);
        REQUIRE_MESSAGE(r.code == 0, "ip " << args[3] << " in " << ns << ": " << r.err);
      }
    }
    // Slow A's side down (the cut test: 200 Mbit/s, about 11 s for 256 MiB, so that the cut
    // reliably falls in the middle of the transfer; without tbf, chunks are made small).
    auto tc = run_command({"ip", "netns", "exec", a_, "tc", "qdisc", "add", "dev", "veth-a",
                           "root", "tbf", "rate", rate, "burst", "256kb", "latency", "500ms"},
                          30s);
    shaped_ = tc.code == 0;
    if (!shaped_)
      MESSAGE("no tbf traffic shaping (" << trim(tc.err) << "): the transfer runs unshaped");
  }

  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& address_b() const { return address_b_; }
  bool shaped() const { return shaped_; }

  /// argv run inside namespace `ns`.
  static std::vector<std::string> in(const std::string& ns, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
    return argv;
  }

  bool cut() {
    bool ok = true;
    for (auto [ns, dev] : {std::pair{a_, "veth-a"}, std::pair{b_, "veth-b"}})
      ok = run_command({"ip", "-n", ns, "link", "set", dev, "down"}, 30s).code == 0 && ok;
    return ok;
  }

private:
  std::string a_, b_, address_a_, address_b_;
  bool shaped_ = false;
  netns_guard guard_;
};

const std::string cafshmd_bin = std::string{CAFSHM_BIN_DIR} + "/cafshmd";
const std::string cafshm_bin = std::string{CAFSHM_BIN_DIR} + "/cafshm";

// `cafshm stat --json` of the engine at 127.0.0.1:4242 inside `ns`.
std::string stat_json(const std::string& ns) {
  auto r = run_command(namespace_pair::in(ns, {cafshm_bin, "--engine", "127.0.0.1:4242", "stat",
                                               "--json"}),
                       30s);
  return r.code == 0 ? r.out : std::string{};
}

// Polls `stat --json` in `ns` until `pred` holds for its output or `limit` passes.
template <class Pred>
bool stat_until(const std::string& ns, std::chrono::seconds limit, Pred pred) {
  auto deadline = steady::now() + limit;
  do {
    if (auto text = stat_json(ns); !text.empty() && pred(text))
      return true;
  } while (steady::now() < deadline);
  return false;
}

} // namespace

TEST_CASE("netns: a link cut mid-transfer fails the sender and both engines account exactly") {
  namespace_pair net;
  if (!net.skip_reason.empty()) {
    MESSAGE("skipped: network namespaces cannot be made here: " << net.skip_reason);
    return;
  }
  files_guard files{fs::temp_directory_path() / unique_name("cafshm-test-netns"),
                    {unique_name("cafshm-test-na"), unique_name("cafshm-test-nb")}};
  fs::create_directories(files.dir);
  const auto& engine_a = files.engines[0];
  const auto& engine_b = files.engines[1];
  // Inside each namespace, engine.listen is its own loopback (ports cannot clash with the host);
  // B accepts peers on its veth address. Each side ends the transmit when the other has been
  // silent for its remote.stall_timeout.
  auto write = [&](const std::string& file, const std::string& text) {
    std::ofstream out{files.dir / file};
    out << text;
    REQUIRE(out.good());
    return (files.dir / file).string();
  };
  auto config_a = write("a.yaml", "engine:\n  name: " + engine_a + "\n  arena: 512MiB\n"
                                    "  listen: {host: 127.0.0.1, port: 4242}\n"
                                    "client:\n  request_timeout: 2s\n"
                                    "remote:\n  cache: 0\n  unauthenticated_peers: true\n"
                                    "  allow_dial: [10.200.0.0/16]\n  stall_timeout: 2s\n"
                                    + (net.shaped() ? "  chunk: 1MiB\n  window: 2\n"
                                                    : "  chunk: 64KiB\n  window: 1\n"));
  auto config_b = write("b.yaml", "engine:\n  name: " + engine_b + "\n  arena: 512MiB\n"
                                    "  listen: {host: 127.0.0.1, port: 4242}\n"
                                    "client:\n  request_timeout: 1s\n"
                                    "remote:\n  cache: 0\n  unauthenticated_peers: true\n"
                                    "  stall_timeout: 2s\n  listen: {host: "
                                    + net.address_b() + ", port: 4243}\n");
  // Declared after the guards: the daemons end before the namespaces and files go.
  command daemon_a{namespace_pair::in(net.a(), {cafshmd_bin, "--config", config_a})};
  command daemon_b{namespace_pair::in(net.b(), {cafshmd_bin, "--config", config_b})};
  REQUIRE_MESSAGE(daemon_a.wait_for_line("cafshmd listening on ", 20s), daemon_a.err());
  REQUIRE_MESSAGE(daemon_b.wait_for_line("cafshmd listening on ", 20s), daemon_b.err());
  auto peers = daemon_b.wait_for_line("cafshmd peers on ", 20s);
  REQUIRE_MESSAGE(peers, daemon_b.err());
  CHECK(*peers == net.address_b() + ":4243 (plain)");

  { // 256 MiB of random bytes, stored at A as "big"
    std::vector<uint64_t> words(block_bytes / 8);
    std::mt19937_64 rng{42};
    for (auto& w : words)
      w = rng();
    std::ofstream out{files.dir / "big.bin", std::ios::binary};
    out.write(reinterpret_cast<const char*>(words.data()),
              static_cast<std::streamsize>(block_bytes));
    REQUIRE(out.good());
  }
  auto put = run_command(namespace_pair::in(net.a(), {cafshm_bin, "--engine", "127.0.0.1:4242",
                                                      "put", "big",
                                                      (files.dir / "big.bin").string()}),
                         120s);
  REQUIRE_MESSAGE(put.code == 0, put.err);
  fs::remove(files.dir / "big.bin");
  auto before_b = stat_json(net.b());
  REQUIRE(!before_b.empty());
  CHECK(json_number(before_b, "free_bytes") == arena_bytes);

  command transmit{namespace_pair::in(
    net.a(), {cafshm_bin, "--engine", "127.0.0.1:4242", "transmit", "big", "--to",
              net.address_b() + ":4243"})};
  REQUIRE(transmit.started());
  REQUIRE_MESSAGE(stat_until(net.b(), 60s,
                             [](const std::string& s) {
                               return json_number(s, "transmits_in") == 1u;
                             }),
                  "B never reported the incoming transfer; transmit: " << transmit.err());
  if (auto done = transmit.wait(0ms); done && *done == 0) {
    MESSAGE("skipped the cut: the transfer finished before the link could be cut");
    return;
  }
  REQUIRE(net.cut());

  // The sender fails within a deadline with one clear line (progress lines aside).
  auto code = transmit.wait(90s);
  REQUIRE_MESSAGE(code.has_value(), "cafshm transmit still runs 90 s after the cut");
  CHECK(*code == 1);
  CHECK(transmit.out().empty());
  std::vector<std::string> errors;
  for (const auto& line : lines_of(transmit.err()))
    if (line.rfind("transmit 'big': ", 0) != 0) // a progress line
      errors.push_back(line);
  REQUIRE_MESSAGE(errors.size() == 1, transmit.err());
  MESSAGE("the sender reported: " << errors[0]);
  CHECK(errors[0].rfind("cafshm: peer_failure: ", 0) == 0);
  CHECK(errors[0].find(net.address_b() + ":4243") != std::string::npos);

  // B freed the partial block: its accounting is back where it was.
  CHECK(stat_until(net.b(), 60s, [](const std::string& s) {
    return json_number(s, "transmits_in") == 0u && json_number(s, "free_bytes") == arena_bytes
           && json_number(s, "blocks") == 0u && s.find("\"names\":[]") != std::string::npos;
  }));
  // A: no transfer left, the block still A's (engine-held, named, unpinned).
  CHECK(stat_until(net.a(), 30s, [](const std::string& s) {
    return json_number(s, "transmits_out") == 0u && json_number(s, "blocks") == 1u
           && json_number(s, "free_bytes") == arena_bytes - block_bytes
           && s.find("\"names\":[{\"name\":\"big\",\"size\":268435456,\"owner\":0,")
                != std::string::npos;
  }));
  auto rm = run_command(namespace_pair::in(net.a(), {cafshm_bin, "--engine", "127.0.0.1:4242", "rm",
                                                     "big"}),
                        30s);
  CHECK_MESSAGE(rm.code == 0, rm.err << "\nengine A's log:\n" << daemon_a.err());
  CHECK(stat_until(net.a(), 30s, [](const std::string& s) {
    return json_number(s, "blocks") == 0u && json_number(s, "free_bytes") == arena_bytes;
  }));
}

TEST_CASE("netns: parallel transmits over a slow link outlast the request timeout and complete") {
  // A's uplink runs at 40 Mbit/s (5 MB/s). Three transmits of 8 MiB, each with 4 chunks of
  // 1 MiB in flight, queue 12 MiB on the link: about 2.5 s before the last queued chunk is
  // answered, more than A's request timeout of 1 s. Nothing is late while bytes move: all
  // three complete.
  namespace_pair net{"40mbit"};
  if (!net.skip_reason.empty()) {
    MESSAGE("skipped: network namespaces cannot be made here: " << net.skip_reason);
    return;
  }
  if (!net.shaped()) {
    MESSAGE("skipped: no tbf traffic shaping here, so the link is not slow");
    return;
  }
  files_guard files{fs::temp_directory_path() / unique_name("cafshm-test-netns"),
                    {unique_name("cafshm-test-na"), unique_name("cafshm-test-nb")}};
  fs::create_directories(files.dir);
  auto write = [&](const std::string& file, const std::string& text) {
    std::ofstream out{files.dir / file, std::ios::binary};
    out << text;
    REQUIRE(out.good());
    return (files.dir / file).string();
  };
  auto config_a = write("a.yaml", "engine:\n  name: " + files.engines[0] + "\n  arena: 64MiB\n"
                                    "  listen: {host: 127.0.0.1, port: 4242}\n"
                                    "client:\n  request_timeout: 1s\n"
                                    "remote:\n  cache: 0\n  unauthenticated_peers: true\n"
                                    "  allow_dial: [10.200.0.0/16]\n  chunk: 1MiB\n  window: 4\n"
                                    "  stall_timeout: 20s\n");
  auto config_b = write("b.yaml", "engine:\n  name: " + files.engines[1] + "\n  arena: 64MiB\n"
                                    "  listen: {host: 127.0.0.1, port: 4242}\n"
                                    "client:\n  request_timeout: 1s\n"
                                    "remote:\n  cache: 0\n  unauthenticated_peers: true\n"
                                    "  listen: {host: "
                                    + net.address_b() + ", port: 4243}\n");
  command daemon_a{namespace_pair::in(net.a(), {cafshmd_bin, "--config", config_a})};
  command daemon_b{namespace_pair::in(net.b(), {cafshmd_bin, "--config", config_b})};
  REQUIRE_MESSAGE(daemon_a.wait_for_line("cafshmd listening on ", 20s), daemon_a.err());
  REQUIRE_MESSAGE(daemon_b.wait_for_line("cafshmd peers on ", 20s), daemon_b.err());
  constexpr size_t transmits = 3;
  constexpr uint64_t each = 8 * MiB;
  std::mt19937_64 rng{7};
  for (size_t i = 0; i < transmits; ++i) {
    std::string bytes(each, '\0');
    for (size_t k = 0; k < each; k += 8) {
      auto w = rng();
      std::memcpy(bytes.data() + k, &w, 8);
    }
    auto file = write("p" + std::to_string(i) + ".bin", bytes);
    auto put = run_command(namespace_pair::in(net.a(), {cafshm_bin, "--engine", "127.0.0.1:4242",
                                                        "put", "p" + std::to_string(i), file}),
                           60s);
    REQUIRE_MESSAGE(put.code == 0, put.err);
  }
  std::vector<std::unique_ptr<command>> running;
  for (size_t i = 0; i < transmits; ++i)
    running.push_back(std::make_unique<command>(namespace_pair::in(
      net.a(), {cafshm_bin, "--engine", "127.0.0.1:4242", "transmit", "p" + std::to_string(i),
                "--to", net.address_b() + ":4243"})));
  for (auto& t : running) {
    auto code = t->wait(120s);
    REQUIRE_MESSAGE(code.has_value(), t->text() << " still runs after 120 s");
    CHECK_MESSAGE(*code == 0, t->text() << ": " << t->err());
  }
  // Each copy was verified against its whole-block checksum at B; all three are there.
  for (size_t i = 0; i < transmits; ++i) {
    auto got = run_command(namespace_pair::in(net.b(), {cafshm_bin, "--engine", "127.0.0.1:4242",
                                                        "get", "p" + std::to_string(i), "-"}),
                           60s);
    REQUIRE_MESSAGE(got.code == 0, got.err);
    std::ifstream in{files.dir / ("p" + std::to_string(i) + ".bin"), std::ios::binary};
    std::string want{std::istreambuf_iterator<char>{in}, {}};
    CHECK(got.out == want);
  }
}
