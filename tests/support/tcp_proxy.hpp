// A TCP relay between a test's child and a server, whose connections the test can cut while
// both ends live (what `ss -K` or a broken network does to a connection).
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace cafshm::test {

class tcp_proxy {
public:
  /// Listens on 127.0.0.1 (any free port) and relays every connection to 127.0.0.1:`target`.
  explicit tcp_proxy(uint16_t target) : target_(target) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0
        || ::listen(listen_, 16) != 0
        || ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    wake_ = ::eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { run(); });
  }

  ~tcp_proxy() {
    stop_ = true;
    uint64_t one = 1;
    (void) !::write(wake_, &one, sizeof(one));
    if (thread_.joinable())
      thread_.join();
    for (auto fd : fds_)
      ::close(fd);
    ::close(listen_);
    ::close(wake_);
  }

  uint16_t port() const noexcept { return port_; }

  /// Every byte relayed from clients to the server so far (what a party on the route sees).
  std::string client_bytes() {
    std::lock_guard<std::mutex> guard{seen_mtx_};
    return seen_;
  }

  /// Resets every relayed connection now (both sides see it closed); keeps listening.
  void cut() {
    cut_ = true;
    uint64_t one = 1;
    (void) !::write(wake_, &one, sizeof(one));
    while (cut_)
      std::this_thread::yield();
  }

private:
  void run() {
    while (!stop_) {
      std::vector<pollfd> p{{listen_, POLLIN, 0}, {wake_, POLLIN, 0}};
      for (auto fd : fds_)
        p.push_back({fd, POLLIN, 0});
      if (::poll(p.data(), p.size(), -1) < 0)
        continue;
      if (p[1].revents != 0) {
        uint64_t x;
        (void) !::read(wake_, &x, sizeof(x));
        if (cut_) {
          for (auto fd : fds_) {
            linger l{1, 0}; // RST, as a reset connection
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            ::close(fd);
          }
          fds_.clear();
          cut_ = false;
        }
        continue;
      }
      if (p[0].revents & POLLIN) {
        int in = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(target_);
        if (in >= 0 && ::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
          fds_.push_back(in);
          fds_.push_back(out);
        } else {
          ::close(in);
          ::close(out);
        }
        continue;
      }
      for (size_t i = 2; i < p.size(); ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
          continue;
        size_t k = i - 2;
        int from = fds_[k];
        int to = fds_[k ^ 1]; // pairs: (client, server)
        char buf[65536];
        auto n = ::read(from, buf, sizeof(buf));
        if (n > 0 && k % 2 == 0) {
          std::lock_guard<std::mutex> guard{seen_mtx_};
          seen_.append(buf, static_cast<size_t>(n));
        }
        if (n <= 0 || ::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) {
          ::close(fds_[k & ~size_t{1}]);
          ::close(fds_[k | 1]);
          fds_.erase(fds_.begin() + static_cast<ptrdiff_t>(k & ~size_t{1}),
                     fds_.begin() + static_cast<ptrdiff_t>((k & ~size_t{1}) + 2));
          break;
        }
      }
    }
  }

  uint16_t target_;
  uint16_t port_ = 0;
  int listen_ = -1;
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::vector<int> fds_; // relayed pairs, owned by the thread
  std::mutex seen_mtx_;
  std::string seen_; // guarded by seen_mtx_
  std::thread thread_;
};

} // namespace cafshm::test
