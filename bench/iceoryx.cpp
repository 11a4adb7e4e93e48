// The iceoryx baseline of the hand-off row: Eclipse iceoryx 2.0.3 (Debian's iox-roudi and
// libiceoryx-posh) moving a payload of the same sizes between two processes in the same
// protocol as cafshm's pool hand-off: the pinging side loans a chunk, touches its first and
// last byte and publishes it; the ponging side takes it, touches the same two bytes, releases
// it and answers with a chunk of its own; the round trip ends when the pinging side has taken
// and touched that answer. Two forms of subscriber: polling (a loop on take()) and WaitSet (the
// thread blocks until data arrives), iceoryx's two answers to cafshm's spinning and parking.
//
// The bench starts its own iox-roudi with a memory-pool config sized for the row, and stops it
// (SIGTERM) at the end. RouDi is one per machine (its lock file and segments have fixed names), so
// the row is skipped with a reason when another RouDi runs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <cerrno>
#include <csignal>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "bench.hpp"
#include "processes.hpp"

#ifdef CAFSHM_BENCH_ICEORYX
#include <iceoryx_hoofs/log/logmanager.hpp>
#include <iceoryx_posh/mepoo/chunk_header.hpp>
#include <iceoryx_posh/popo/untyped_publisher.hpp>
#include <iceoryx_posh/popo/untyped_subscriber.hpp>
#include <iceoryx_posh/popo/wait_set.hpp>
#include <iceoryx_posh/runtime/posh_runtime.hpp>
#endif

namespace bench {

namespace {

using clock_type = std::chrono::steady_clock;

// The first 8 bytes of every chunk: what the receiver is asked to do.
constexpr uint64_t cmd_ping = 1;
constexpr uint64_t cmd_stop = 2;

// A running RouDi holds an flock on this file (iceoryx 2.0's fixed path; the file stays after).
[[maybe_unused]] constexpr auto roudi_lock = "/tmp/iox-unique-roudi.lock";

[[maybe_unused]] bool roudi_running() {
  int fd = ::open(roudi_lock, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool locked = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd); // also releases the lock if we got it
  return locked;
}

[[maybe_unused]] std::vector<uint64_t> parse_sizes(const std::string& text) {
  std::vector<uint64_t> r;
  std::stringstream in{text};
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty())
      r.push_back(std::stoull(item));
  return r;
}

[[maybe_unused]] std::string join_sizes(const std::vector<uint64_t>& sizes) {
  std::string r;
  for (auto s : sizes)
    r += (r.empty() ? "" : ",") + std::to_string(s);
  return r;
}

// RouDi's memory pools: for each payload size, chunks with room for iceoryx's chunk header
// (at most a few hundred bytes), enough for the chunks both sides hold at once.
[[maybe_unused]] std::string roudi_config(const std::vector<uint64_t>& sizes) {
  std::ostringstream out;
  out << "[general]\nversion = 1\n\n[[segment]]\n";
  auto sorted = sizes;
  std::sort(sorted.begin(), sorted.end());
  for (auto s : sorted)
    out << "\n[[segment.mempool]]\nsize = " << ((s + 1024 + 63) / 64 * 64)
        << "\ncount = " << (s >= (16u << 20) ? 4 : 16) << "\n";
  return out.str();
}

} // namespace

#ifdef CAFSHM_BENCH_ICEORYX

