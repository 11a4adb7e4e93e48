#include "child_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pipeline {

std::unique_ptr<child_process> child_process::spawn(const std::string& name,
                                                    const std::string& exe,
                                                    const std::string& arg0,
                                                    const std::vector<std::string>& args,
                                                    std::string& error) {
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(arg0.c_str()));
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = std::string{"pipe: "} + std::strerror(errno);
    return nullptr;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string{"fork: "} + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return nullptr;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) // the driver died before prctl
      ::_exit(127);
    if (::dup2(fds[1], STDOUT_FILENO) < 0)
      ::_exit(127);
    ::execv(exe.c_str(), argv.data());
    const char msg[] = "cafshm-pipeline: cannot exec the stage program\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(fds[1]);
  std::unique_ptr<child_process> child{new child_process};
  child->name_ = name;
  child->pid_ = pid;
  child->out_ = fds[0];
  // glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++: call the system call directly.
  child->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (child->pidfd_ < 0) {
    error = std::string{"pidfd_open: "} + std::strerror(errno);
    return nullptr; // the destructor kills and reaps it
  }
  return child;
}

child_process::~child_process() {
  kill();
  if (out_ >= 0)
    ::close(out_);
  if (pidfd_ >= 0)
    ::close(pidfd_);
}

bool child_process::read_available(std::vector<std::string>& lines) {
  if (eof_)
    return false;
  char buf[4096];
  auto n = ::read(out_, buf, sizeof buf);
  if (n < 0)
    return errno == EINTR || errno == EAGAIN;
  if (n == 0) {
    eof_ = true;
    return false;
  }
  partial_.append(buf, static_cast<size_t>(n));
  for (size_t nl; (nl = partial_.find('\n')) != std::string::npos;) {
    lines.push_back(partial_.substr(0, nl));
    partial_.erase(0, nl + 1);
  }
  return true;
}

bool child_process::reap() {
  if (reaped_)
    return true;
  int status = 0;
  auto r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
  }
  return reaped_;
}

bool child_process::succeeded() const noexcept {
  return reaped_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
}

std::string child_process::status_text() const {
  if (!reaped_)
    return "is running";
  if (WIFEXITED(status_))
    return "exited with status " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_))
    return std::string{"was killed by signal "} + std::to_string(WTERMSIG(status_)) + " ("
           + ::strsignal(WTERMSIG(status_)) + ")";
  return "ended with wait status " + std::to_string(status_);
}

void child_process::kill() {
  if (reaped_ || pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  status_ = status;
}

} // namespace pipeline
