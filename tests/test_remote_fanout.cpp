// One engine sending to many: the sender's heap does not grow with the number of distinct peers
// it has sent to. A transfer's payload goes over a data connection that the engine owns and
// closes when the transfer ends, so what stays per linked peer is the link's state only.
#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/types.h>
#include <xxhash.h>

#include "cafshm/client.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;

namespace {

constexpr uint64_t mib = uint64_t{1} << 20;
constexpr uint64_t chunk = 1 * mib;
constexpr uint32_t window = 4;
constexpr uint64_t block_size = 16 * mib;
constexpr size_t receivers = 6;

std::string remote_yaml() {
  return "remote:\n  chunk: 1MiB\n  window: " + std::to_string(window) + "\n  cache: 0\n";
}

// RssAnon of `pid` from /proc/<pid>/status, in KiB (0 if it cannot be read).
uint64_t rss_anon_kib(pid_t pid) {
  std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0) {
      std::istringstream in{line.substr(8)};
      uint64_t kib = 0;
      in >> kib;
      return kib;
    }
  return 0;
}

} // namespace

TEST_CASE("sending one block to N peers in turn leaves the sender's heap within a bound "
          "independent of N") {
  daemon_process a{unique_name("cafshm-test-fa"), "16MiB", 0, remote_yaml()};
  REQUIRE(a.ready());
  std::vector<std::unique_ptr<daemon_process>> sinks;
  for (size_t i = 0; i < receivers; ++i) {
    sinks.push_back(std::make_unique<daemon_process>(unique_name("cafshm-test-fb"), "16MiB", 0,
                                                     remote_yaml()));
    REQUIRE(sinks.back()->ready());
  }
  client_system cs;
  client_options patient{.timeout = 20s}; // seven engines on two shared cores
  auto sender = client::connect(cs.sys, a.address(), "sender", patient);
  REQUIRE_MESSAGE(sender, (sender ? std::string{} : describe(sender.error())));
  std::vector<client> at_sink;
  for (auto& s : sinks) {
    auto c = client::connect(cs.sys, s->address(), "sink", patient);
    REQUIRE_MESSAGE(c, (c ? std::string{} : describe(c.error())));
    at_sink.push_back(std::move(*c));
  }

  auto ref = sender->allocate(block_size);
  REQUIRE(ref);
  std::vector<std::byte> bytes(block_size);
  std::mt19937_64 rng{42};
  for (uint64_t i = 0; i < block_size; i += 8) {
    uint64_t x = rng();
    std::memcpy(bytes.data() + i, &x, 8);
  }
  const uint64_t hash = XXH3_64bits(bytes.data(), block_size);
  {
    auto view = sender->map(*ref, access_mode::read_write);
    REQUIRE(view);
    std::memcpy(view->data(), bytes.data(), block_size);
    REQUIRE(sender->unmap(std::move(*view)));
  }

  // The sender's RssAnon after each send, once it counts no transfer in progress.
  std::vector<uint64_t> anon_kib;
  std::string trail;
  for (size_t i = 0; i < receivers; ++i) {
    CAPTURE(i);
    transmit_target target;
    target.process = "sink";
    auto receipt = sender->transmit(*ref, sinks[i]->address_text(), target);
    REQUIRE_MESSAGE(receipt, (receipt ? std::string{} : describe(receipt.error())));
    CHECK(receipt->hash == hash);
    {
      auto view = at_sink[i].map(receipt->remote, access_mode::read);
      REQUIRE(view);
      CHECK(view->size() == block_size);
      CHECK(std::memcmp(view->data(), bytes.data(), block_size) == 0);
      REQUIRE(at_sink[i].unmap(std::move(*view)));
    }
    REQUIRE(at_sink[i].free(receipt->remote));
    REQUIRE(eventually(*sender, 10s, [](const engine_stats& st) {
      return st.transmits_out == 0;
    }));
    anon_kib.push_back(rss_anon_kib(a.pid()));
    REQUIRE(anon_kib.back() != 0);
    trail += (trail.empty() ? "" : ", ") + std::to_string(anon_kib.back());
  }
  REQUIRE(sender->free(*ref));

  // After peer 1 the first link's costs are paid, after peer 2 the sender has done everything
  // once more; the four new peers after that may not add a window each (the payload on the
  // link used to leave 4-7 MiB of write buffers per peer), nor together twice one window.
  const uint64_t bound_kib = 2 * chunk * window / 1024;
  uint64_t growth = anon_kib[receivers - 1] > anon_kib[1] ? anon_kib[receivers - 1] - anon_kib[1]
                                                          : 0;
  CHECK_MESSAGE(growth < bound_kib, "sender RssAnon KiB after each peer: " << trail
                                      << "; growth after peer 2: " << growth << " KiB, bound "
                                      << bound_kib << " KiB");
  MESSAGE("sender RssAnon KiB after each peer: " << trail);
}
