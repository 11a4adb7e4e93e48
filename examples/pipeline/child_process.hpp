// A stage process started by the driver: fork/exec with stdout to a pipe, a pidfd to see it
// exit, and PR_SET_PDEATHSIG so that it is killed when the driver dies, however it dies. The
// destructor kills and reaps a child that is still running, so none is ever left behind.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace pipeline {

class child_process {
public:
  using clock = std::chrono::steady_clock;

  /// Starts `exe` with argv[0] `arg0` and `args`; `name` is how messages call it. nullptr and
  /// `error` set on failure.
  static std::unique_ptr<child_process> spawn(const std::string& name, const std::string& exe,
                                              const std::string& arg0,
                                              const std::vector<std::string>& args,
                                              std::string& error);

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process();

  const std::string& name() const noexcept { return name_; }
  pid_t pid() const noexcept { return pid_; }

  /// File descriptors to poll: stdout (readable: data or EOF) and the pidfd (readable: exited).
  int stdout_fd() const noexcept { return out_; }
  int exit_fd() const noexcept { return pidfd_; }

  /// Reads what is available on stdout (call when stdout_fd() is readable). Complete lines are
  /// appended to `lines`. Returns false on EOF.
  bool read_available(std::vector<std::string>& lines);

  /// Reaps the child if it has exited; true if it has (now or before).
  bool reap();
  bool exited() const noexcept { return reaped_; }
  bool succeeded() const noexcept; // exited with status 0
  /// "exited with status 1", "was killed by signal 9", "is running".
  std::string status_text() const;

  /// SIGKILL (if still running) and reap.
  void kill();

private:
  child_process() = default;

  std::string name_;
  pid_t pid_ = -1;
  int out_ = -1;
  int pidfd_ = -1;
  bool eof_ = false;
  bool reaped_ = false;
  int status_ = 0;
  std::string partial_; // stdout bytes after the last newline
};

} // namespace pipeline