namespace {

volatile uint64_t iox_sink = 0;

void touch(const void* p, size_t n) {
  auto* v = static_cast<const volatile unsigned char*>(p);
  iox_sink = iox_sink + v[0] + v[n - 1];
}

struct endpoint_pair {
  iox::popo::UntypedPublisher pub;
  iox::popo::UntypedSubscriber sub;
  endpoint_pair(const char* out, const char* in)
    : pub({"cafshm-bench", "iceoryx", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, out)}),
      sub({"cafshm-bench", "iceoryx", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, in)},
          subscriber_options()) {
  }
  static iox::popo::SubscriberOptions subscriber_options() {
    iox::popo::SubscriberOptions o;
    o.queueCapacity = 4;
    return o;
  }

  // Loans a chunk of `size` bytes, writes the command and touches the last byte, publishes it.
  bool send(uint64_t size, uint64_t cmd) {
    auto chunk = pub.loan(static_cast<uint32_t>(size));
    if (chunk.has_error())
      return false;
    void* p = chunk.value();
    std::memcpy(p, &cmd, sizeof cmd);
    static_cast<unsigned char*>(p)[size - 1] = 1;
    pub.publish(p);
    return true;
  }

  // Takes the next chunk (polling, or waiting on `ws`); answers its command, touches it and
  // releases it.
  template <class WaitSet>
  uint64_t receive(WaitSet* ws, uint64_t& size) {
    for (;;) {
      auto taken = sub.take();
      if (!taken.has_error()) {
        const void* p = taken.value();
        size = iox::mepoo::ChunkHeader::fromUserPayload(p)->userPayloadSize();
        uint64_t cmd = 0;
        std::memcpy(&cmd, p, sizeof cmd);
        touch(p, size);
        sub.release(p);
        return cmd;
      }
      if (ws != nullptr)
        ws->wait();
    }
  }

  // Waits (up to 30 s) until both directions are connected through RouDi.
  bool connected() {
    auto deadline = clock_type::now() + std::chrono::seconds(30);
    while (clock_type::now() < deadline) {
      if (pub.hasSubscribers()
          && sub.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
};

// Registers this process with RouDi as `role`-PID, connects the publisher `out` and the
// subscriber `in` (attached to a WaitSet when `waitset`) and runs fn(endpoints, waitset or null).
template <class Fn>
int as_iceoryx_process(const std::string& role, const char* out, const char* in, bool waitset,
                       Fn fn) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn);
  auto name = "cafshm-bench-" + role + "-" + std::to_string(::getpid());
  iox::runtime::PoshRuntime::initRuntime(
    iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
  endpoint_pair ep{out, in};
  iox::popo::WaitSet<> ws;
  if (waitset && ws.attachState(ep.sub, iox::popo::SubscriberState::HAS_DATA).has_error()) {
    std::cerr << role << ": cannot attach the subscriber to the WaitSet\n";
    return 1;
  }
  if (!ep.connected()) {
    std::cerr << role << ": not connected within 30 s\n";
    return 1;
  }
  return fn(ep, waitset ? &ws : nullptr);
}

bool waitset_arg(const std::map<std::string, std::string>& args) {
  auto i = args.find("--waitset");
  return i != args.end() && i->second == "1";
}

} // namespace

int role_iox_pong(const std::map<std::string, std::string>& args) {
  return as_iceoryx_process("iox-pong", "pong", "ping", waitset_arg(args), [](auto& ep, auto* ws) {
    for (;;) {
      uint64_t size = 0;
      if (ep.receive(ws, size) == cmd_stop)
        return 0;
      if (!ep.send(size, cmd_ping)) {
        std::cerr << "iox-pong: loan of " << size << " bytes failed\n";
        return 1;
      }
    }
  });
}

