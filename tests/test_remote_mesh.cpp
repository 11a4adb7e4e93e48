// Engines that list each other in remote.peers, started at the same moment: each dials the
// others before some of them listen, and must keep dialing until every pair is linked; a peer
// that is killed and started again is linked again. Peers appear by name and address in stats,
// and the engines log when a peer links or goes down.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cafshm/client.hpp"
#include "memory_manager.hpp"
#include "shm_segment.hpp"
#include "support/client_system.hpp"
#include "support/command.hpp"
#include "testing/child_process.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"
#include "support/free_port.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::command;
using test::unique_name;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

namespace {

// Removes the engines' configuration files and shared memory (also of killed ones).
struct mesh_files {
  fs::path dir;
  std::vector<std::string> engines;
  ~mesh_files() {
    std::error_code ec;
    fs::remove_all(dir, ec);
    for (const auto& e : engines) {
      shm_segment::remove(memory_manager::data_segment_name(e));
      shm_segment::remove(memory_manager::admin_segment_name(e));
      fs::remove("/dev/shm/" + e + ".sock", ec);
    }
  }
};

std::string peer_label(size_t i) {
  return "e" + std::to_string(i);
}

// Pumps `c`'s output until its stderr holds `text` or `limit` passes.
bool logged(command& c, const std::string& text, std::chrono::milliseconds limit) {
  auto deadline = steady::now() + limit;
  while (c.err().find(text) == std::string::npos) {
    if (steady::now() >= deadline)
      return false;
    c.wait(100ms);
  }
  return true;
}

// Whether `st` lists every other engine of the mesh by name and address.
bool all_peers_named(const engine_stats& st, size_t self, const std::vector<uint16_t>& ports) {
  if (st.peers.size() != ports.size() - 1)
    return false;
  for (size_t j = 0; j < ports.size(); ++j) {
    if (j == self)
      continue;
    auto want = peer_label(j) + " (127.0.0.1:" + std::to_string(ports[j]) + ")";
    if (std::find(st.peers.begin(), st.peers.end(), want) == st.peers.end())
      return false;
  }
  return true;
}

// `count` engines that list each other in remote.peers, all started before any is waited for
// (the first ones dial engines that do not listen yet), and a client "watcher" of each.
struct mesh {
  size_t count;
  mesh_files files;
  std::vector<uint16_t> ports;
  std::vector<std::string> configs;
  std::vector<std::unique_ptr<command>> daemons;
  client_system cs;
  // Engines handshaking on two cores shared with another test: more than 5 s may pass.
  client_options patient{.timeout = 30s};
  std::vector<std::optional<client>> clients;

  explicit mesh(size_t n)
    : count(n), files{fs::temp_directory_path() / unique_name("cafshm-test-mesh"), {}} {
    fs::create_directories(files.dir);
    for (size_t i = 0; i < count; ++i) {
      files.engines.push_back(unique_name("cafshm-test-mesh"));
      ports.push_back(test::free_port());
      REQUIRE(ports.back() != 0);
    }
    for (size_t i = 0; i < count; ++i) {
      std::string yaml = "engine:\n  name: " + files.engines[i]
                         + "\n  arena: 16MiB\n  listen: {host: 127.0.0.1, port: "
                         + std::to_string(ports[i])
                         + "}\nremote:\n  unauthenticated_peers: true\n  redial_min: 50ms\n"
                           "  redial_max: 1s\n  peers:\n";
      for (size_t j = 0; j < count; ++j)
        if (j != i)
          yaml += "    - {name: " + peer_label(j) + ", host: 127.0.0.1, port: "
                  + std::to_string(ports[j]) + "}\n";
      configs.push_back((files.dir / (peer_label(i) + ".yaml")).string());
      std::ofstream out{configs.back()};
      out << yaml;
      REQUIRE(out.good());
    }
    for (size_t i = 0; i < count; ++i)
      daemons.push_back(start(i));
    for (auto& d : daemons)
      REQUIRE_MESSAGE(d->wait_for_line("cafshmd listening on ", 30s),
                      d->text() << ": " << d->err()); // a port taken meanwhile fails here
    clients.resize(count);
    for (size_t i = 0; i < count; ++i) {
      auto c = client::connect(cs.sys, endpoint{"127.0.0.1", ports[i]}, "watcher", patient);
      REQUIRE_MESSAGE(c, (c ? std::string{} : describe(c.error())));
      clients[i].emplace(std::move(*c));
    }
  }
  ~mesh() { clients.clear(); } // unregister before the engines stop

  std::unique_ptr<command> start(size_t i) const {
    return std::make_unique<command>(std::vector<std::string>{
      std::string{CAFSHM_BIN_DIR} + "/cafshmd", "--config", configs[i]});
  }

  // Checks that engine i lists every other engine by name and address within `limit`.
  void check_linked(size_t i, std::chrono::milliseconds limit) {
    CAPTURE(i);
    std::string seen;
    bool linked = test::eventually(*clients[i], limit, [&](const engine_stats& st) {
      seen.clear();
      for (const auto& p : st.peers)
        seen += "\n  " + p;
      return all_peers_named(st, i, ports);
    });
    if (!linked)
      daemons[i]->wait(500ms); // reads what it logged meanwhile
    CHECK_MESSAGE(linked, "engine " << i << " lists the peers:" << seen << "\nits log:\n"
                                    << daemons[i]->err());
  }
};

} // namespace

TEST_CASE("a full mesh of engines started at once links every pair, and heals after a restart") {
  mesh m{6}; // 15 pairs, each dialed from both ends
  auto& daemons = m.daemons;
  auto& clients = m.clients;
  auto& ports = m.ports;
  auto& cs = m.cs;
  const auto engine_count = m.count;
  for (size_t i = 0; i < engine_count; ++i) {
    m.check_linked(i, 30s);
    CHECK(logged(*daemons[i], "peer " + peer_label((i + 1) % engine_count) + " (127.0.0.1:"
                                + std::to_string(ports[(i + 1) % engine_count]) + ") linked",
                 5s));
  }

  // Engine 0 is killed: the others log it and drop it; started again, it is linked again.
  clients[0].reset();
  daemons[0]->kill(SIGKILL);
  daemons[0]->wait(20s);
  for (size_t i = 1; i < engine_count; ++i) {
    CAPTURE(i);
    CHECK(logged(*daemons[i], "peer e0 (127.0.0.1:" + std::to_string(ports[0]) + ") went down",
                 10s));
  }
  daemons[0] = m.start(0);
  REQUIRE_MESSAGE(daemons[0]->wait_for_line("cafshmd listening on ", 20s), daemons[0]->err());
  auto c0 = client::connect(cs.sys, endpoint{"127.0.0.1", ports[0]}, "watcher-again", m.patient);
  daemons[0]->wait(100ms);
  REQUIRE_MESSAGE(c0, (c0 ? std::string{} : describe(c0.error()))
                        << "; engine e0 said: " << daemons[0]->err());
  clients[0].emplace(std::move(*c0));
  for (size_t i = 0; i < engine_count; ++i)
    m.check_linked(i, 30s);
  CHECK(logged(*daemons[1], "peer e0 (127.0.0.1:" + std::to_string(ports[0]) + ") linked again",
               5s));
}

TEST_CASE("16 engines started at once with a full remote.peers mesh are all linked within a "
          "bounded time") {
  mesh m{16}; // 120 pairs
  for (size_t i = 0; i < m.count; ++i)
    m.check_linked(i, 60s);
}
