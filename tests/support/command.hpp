// Commands of multi-process tests: a program started with stdout and stderr collected, its exit
// awaited with a deadline, and a destructor that ends and reaps it (SIGTERM, then SIGKILL), so
// that a failing test never leaves one behind. No shell: arguments go to the program as given.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace cafshm::test {

class command {
public:
  using clock = std::chrono::steady_clock;

  /// Starts argv[0] (a path, or a name looked up in PATH) with stdin from /dev/null.
  explicit command(std::vector<std::string> argv) : argv_(std::move(argv)) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
      return;
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawnattr_t attr; // tests may ignore SIGPIPE; the program must not inherit that
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (auto& a : argv_)
      args.push_back(a.data());
    args.push_back(nullptr);
    if (::posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), environ) != 0)
      pid_ = -1;
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    if (pid_ > 0)
      pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }

  command(const command&) = delete;
  command& operator=(const command&) = delete;

  ~command() {
    if (running()) {
      ::kill(pid_, SIGTERM);
      if (!wait(std::chrono::seconds(10))) {
        ::kill(pid_, SIGKILL);
        wait(std::chrono::seconds(30));
      }
    }
    for (int fd : {out_fd_, err_fd_, pidfd_})
      if (fd >= 0)
        ::close(fd);
  }

  bool started() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0 && !code_; }
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }
  std::string text() const { // the command line, for messages
    std::string r;
    for (const auto& a : argv_)
      r += (r.empty() ? "" : " ") + a;
    return r;
  }

  void kill(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

  /// Collects output until the program has exited and closed its output, or `limit` passes.
  /// Returns its exit code (128 + signal if a signal ended it), nullopt while it runs.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    auto deadline = clock::now() + limit;
    while (!code_ || out_fd_ >= 0 || err_fd_ >= 0) {
      if (!pump(deadline))
        break;
    }
    return code_;
  }

  /// Waits until stdout has a complete line starting with `prefix` (searching from the line
  /// after the last one found); returns the rest of that line.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds limit) {
    auto deadline = clock::now() + limit;
    for (bool more = true;; more = out_fd_ >= 0 && pump(deadline)) {
      for (size_t nl; (nl = out_.find('\n', scanned_)) != std::string::npos;) {
        auto line = out_.substr(scanned_, nl - scanned_);
        scanned_ = nl + 1;
        if (line.rfind(prefix, 0) == 0)
          return line.substr(prefix.size());
      }
      if (!more)
        return std::nullopt;
    }
  }

private:
  // One round of reading and reaping (waiting at most until `deadline`, 100 ms at a time);
  // false once `deadline` has passed.
  bool pump(clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    pollfd fds[] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {code_ ? -1 : pidfd_, POLLIN, 0}};
    int ready = ::poll(fds, 3, static_cast<int>(std::clamp<int64_t>(left.count(), 0, 100)));
    if (ready < 0)
      return left.count() > 0; // EINTR
    for (auto [i, fd, text] : {std::tuple{0, &out_fd_, &out_}, std::tuple{1, &err_fd_, &err_}}) {
      if (fds[i].revents == 0)
        continue;
      char buf[65536];
      auto n = ::read(*fd, buf, sizeof buf);
      if (n > 0) {
        text->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(*fd);
        *fd = -1;
      }
    }
    if (!code_ && pid_ > 0) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_)
        code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (pid_ <= 0 && !code_)
      code_ = 127; // never started
    return left.count() > 0;
  }

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int pidfd_ = -1;
  std::string out_;
  std::string err_;
  size_t scanned_ = 0;
  std::optional<int> code_;
};

struct command_result {
  std::optional<int> code; // nullopt: still running at the deadline (then killed)
  std::string out;
  std::string err;
};

/// Runs a program to its end within `limit` (killed after it) and returns what it printed.
inline command_result run_command(std::vector<std::string> argv,
                                  std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  command c{std::move(argv)};
  auto code = c.wait(limit);
  if (!code) {
    c.kill(SIGKILL);
    c.wait(std::chrono::seconds(10));
  }
  return {code, c.out(), c.err()};
}

} // namespace cafshm::test
