// A cafshmd started for one test: its own engine name and a free port, removed on destruction
// (SIGTERM, reap, and removal of its segments should it have died without cleaning up).
#pragma once

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "memory_manager.hpp"
#include "cafshm/settings.hpp"
#include "shm_segment.hpp"
#include "support/child_process.hpp"
#include "support/daemon_announcement.hpp"

namespace cafshm::test {

/// "<prefix>-<pid>-<n>": unique per test process and call, so `ctest -j2` never collides.
inline std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

/// The remote: settings of a test daemon, from the test's own `extra_yaml`. Tests that are not
/// about peer authentication or dialing get engines that link with each other on this host:
/// remote.unauthenticated_peers unless the test sets it, remote.peer_key_file or remote.tls, and
/// remote.allow_dial [127.0.0.1] unless the test sets allow_dial. A `remote:` section of the
/// test (block "remote:\n" or flow "remote: {") gets these keys added, else one is appended.
inline std::string with_test_peers(const std::string& extra_yaml) {
  auto has = [&](const char* key) { return extra_yaml.find(key) != std::string::npos; };
  std::vector<std::string> keys;
  if (!has("unauthenticated_peers") && !has("peer_key_file") && !has("tls:") && !has("tls: "))
    keys.push_back("unauthenticated_peers: true");
  if (!has("allow_dial"))
    keys.push_back("allow_dial: [127.0.0.1]");
  if (keys.empty())
    return extra_yaml;
  std::string yaml = extra_yaml;
  if (auto at = yaml.find("remote: {"); at != std::string::npos) {
    std::string add;
    for (const auto& k : keys)
      add += k + ", ";
    yaml.insert(at + 9, add);
  } else if (auto block = yaml.find("remote:\n"); block != std::string::npos) {
    std::string add;
    for (const auto& k : keys)
      add += "  " + k + "\n";
    yaml.insert(block + 8, add);
  } else {
    yaml += "remote:\n";
    for (const auto& k : keys)
      yaml += "  " + k + "\n";
  }
  return yaml;
}

class daemon_process {
public:
  /// Starts cafshmd with a config written for it; `extra_yaml` (top-level sections such as
  /// `remote:`) is appended to it, with with_test_peers(); `liveness_interval` is how often it
  /// polls for ended processes.
  explicit daemon_process(const std::string& name, const std::string& arena = "64MiB",
                          uint16_t port = 0, const std::string& extra_yaml = {},
                          const std::string& liveness_interval = "100ms")
    : name_(name),
      config_(std::filesystem::temp_directory_path() / (name + ".yaml")) {
    std::ofstream out{config_};
    out << "engine:\n  name: " << name << "\n  arena: " << arena
        << "\n  liveness_interval: " << liveness_interval << "\n  listen: {host: 127.0.0.1, port: " << port << "}\n"
        << with_test_peers(extra_yaml);
    out.close();
    start(port);
  }

  ~daemon_process() {
    stop();
    std::filesystem::remove(config_);
    memory_manager::remove_segments(name_);
    ::unlink(("/dev/shm/" + name_ + ".sock").c_str()); // the door of a daemon that was killed
  }

  /// (Re)starts the daemon on `port` (0 = any); true once it printed its listening line.
  bool start(uint16_t port) {
    process_ = std::make_unique<child_process>(std::vector<std::string>{
      std::string{CAFSHM_BIN_DIR} + "/cafshmd", "--config", config_.string(), "--port",
      std::to_string(port)});
    // Lines before the listening line: what the engine found at start ("cafshmd: adopted ..."
    // or "cafshmd: not adopting ...").
    start_report_.clear();
    std::optional<std::string> rest;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!rest && std::chrono::steady_clock::now() < deadline) {
      auto line = process_->read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
      if (!line)
        break;
      const std::string listening = "cafshmd listening on ";
      if (line->rfind(listening, 0) == 0)
        rest = line->substr(listening.size());
      else if (line->rfind("cafshmd: ", 0) == 0)
        start_report_ = line->substr(9);
    }
    auto announced = rest ? parse_announcement(*rest) : std::nullopt;
    if (!announced)
      return false;
    port_ = announced->listen.port;
    return true;
  }

  /// SIGTERM and wait; returns the wait status.
  std::optional<int> stop() {
    if (!process_)
      return std::nullopt;
    process_->kill(SIGTERM);
    auto st = process_->wait(std::chrono::seconds(20));
    process_.reset();
    return st;
  }

  void kill_hard() {
    process_->kill(SIGKILL);
    process_->wait(std::chrono::seconds(20));
  }

  bool ready() const noexcept { return port_ != 0 && process_ && process_->running(); }
  uint16_t port() const noexcept { return port_; }
  const std::string& name() const noexcept { return name_; }
  /// What the engine said about earlier segments at its latest start ("" if nothing).
  const std::string& start_report() const noexcept { return start_report_; }
  endpoint address() const { return {"127.0.0.1", port_}; }
  child_process& process() { return *process_; }

private:
  std::string name_;
  std::filesystem::path config_;
  std::unique_ptr<child_process> process_;
  uint16_t port_ = 0;
  std::string start_report_;
};

} // namespace cafshm::test
