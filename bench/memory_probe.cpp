#include "memory_probe.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

namespace bench {

std::map<std::string, uint64_t> proc_status(pid_t pid) {
  std::map<std::string, uint64_t> result;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    auto key = line.substr(0, colon);
    if (key.rfind("Vm", 0) != 0 && key.rfind("Rss", 0) != 0)
      continue;
    std::istringstream value{line.substr(colon + 1)};
    uint64_t kib = 0;
    if (value >> kib)
      result[key] = kib;
  }
  return result;
}

uint64_t status_kib(pid_t pid, const std::string& key) {
  auto st = proc_status(pid);
  auto i = st.find(key);
  return i == st.end() ? 0 : i->second;
}

bool reset_peak_rss(pid_t pid) {
  std::ofstream out{"/proc/" + std::to_string(pid) + "/clear_refs"};
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

namespace {

// RssAnon (KiB) from /proc/<pid>/status, read with plain syscalls (fast, in the sampler loop).
uint64_t rss_anon_kib(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/status", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  char buf[4096];
  auto n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  const char* p = std::strstr(buf, "RssAnon:");
  return p ? std::strtoull(p + 8, nullptr, 10) : 0;
}

} // namespace

rss_sampler::rss_sampler(std::vector<pid_t> pids, std::chrono::milliseconds every)
  : pids_(std::move(pids)), peak_(pids_.size()) {
  for (size_t i = 0; i < pids_.size(); ++i) {
    base_.push_back(rss_anon_kib(pids_[i]));
    peak_[i] = base_.back();
  }
  thread_ = std::thread{[this, every] {
    while (!stop_.load()) {
      for (size_t i = 0; i < pids_.size(); ++i) {
        auto v = rss_anon_kib(pids_[i]);
        if (v > peak_[i].load())
          peak_[i] = v;
      }
      std::this_thread::sleep_for(every);
    }
  }};
}

rss_sampler::~rss_sampler() {
  stop();
}

std::vector<uint64_t> rss_sampler::stop() {
  if (thread_.joinable()) {
    stop_ = true;
    thread_.join();
  }
  std::vector<uint64_t> result;
  for (auto& p : peak_)
    result.push_back(p.load());
  return result;
}

} // namespace bench
