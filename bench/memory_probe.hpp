// Memory figures of the benchmark's processes, from /proc/<pid>/status: peak and current RSS,
// and a sampler of the anonymous RSS while a run goes on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace bench {

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
