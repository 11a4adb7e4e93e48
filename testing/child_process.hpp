// A child process of a test or a benchmark: fork/exec with stdout and stdin on pipes, line
// reading with a deadline, and a destructor that kills and reaps it, so that a failing test
// never leaves it behind. Its stderr stays the parent's unless it is captured (run(), or
// child_stdio::capture_stderr). It starts with SIGPIPE at its default action even when the
// parent ignores SIGPIPE (ignored signals would otherwise pass through exec).
#pragma once

#include <chrono>
#include <csignal> // the signals kill() sends
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace cafshm::test {

/// Where a child's stderr goes.
struct child_stdio {
  bool capture_stderr = false; // a pipe that run() reads; else the parent's stderr
};

/// What child_process::run() collected.
struct finished_process {
  pid_t pid = -1;
  std::optional<int> exit_code; // its exit status, 128 + N if signal N ended it; nullopt if it
                                // did not end before the deadline (it is killed then)
  std::string out;              // everything it wrote to stdout
  std::string err;              // and to stderr
};

class child_process {
public:
  /// Starts argv[0] (a path) with the given arguments. Its stdin is a pipe that stays open
  /// until close_stdin() or destruction. Should the parent die without cleaning up, the child
  /// gets SIGTERM (cafshmd then removes its segments).
  explicit child_process(std::vector<std::string> argv, child_stdio stdio = {});
  /// The same, as process id `wanted` (clone3 with set_tid: needs CAP_SYS_ADMIN in this pid
  /// namespace and `wanted` free). If that fails, nothing is started: pid() is -1 and
  /// start_error() says why.
  child_process(std::vector<std::string> argv, pid_t wanted);

  /// Runs argv to its end: writes `input` to its stdin and closes it, collects stdout and
  /// stderr until both are closed, and reaps it. Everything within `timeout`; a process still
  /// running then is killed (exit_code nullopt). With input, this process ignores SIGPIPE from
  /// then on (a child may exit before it read all of it).
  static finished_process run(std::vector<std::string> argv, const std::string& input,
                              std::chrono::milliseconds timeout);
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process(); // SIGKILL if still running, reap

  pid_t pid() const noexcept { return pid_; }
  /// errno of a start that failed (0 if it started).
  int start_error() const noexcept { return start_error_; }
  /// Whether it still runs (reaps it if it has ended).
  bool running() const;

  /// Next line of its stdout, or nullopt at EOF or when `timeout` passes.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  /// Reads lines until one starts with `prefix`; returns the rest of that line.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout);

  /// Writes `text` to its stdin; false if stdin is closed or the write failed (a parent that
  /// may outlive its children's stdin ignores SIGPIPE).
  bool write_stdin(const std::string& text);
  /// write_stdin(line + "\n").
  bool write_line(const std::string& line);
  void close_stdin();

  void kill(int sig);
  /// SIGSTOP, then waits until /proc shows every thread of it stopped: the signal takes effect
  /// when each thread next runs, so until then a "stopped" process may still answer. False if
  /// that is not seen within `timeout`.
  bool pause(std::chrono::milliseconds timeout = std::chrono::seconds{20});
  /// SIGCONT.
  void resume() { kill(SIGCONT); }
  /// Waits for the end; its wait status, or nullopt after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout);

private:
  void start(std::vector<std::string> argv, child_stdio stdio, pid_t wanted);

  pid_t pid_ = -1;
  int start_error_ = 0;
  int out_ = -1;
  int err_ = -1; // with capture_stderr
  int in_ = -1;
  std::string buffer_;
  mutable std::optional<int> status_; // set once reaped
};

/// Pauses a child for a scope and continues it when the scope ends (unless it ended first),
/// so that a failing check never leaves it stopped with the test's calls waiting on it. Declare
/// it after whatever waits on the child's answers, so that it is destroyed first.
class paused_process {
public:
  explicit paused_process(child_process& p) : process_(&p), paused_(p.pause()) {}
  paused_process(const paused_process&) = delete;
  paused_process& operator=(const paused_process&) = delete;
  ~paused_process() { resume(); }
  void resume() { process_->resume(); }
  /// Whether every thread of it was seen stopped.
  explicit operator bool() const noexcept { return paused_; }

private:
  child_process* process_;
  bool paused_;
};

} // namespace cafshm::test
