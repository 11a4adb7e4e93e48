#include "proc.hpp"

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

using clock_type = std::chrono::steady_clock;

child::child(std::vector<std::string> argv) {
  int out[2];
  int in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0)
    return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(in[0], STDIN_FILENO);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  out_ = out[0];
  in_ = in[1];
  ::signal(SIGPIPE, SIG_IGN);
}

child::~child() {
  if (running())
    kill(SIGKILL);
  wait(std::chrono::seconds(10));
  close_stdin();
  if (out_ >= 0)
    ::close(out_);
}

bool child::running() {
  if (pid_ <= 0 || status_)
    return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

std::optional<std::string> child::read_line(std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      auto line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0 || out_ < 0)
      return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    char chunk[4096];
    auto n = ::read(out_, chunk, sizeof(chunk));
    if (n <= 0)
      return std::nullopt;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::optional<std::string> child::wait_for(const std::string& prefix,
                                           std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  while (clock_type::now() < deadline) {
    auto line = read_line(
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()));
    if (!line)
      return std::nullopt;
    if (line->rfind(prefix, 0) == 0)
      return line->substr(prefix.size());
  }
  return std::nullopt;
}

bool child::write_line(const std::string& line) {
  if (in_ < 0)
    return false;
  std::string text = line + "\n";
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    auto n = ::write(in_, p, left);
    if (n <= 0)
      return false;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

void child::close_stdin() {
  if (in_ >= 0) {
    ::close(in_);
    in_ = -1;
  }
}

void child::kill(int sig) {
  if (running())
    ::kill(pid_, sig);
}

std::optional<int> child::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || status_)
    return status_;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(timeout.count()));
    ::close(pidfd);
  }
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_)
    status_ = st;
  return status_;
}

// -- daemon -------------------------------------------------------------------------------------

engine_daemon::engine_daemon(const std::string& bin_dir, const std::string& name, const std::string& arena,
               const std::string& extra_yaml)
  : name_(name), config_((std::filesystem::temp_directory_path() / (name + ".yaml")).string()) {
  {
    std::ofstream out{config_};
    out << "engine:\n  name: " << name << "\n  arena: " << arena
        << "\n  max_blocks: 8192\n  max_grants: 4096\n  liveness_interval: 200ms\n"
        << "  listen: {host: 127.0.0.1, port: 0}\n"
        << extra_yaml;
  }
  proc_ = std::make_unique<child>(
    std::vector<std::string>{bin_dir + "/cafshmd", "--config", config_, "--port", "0"});
  if (auto rest = proc_->wait_for("cafshmd listening on ", std::chrono::seconds(30)))
    port_ = static_cast<uint16_t>(std::stoi(rest->substr(rest->rfind(':') + 1)));
}

engine_daemon::~engine_daemon() {
  if (proc_) {
    proc_->kill(SIGTERM);
    if (!proc_->wait(std::chrono::seconds(30)))
      proc_->kill(SIGKILL);
    proc_.reset();
  }
  std::error_code ec;
  std::filesystem::remove(config_, ec);
  // Names as memory_manager::data_segment_name / admin_segment_name make them.
  ::shm_unlink(("/" + name_ + ".data").c_str());
  ::shm_unlink(("/" + name_ + ".admin").c_str());
  for (int i = 1; i < 64; ++i) // data segments an arena that grows added (admin::max_segments)
    ::shm_unlink(("/" + name_ + ".data." + std::to_string(i)).c_str());
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

// -- /proc ----------------------------------------------------------------------------------------

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
