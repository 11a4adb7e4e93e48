// cafshm-bench: runs every benchmark row and writes bench/results/latest.{md,json} plus
// the data files of the plots. Started with --role NAME it is one of the helper processes.
//
//   cafshm-bench [--quick] [--rows handoff,pipeline,alloc,remote,scale,inbox,growth,
//                fanout] [--out DIR]
//                [--bin-dir DIR] [--policy stealing|sharing --threads N]
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <sys/utsname.h>
#include <unistd.h>

#include "bench.hpp"
#include "memory_probe.hpp"

#ifndef CAFSHM_BIN_DIR
#define CAFSHM_BIN_DIR "."
#endif
#ifndef CAFSHM_SOURCE_DIR
#define CAFSHM_SOURCE_DIR "."
#endif
#ifndef CAFSHM_BUILD_TYPE
#define CAFSHM_BUILD_TYPE "unknown"
#endif
#ifndef CAFSHM_CXX_FLAGS
#define CAFSHM_CXX_FLAGS ""
#endif

namespace bench {

bool options::has(const std::string& row) const {
  return std::find(rows.begin(), rows.end(), row) != rows.end();
}

void fill_pattern(char* p, uint64_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
  for (; i < n; ++i)
    p[i] = static_cast<char>(i);
}

stat summarize(std::vector<double> v) {
  stat s;
  if (v.empty())
    return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  auto at = [&](double q) {
    // nearest rank
    auto idx = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
    idx = idx == 0 ? 0 : idx - 1;
    return v[std::min(idx, v.size() - 1)];
  };
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  s.p99 = at(0.99);
  s.p10 = at(0.10);
  s.p90 = at(0.90);
  s.min = v.front();
  s.max = v.back();
  double sum = 0;
  for (auto x : v)
    sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string human_size(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && b >= 1024 && b % 1024 == 0) {
    b /= 1024;
    ++u;
  }
  return std::to_string(b) + units[u];
}

uint64_t parse_size(const std::string& text) {
  size_t pos = 0;
  uint64_t n = std::stoull(text, &pos);
  std::string unit = text.substr(pos);
  if (unit == "KiB")
    n <<= 10;
  else if (unit == "MiB")
    n <<= 20;
  else if (unit == "GiB")
    n <<= 30;
  return n;
}

std::vector<uint64_t> parse_list(const std::string& text) {
  std::vector<uint64_t> v;
  std::istringstream in{text};
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty())
      v.push_back(parse_size(item));
  return v;
}

double vm_hwm_mib() {
  return static_cast<double>(status_kib(::getpid(), "VmHWM")) / 1024.0;
}

std::map<std::string, std::string> machine_description() {
  std::map<std::string, std::string> m;
  std::ifstream cpu{"/proc/cpuinfo"};
  std::string line;
  while (std::getline(cpu, line))
    if (line.rfind("model name", 0) == 0) {
      m["cpu"] = line.substr(line.find(':') + 2);
      break;
    }
  m["cores"] = std::to_string(::sysconf(_SC_NPROCESSORS_ONLN));
  utsname u{};
  if (::uname(&u) == 0)
    m["kernel"] = std::string{u.sysname} + " " + u.release + " " + u.machine;
  std::ifstream mem{"/proc/meminfo"};
  while (std::getline(mem, line))
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream in{line.substr(9)};
      uint64_t kib = 0;
      in >> kib;
      m["memory"] = std::to_string(kib / 1024 / 1024) + " GiB";
      break;
    }
  m["compiler"] = std::string{"g++ "} + __VERSION__;
  m["build_type"] = CAFSHM_BUILD_TYPE;
  m["cxx_flags"] = CAFSHM_CXX_FLAGS;
  m["caf"] = "0.17.6 (Debian libcaf-dev)";
  std::ifstream load{"/proc/loadavg"};
  if (std::getline(load, line))
    m["load_at_start"] = line.substr(0, line.find(' ', line.find(' ', line.find(' ') + 1) + 1));
  std::ifstream os{"/etc/os-release"};
  while (std::getline(os, line))
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      auto v = line.substr(12);
      v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
      m["os"] = v;
    }
  return m;
}

} // namespace bench