int role_iox_ping(const std::map<std::string, std::string>& args) {
  auto sizes = parse_sizes(args.count("--sizes") ? args.at("--sizes") : "64");
  int rounds = std::stoi(args.count("--rounds") ? args.at("--rounds") : "5");
  int iters = std::stoi(args.count("--iters") ? args.at("--iters") : "100");
  return as_iceoryx_process("iox-ping", "ping", "pong", waitset_arg(args), [&](auto& ep, auto* ws) {
    std::vector<std::vector<double>> rtt(sizes.size());
    // Interleaved rounds over all sizes, as the cafshm pool rows are measured.
    for (int r = 0; r < rounds; ++r)
      for (size_t i = 0; i < sizes.size(); ++i)
        for (int k = r == 0 ? -50 : -5; k < iters; ++k) { // warm-up round trips first
          auto t0 = clock_type::now();
          if (!ep.send(sizes[i], cmd_ping)) {
            std::cerr << "iox-ping: loan of " << sizes[i] << " bytes failed\n";
            return 1;
          }
          uint64_t size = 0;
          ep.receive(ws, size);
          if (k >= 0)
            rtt[i].push_back(
              std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
    ep.send(sizes.front(), cmd_stop);
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::cout << "rtt " << sizes[i];
      for (auto v : rtt[i])
        std::cout << ' ' << v;
      std::cout << '\n';
    }
    std::cout << "done" << std::endl;
    return 0;
  });
}

iceoryx_report run_iceoryx(const options& opts, const std::vector<uint64_t>& sizes) {
  iceoryx_report rep;
  if (roudi_running()) {
    rep.error = std::string{"another iox-roudi runs (it holds "} + roudi_lock + ")";
    return rep;
  }
  auto config = std::filesystem::temp_directory_path()
                / (unique_name("cafshm-bench-roudi") + ".toml");
  {
    std::ofstream out{config};
    out << roudi_config(sizes);
  }
  {
    child_process roudi{{"/usr/bin/iox-roudi", "-c", config.string(), "-m", "off", "-l", "warning"}};
    int rounds = opts.quick ? 3 : 10;
    int iters = opts.quick ? 80 : 300;
    for (bool waitset : {false, true}) {
      std::cerr << "bench: handoff: iceoryx " << (waitset ? "WaitSet" : "polling") << "\n";
      std::string ws = waitset ? "1" : "0";
      child_process pong{{opts.self, "--role", "iox-pong", "--waitset", ws}};
      child_process ping{{opts.self, "--role", "iox-ping", "--waitset", ws, "--sizes", join_sizes(sizes),
                  "--rounds", std::to_string(rounds), "--iters", std::to_string(iters)}};
      std::vector<std::vector<double>> samples(sizes.size());
      bool done = false;
      while (auto line = ping.read_line(std::chrono::minutes(10))) {
        if (*line == "done") {
          done = true;
          break;
        }
        std::istringstream in{*line};
        std::string word;
        uint64_t size = 0;
        in >> word >> size;
        auto i = std::find(sizes.begin(), sizes.end(), size) - sizes.begin();
        if (word != "rtt" || i >= static_cast<long>(sizes.size()))
          continue;
        for (double v; in >> v;)
          samples[static_cast<size_t>(i)].push_back(v);
      }
      if (!done && rep.error.empty())
        rep.error = std::string{"iceoryx "} + (waitset ? "WaitSet" : "polling")
                    + " round trips did not finish (see the messages above)";
      for (auto* p : {&ping, &pong})
        if (!p->wait(std::chrono::seconds(20))) {
          p->kill(SIGKILL);
          p->wait(std::chrono::seconds(20));
        }
      if (rep.rows.empty())
        for (auto s : sizes)
          rep.rows.push_back({s, {}, {}});
      for (size_t i = 0; i < sizes.size(); ++i)
        (waitset ? rep.rows[i].waitset : rep.rows[i].polling) = summarize(samples[i]);
    }
    roudi.kill(SIGTERM);
    if (!roudi.wait(std::chrono::seconds(30))) {
      roudi.kill(SIGKILL);
      roudi.wait(std::chrono::seconds(20));
    }
  }
  std::filesystem::remove(config);
  return rep;
}

#else // iceoryx not found at configure time

int role_iox_pong(const std::map<std::string, std::string>&) {
  std::cerr << "cafshm-bench: built without iceoryx\n";
  return 2;
}

int role_iox_ping(const std::map<std::string, std::string>&) {
  return role_iox_pong({});
}

iceoryx_report run_iceoryx(const options&, const std::vector<uint64_t>&) {
  iceoryx_report rep;
  rep.error = "cafshm-bench was built without iceoryx (libiceoryx-posh-dev not found)";
  return rep;
}

#endif

} // namespace bench
