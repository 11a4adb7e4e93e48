#include "testing/child_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <utility>

#include <fcntl.h>
#include <linux/sched.h> // clone_args
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cafshm::test {

using clock_type = std::chrono::steady_clock;

child_process::child_process(std::vector<std::string> argv) {
  start(std::move(argv), 0);
}

child_process::child_process(std::vector<std::string> argv, pid_t wanted) {
  start(std::move(argv), wanted);
}

void child_process::start(std::vector<std::string> argv, pid_t wanted) {
  int out[2];
  int in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    start_error_ = errno;
    return;
  }
  if (::pipe2(in, O_CLOEXEC) != 0) {
    start_error_ = errno;
    ::close(out[0]);
    ::close(out[1]);
    return;
  }
  // Built before the child exists: after a raw clone3 in a threaded parent the child may not
  // allocate (another thread may have held the allocator's lock).
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  if (wanted > 0) {
    clone_args ca{};
    ca.exit_signal = SIGCHLD;
    ca.set_tid = reinterpret_cast<uintptr_t>(&wanted);
    ca.set_tid_size = 1;
    pid_ = static_cast<pid_t>(::syscall(SYS_clone3, &ca, sizeof ca));
  } else {
    pid_ = ::fork();
  }
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) // the parent died before prctl
      ::_exit(127);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(in[0], STDIN_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (pid_ < 0)
    start_error_ = errno;
  ::close(out[1]);
  ::close(in[0]);
  if (pid_ < 0) {
    ::close(out[0]);
    ::close(in[1]);
    pid_ = -1;
    return;
  }
  out_ = out[0];
  in_ = in[1];
}

child_process::~child_process() {
  if (running())
    kill(SIGKILL);
  wait(std::chrono::seconds(10));
  close_stdin();
  if (out_ >= 0)
    ::close(out_);
}

bool child_process::running() const {
  if (pid_ <= 0 || status_)
    return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

std::optional<std::string> child_process::read_line(std::chrono::milliseconds timeout) {
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

std::optional<std::string> child_process::wait_for_line(const std::string& prefix,
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

bool child_process::write_stdin(const std::string& text) {
  size_t done = 0;
  while (in_ >= 0 && done < text.size()) {
    auto n = ::write(in_, text.data() + done, text.size() - done);
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return in_ >= 0;
}

bool child_process::write_line(const std::string& line) {
  return write_stdin(line + "\n");
}

void child_process::close_stdin() {
  if (in_ >= 0)
    ::close(std::exchange(in_, -1));
}

void child_process::kill(int sig) {
  if (running()) // never a reaped child's pid, which another process may have now
    ::kill(pid_, sig);
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || status_)
    return status_;
  // A pidfd becomes readable when the child exits.
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

} // namespace cafshm::test