namespace {

int usage() {
  std::cerr << "usage: cafshm-bench [--quick] [--rows handoff,pipeline,alloc,remote,scale,inbox,\n"
               "                    growth,fanout]\n"
               "                    [--out DIR] [--bin-dir DIR] [--policy stealing|sharing "
               "--threads N]\n";
  return 2;
}

std::string self_path() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return "/proc/self/exe";
  buf[n] = '\0';
  return buf;
}

} // namespace

int main(int argc, char** argv) {
  using namespace bench;
  // A helper process that died must not take the benchmark with it when it writes to the
  // helper's stdin.
  ::signal(SIGPIPE, SIG_IGN);
  std::map<std::string, std::string> args;
  std::string role;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--help" || a == "-h") {
      return usage();
    } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
      args[a] = argv[++i];
    } else {
      std::cerr << "cafshm-bench: unknown argument '" << a << "'\n";
      return usage();
    }
  }
  if (auto r = args.find("--role"); r != args.end()) {
    const auto& name = r->second;
    if (name == "peer")
      return role_peer(args);
    if (name == "engine-host")
      return role_engine_host(args);
    if (name == "xmit")
      return role_xmit(args);
    if (name == "tcp-sink")
      return role_tcp_sink(args);
    if (name == "tcp-source")
      return role_tcp_source(args);
    if (name == "tls-sink")
      return role_tls_sink(args);
    if (name == "tls-source")
      return role_tls_source(args);
    if (name == "caf-sink")
      return role_caf_sink(args);
    if (name == "caf-source")
      return role_caf_source(args);
    if (name == "inbox-echo")
      return role_inbox_echo(args);
    if (name == "inbox-caf-echo")
      return role_inbox_caf_echo(args);
    if (name == "iox-ping")
      return role_iox_ping(args);
    if (name == "iox-pong")
      return role_iox_pong(args);
    if (name == "fanout")
      return role_fanout(args);
    std::cerr << "cafshm-bench: unknown role " << name << "\n";
    return 2;
  }
  report rep;
  auto& opts = rep.opts;
  opts.quick = quick;
  opts.self = self_path();
  opts.bin_dir = args.count("--bin-dir") ? args["--bin-dir"] : CAFSHM_BIN_DIR;
  opts.out_dir = args.count("--out") ? args["--out"]
                                     : std::string{CAFSHM_SOURCE_DIR} + "/bench/results";
  if (args.count("--rows")) {
    opts.rows.clear();
    std::istringstream in{args["--rows"]};
    std::string item;
    while (std::getline(in, item, ','))
      opts.rows.push_back(item);
  }
  if (args.count("--policy")) {
    opts.policy = args["--policy"];
    opts.threads = args.count("--threads") ? std::stoi(args["--threads"]) : 1;
  }
  rep.machine = machine_description();
  auto t0 = std::chrono::steady_clock::now();
  auto lap = [&](const char* what) {
    std::cerr << "bench: " << what << " done at " << static_cast<int>(seconds_since(t0)) << " s\n";
  };
  sched chosen;
  if (!opts.policy.empty())
    chosen = {opts.policy, opts.threads};
  if (opts.has("handoff")) {
    rep.handoff = run_handoff(opts);
    if (!rep.handoff.rows.empty())
      chosen = rep.handoff.chosen;
    lap("handoff");
  }
  if (opts.has("pipeline")) {
    rep.pipeline = run_pipeline(opts);
    lap("pipeline");
  }
  if (opts.has("alloc")) {
    rep.alloc = run_alloc(opts, chosen);
    lap("alloc");
  }
  if (opts.has("remote")) {
    rep.remote = run_remote(opts);
    lap("remote");
  }
  if (opts.has("scale")) {
    rep.scale = run_scale(opts, chosen);
    lap("scale");
  }
  if (opts.has("inbox")) {
    rep.inbox = run_inbox(opts);
    lap("inbox");
  }
  if (opts.has("growth")) {
    rep.growth = run_growth(opts);
    lap("growth");
  }
  if (opts.has("fanout")) {
    rep.fanout = run_fanout(opts);
    lap("fanout");
  }
  rep.total_seconds = seconds_since(t0);
  {
    std::ifstream load{"/proc/loadavg"};
    std::string line;
    if (std::getline(load, line))
      rep.machine["load_at_end"] = line.substr(0, line.find(' ', line.find(' ', line.find(' ') + 1) + 1));
  }
  write_outputs(rep);
  std::cerr << "bench: wrote " << opts.out_dir << "/latest.md and latest.json in "
            << static_cast<int>(rep.total_seconds) << " s\n";
  return 0;
}
