// Processes of the benchmark: children with stdout/stdin pipes (the helper roles and cafshmd),
// a cafshmd with its own config, and memory figures from /proc/<pid>/status.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace bench {

class child {
public:
  /// Starts argv[0] (a path) with stdout and stdin on pipes; stderr stays ours.
  explicit child(std::vector<std::string> argv);
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child(); // SIGKILL if still running, reap

  pid_t pid() const noexcept { return pid_; }
  bool running();

  /// Next line of its stdout, or nullopt at EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  /// Reads lines until one starts with `prefix`; returns the rest of it.
  std::optional<std::string> wait_for(const std::string& prefix, std::chrono::milliseconds timeout);
  bool write_line(const std::string& line);
  void close_stdin();
  void kill(int sig);
  /// Waits for the end; its wait status or nullopt after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout);

private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string buffer_;
  std::optional<int> status_;
};

/// A cafshmd with a unique engine name on a free port. `extra_yaml` is appended to its config
/// (top-level sections such as `remote:`).
class engine_daemon {
public:
  engine_daemon(const std::string& bin_dir, const std::string& name, const std::string& arena,
         const std::string& extra_yaml = {});
  ~engine_daemon(); // SIGTERM, reap, remove config and (should it have died) its segments

  bool ready() const noexcept { return port_ != 0; }
  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return proc_ ? proc_->pid() : -1; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& name() const noexcept { return name_; }

private:
  std::string name_;
  std::string config_;
  std::unique_ptr<child> proc_;
  uint16_t port_ = 0;
};

/// "<prefix>-<pid>-<n>", unique per process and call.
std::string unique_name(const std::string& prefix);

/// Fields of /proc/<pid>/status in KiB (VmHWM, VmRSS, RssAnon, RssShmem, ...); empty if gone.
std::map<std::string, uint64_t> proc_status(pid_t pid);
uint64_t status_kib(pid_t pid, const std::string& key);

/// Resets the peak RSS (VmHWM) of `pid` to its current RSS (writes 5 to clear_refs).
bool reset_peak_rss(pid_t pid);

/// Samples RssAnon of some processes every few milliseconds in a thread of its own and keeps
/// the peak of each: VmHWM includes the shared-memory pages a process touched, the anonymous
/// peak is what its heap (buffers, messages) took.
class rss_sampler {
public:
  explicit rss_sampler(std::vector<pid_t> pids, std::chrono::milliseconds every = std::chrono::milliseconds(4));
  ~rss_sampler();
  /// Stops sampling; returns peak RssAnon (KiB) per pid, in the order given.
  std::vector<uint64_t> stop();
  /// RssAnon (KiB) per pid when sampling began.
  const std::vector<uint64_t>& baseline() const noexcept { return base_; }

private:
  std::vector<pid_t> pids_;
  std::vector<uint64_t> base_;
  std::vector<std::atomic<uint64_t>> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace bench
