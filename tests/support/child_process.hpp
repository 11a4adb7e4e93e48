// A child process for multi-process tests: fork/exec with stdout on a pipe, line reading with a
// deadline, and a destructor that kills and reaps it, so a failing test never leaves it behind.
#pragma once

#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cafshm::test {

class child_process {
public:
  using clock = std::chrono::steady_clock;

  /// Starts argv[0] (a path) with the given arguments; stderr stays the test's. Its stdin is a
  /// pipe that stays open until close_stdin() or destruction.
  explicit child_process(std::vector<std::string> argv) {
    int fds[2];
    int in[2];
    if (::pipe2(fds, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0)
      return;
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // If the test process dies without cleaning up (a failed REQUIRE is fine, an abort by a
      // sanitizer is not), its children get SIGTERM: cafshmd then removes its segments, and
      // nothing keeps ctest waiting on the test's output pipe.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent)
        ::_exit(127);
      ::dup2(fds[1], STDOUT_FILENO);
      ::dup2(in[0], STDIN_FILENO);
      std::vector<char*> args;
      for (auto& a : argv)
        args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    ::close(in[0]);
    out_ = fds[0];
    in_ = in[1];
  }

  /// Writes `text` to the child's stdin; false if it is closed or the write failed.
  bool write_stdin(const std::string& text) {
    size_t done = 0;
    while (in_ >= 0 && done < text.size()) {
      auto n = ::write(in_, text.data() + done, text.size() - done);
      if (n <= 0)
        return false;
      done += static_cast<size_t>(n);
    }
    return in_ >= 0;
  }

  void close_stdin() {
    if (in_ >= 0)
      ::close(std::exchange(in_, -1));
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    if (running())
      kill(SIGKILL);
    wait(std::chrono::seconds(10));
    close_stdin();
    if (out_ >= 0)
      ::close(out_);
  }

  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0 && !status_; }

  /// Next line of the child's stdout, or nullopt at EOF or when `timeout` passes.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    auto deadline = clock::now() + timeout;
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        auto line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
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

  /// Reads lines until one starts with `prefix`; returns the rest of that line.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout) {
    auto deadline = clock::now() + timeout;
    while (clock::now() < deadline) {
      auto line = read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - clock::now()));
      if (!line)
        return std::nullopt;
      if (line->rfind(prefix, 0) == 0)
        return line->substr(prefix.size());
    }
    return std::nullopt;
  }

  void kill(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

  /// Waits for the child to end; returns its wait status, or nullopt after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0 || status_)
      return status_;
    // A pidfd becomes readable when the child exits.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    pollfd p{pidfd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(timeout.count()));
    ::close(pidfd);
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_)
      status_ = st;
    return status_;
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string buffer_;
  std::optional<int> status_;
};

} // namespace cafshm::test
