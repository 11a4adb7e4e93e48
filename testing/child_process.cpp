#include "testing/child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <tuple>
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

namespace {

int ms_until(clock_type::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

void close_fd(int& fd) {
  if (fd >= 0)
    ::close(std::exchange(fd, -1));
}

} // namespace

child_process::child_process(std::vector<std::string> argv, child_stdio stdio) {
  start(std::move(argv), stdio, 0);
}

child_process::child_process(std::vector<std::string> argv, pid_t wanted) {
  start(std::move(argv), {}, wanted);
}

void child_process::start(std::vector<std::string> argv, child_stdio stdio, pid_t wanted) {
  int out[2];
  int in[2];
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) {
    start_error_ = errno;
    return;
  }
  if (::pipe2(in, O_CLOEXEC) != 0
      || (stdio.capture_stderr && ::pipe2(err, O_CLOEXEC) != 0)) {
    start_error_ = errno;
    for (int fd : {out[0], out[1], in[0], in[1]})
      if (fd >= 0)
        ::close(fd);
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
    ::signal(SIGPIPE, SIG_DFL); // a parent that ignores SIGPIPE must not pass that on
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(in[0], STDIN_FILENO);
    if (err[1] >= 0)
      ::dup2(err[1], STDERR_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (pid_ < 0) {
    start_error_ = errno;
    pid_ = -1;
    for (int fd : {out[0], out[1], in[0], in[1], err[0], err[1]})
      if (fd >= 0)
        ::close(fd);
    return;
  }
  ::close(out[1]);
  ::close(in[0]);
  if (err[1] >= 0)
    ::close(err[1]);
  out_ = out[0];
  in_ = in[1];
  err_ = err[0];
}

finished_process child_process::run(std::vector<std::string> argv, const std::string& input,
                                    std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  child_process c{std::move(argv), child_stdio{true}};
  finished_process r;
  r.pid = c.pid_;
  size_t written = 0;
  if (input.empty())
    c.close_stdin();
  else {
    ::signal(SIGPIPE, SIG_IGN); // a child that exits before reading everything closes the pipe
    ::fcntl(c.in_, F_SETFL, O_NONBLOCK);
  }
  // Writes and reads in one loop: a child that answers before it read all of its input must
  // not block on a full stdout pipe while the parent blocks on a full stdin pipe.
  while ((c.out_ >= 0 || c.err_ >= 0) && ms_until(deadline) > 0) {
    pollfd fds[] = {{c.in_, POLLOUT, 0}, {c.out_, POLLIN, 0}, {c.err_, POLLIN, 0}};
    if (::poll(fds, 3, ms_until(deadline)) <= 0)
      continue;
    if (fds[0].revents != 0) {
      auto n = ::write(c.in_, input.data() + written, input.size() - written);
      if (n < 0 || (written += static_cast<size_t>(n)) == input.size())
        c.close_stdin(); // written, or the child closed its stdin
    }
    for (auto [p, fd, text] : {std::tuple{&fds[1], &c.out_, &r.out},
                               std::tuple{&fds[2], &c.err_, &r.err}}) {
      if (p->revents == 0)
        continue;
      char buf[65536];
      auto n = ::read(*fd, buf, sizeof buf);
      if (n > 0)
        text->append(buf, static_cast<size_t>(n));
      else
        close_fd(*fd);
    }
  }
  auto status = c.wait(std::chrono::milliseconds{ms_until(deadline)});
  if (status)
    r.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  return r; // ~child_process kills and reaps one that did not end
}

child_process::~child_process() {
  if (running())
    kill(SIGKILL);
  wait(std::chrono::seconds(10));
  close_stdin();
  close_fd(out_);
  close_fd(err_);
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

namespace {

// Whether every thread of `pid` is stopped (state T in /proc/<pid>/task/*/stat).
bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  auto dir = std::filesystem::path{"/proc"} / std::to_string(pid) / "task";
  bool any = false;
  for (auto& task : std::filesystem::directory_iterator{dir, ec}) {
    std::ifstream stat{task.path() / "stat"};
    std::string line;
    std::getline(stat, line);
    auto paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'T')
      return false;
    any = true;
  }
  return any && !ec;
}

} // namespace

bool child_process::pause(std::chrono::milliseconds timeout) {
  if (!running())
    return false;
  ::kill(pid_, SIGSTOP);
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!all_threads_stopped(pid_)) {
    if (std::chrono::steady_clock::now() >= end)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return true;
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
