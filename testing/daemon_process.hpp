// A cafshmd started for one test or benchmark run: its own engine name and a config written
// for it, a free port (or a given one, for restarts), removed on destruction (SIGTERM, reap, and
// removal of its config, its segments and its door should it have died without cleaning up).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

#include "cafshm/settings.hpp"
#include "testing/child_process.hpp"
#include "testing/unique_name.hpp"

namespace cafshm::test {

/// How to start a daemon_process.
struct daemon_options {
  std::string arena = "64MiB";
  uint16_t port = 0;                       // 0: any free port
  std::string liveness_interval = "100ms"; // how often it polls for ended processes
  std::string engine_yaml;                 // more keys of its engine section ("  key: value\n")
  std::string extra_yaml;                  // top-level sections (remote: ...), appended
  std::string bin_dir = CAFSHM_BIN_DIR;    // where cafshmd is
};

/// The remote: settings of a test daemon, from the test's own `extra_yaml`. Tests that are not
/// about peer authentication or dialing get engines that link with each other on this host:
/// remote.unauthenticated_peers unless the test sets it, remote.peer_key_file or remote.tls, and
/// remote.allow_dial [127.0.0.1] unless the test sets allow_dial. A `remote:` section of the
/// test (block "remote:\n" or flow "remote: {") gets these keys added, else one is appended.
std::string with_test_peers(const std::string& extra_yaml);

class daemon_process {
public:
  /// A daemon as tests start it: `extra_yaml` goes through with_test_peers().
  explicit daemon_process(const std::string& name, const std::string& arena = "64MiB",
                          uint16_t port = 0, const std::string& extra_yaml = {},
                          const std::string& liveness_interval = "100ms");
  /// A daemon configured exactly by `opts`.
  daemon_process(const std::string& name, daemon_options opts);
  daemon_process(const daemon_process&) = delete;
  daemon_process& operator=(const daemon_process&) = delete;
  ~daemon_process();

  /// (Re)starts the daemon on `port` (0 = any); true once it printed its listening line.
  bool start(uint16_t port);
  /// SIGTERM and wait; returns the wait status.
  std::optional<int> stop();
  /// SIGKILL and reap.
  void kill_hard();

  bool ready() const noexcept { return port_ != 0 && process_ && process_->running(); }
  uint16_t port() const noexcept { return port_; }
  const std::string& name() const noexcept { return name_; }
  /// The YAML file it starts with; what a test changes there applies from the next start().
  const std::filesystem::path& config_file() const noexcept { return config_; }
  /// What the engine said about earlier segments at its latest start ("" if nothing).
  const std::string& start_report() const noexcept { return start_report_; }
  endpoint address() const { return {"127.0.0.1", port_}; }
  /// "127.0.0.1:PORT", as programs take it on their command line.
  std::string address_text() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }
  child_process& process() { return *process_; }

private:
  std::string name_;
  std::filesystem::path config_;
  std::string bin_dir_;
  std::unique_ptr<child_process> process_;
  uint16_t port_ = 0;
  std::string start_report_;
};

} // namespace cafshm::test
