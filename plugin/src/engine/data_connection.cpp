#include "data_connection.hpp"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <xxhash.h>

#include "cafshm/error.hpp"
#include "data_tls.hpp"
#include "openssl_ptr.hpp"
#include "xxh3_stream.hpp"

namespace cafshm {

// A connected socket, with the TLS session on it if the engines use remote.tls.
struct data_stream {
  int fd;
  SSL* tls = nullptr;
};

namespace {

using kdf_ptr = openssl_ptr<EVP_KDF, EVP_KDF_free>;
using kdf_ctx_ptr = openssl_ptr<EVP_KDF_CTX, EVP_KDF_CTX_free>;

constexpr char hello_magic[8] = {'c', 'a', 'f', 's', 'h', 'm', 'D', '1'};
constexpr size_t hello_bytes = 8 + 8 + data_proof_bytes;
constexpr size_t frame_bytes = 24;
constexpr size_t ack_bytes = 24;
// Connections whose hello is incomplete at once, at most (a further one ends the oldest).
constexpr size_t max_pending_hellos = 256;

void put_u64(unsigned char* p, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<unsigned char>(x >> (8 * i));
}

uint64_t get_u64(const unsigned char* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i)
    x = (x << 8) | p[i];
  return x;
}

void set_timeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1; // acknowledgements and frame headers go out at once (no Nagle delay)
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// What OpenSSL said of the last TLS error on this thread (EPROTO), for the transfer's error.
thread_local std::string last_tls_error;

// Sets errno for a TLS read or write that returned `result` (<= 0): EAGAIN for the socket's
// timeout, EPIPE for the end of the stream, EPROTO for a TLS error (its reasons go to
// last_tls_error; the queue is emptied).
void set_tls_errno(SSL* tls, int result) {
  int saved = errno;
  switch (SSL_get_error(tls, result)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      break;
    case SSL_ERROR_SYSCALL:
      errno = saved != 0 && saved != EAGAIN ? saved : EPIPE;
      break;
    case SSL_ERROR_ZERO_RETURN:
      errno = EPIPE;
      break;
    default:
      last_tls_error = tls_failure(tls, "no reason given");
      errno = EPROTO;
  }
  ERR_clear_error();
}

// Sends or receives up to `n` bytes: how many moved, or <= 0 as send/recv (errno as they set
// it, or as set_tls_errno does).
ssize_t send_some(const data_stream& s, const char* p, size_t n) {
  if (!s.tls)
    return ::send(s.fd, p, n, MSG_NOSIGNAL);
  size_t k = 0;
  errno = 0;
  int r = SSL_write_ex(s.tls, p, n, &k);
  if (r != 1) {
    set_tls_errno(s.tls, r);
    return -1;
  }
  return static_cast<ssize_t>(k);
}

ssize_t recv_some(const data_stream& s, char* p, size_t n) {
  if (!s.tls)
    return ::recv(s.fd, p, n, MSG_WAITALL);
  size_t k = 0;
  errno = 0;
  int r = SSL_read_ex(s.tls, p, n, &k);
  if (r != 1) {
    set_tls_errno(s.tls, r);
    return -1;
  }
  return static_cast<ssize_t>(k);
}

// Sends or receives all `n` bytes; false on an error, a timeout (errno EAGAIN: the socket's
// SO_RCVTIMEO/SO_SNDTIMEO, set to remote.stall_timeout, passed without progress) or the end of
// the stream (errno EPIPE). Each step counts as progress.
bool send_all(const data_stream& s, const void* p, size_t n, data_progress* progress = nullptr) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    auto k = send_some(s, c, n);
    if (k <= 0) {
      if (k == 0)
        errno = EPIPE;
      return false;
    }
    c += k;
    n -= static_cast<size_t>(k);
    if (progress)
      progress->touch();
  }
  return true;
}

bool recv_all(const data_stream& s, void* p, size_t n, data_progress* progress = nullptr) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    auto k = recv_some(s, c, n);
    if (k <= 0) {
      if (k == 0)
        errno = EPIPE;
      return false;
    }
    c += k;
    n -= static_cast<size_t>(k);
    if (progress)
      progress->touch();
  }
  return true;
}

// Why a send_all/recv_all that just failed ended the transfer: nothing moved for `stall`
// (remote.stall_timeout, as the engine's own check of progress says it), or the connection
// broke (`what` happened).
// OpenSSL writes to the socket with write(), not send(MSG_NOSIGNAL): a write to a connection
// the peer closed raises SIGPIPE, which would end the process. The threads of data
// connections block it for their lifetime (a thread's pending SIGPIPE goes with the thread).
void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

caf::error cut(const char* what, std::chrono::milliseconds stall) {
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    auto ms = stall.count();
    auto amount = ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
    return make_error(errc::peer_failure, std::string{"the data connection stalled ("} + what
                                            + "): nothing moved for " + amount
                                            + " (remote.stall_timeout)");
  }
  auto why = errno == EPROTO ? "a TLS error: " + last_tls_error : std::string{std::strerror(errno)};
  return make_error(errc::peer_failure,
                    std::string{"the data connection was cut ("} + what + ": " + why + ")");
}

} // namespace

std::vector<unsigned char> data_connection_proof(std::span<const unsigned char> link_key,
                                                 uint64_t token, uint64_t id) {
  unsigned char key[32];
  kdf_ptr kdf{EVP_KDF_fetch(nullptr, "HKDF", nullptr)};
  kdf_ctx_ptr kctx{kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr};
  char digest[] = "SHA256";
  static constexpr char info[] = "cafshm data connection key v1";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(link_key.data()),
                                      link_key.size()),
    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info), sizeof info),
    OSSL_PARAM_construct_end()};
  if (link_key.empty() || !kctx || EVP_KDF_derive(kctx.get(), key, sizeof key, params) != 1) {
    ERR_clear_error();
    return {};
  }
  static constexpr char label[] = "cafshm data hello v1";
  unsigned char input[sizeof label + 16];
  std::memcpy(input, label, sizeof label);
  put_u64(input + sizeof label, token);
  put_u64(input + sizeof label + 8, id);
  std::vector<unsigned char> proof(data_proof_bytes);
  unsigned int len = 0;
  bool ok = HMAC(EVP_sha256(), key, sizeof key, input, sizeof input, proof.data(), &len) != nullptr
            && len == data_proof_bytes;
  OPENSSL_cleanse(key, sizeof key);
  if (!ok) {
    ERR_clear_error();
    return {};
  }
  return proof;
}

// -- data_worker --------------------------------------------------------------------------------

data_worker::~data_worker() {
  cancel();
}

void data_worker::cancel() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    cancelled_ = true;
    if (fd_ >= 0)
      ::shutdown(fd_, SHUT_RDWR); // wakes a blocked send/recv
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
    thread_.join();
}

void data_worker::run(int fd, ssl_session tls, std::function<void(int, ssl_st*)> body) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (cancelled_ || started_) {
    tls.reset();
    if (fd >= 0)
      ::close(fd);
    return;
  }
  started_ = true;
  fd_ = fd;
  thread_ = std::thread{[this, fd, tls = std::move(tls), body = std::move(body)]() mutable {
    block_sigpipe();
    body(fd, tls.get());
    tls.reset(); // before its socket closes
    std::lock_guard<std::mutex> guard{mutex_};
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }};
}

bool data_worker::adopt(int fd) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (cancelled_)
    return false;
  fd_ = fd;
  return true;
}

// -- data_receive -------------------------------------------------------------------------------

data_receive::data_receive(std::span<std::byte> dest, uint64_t chunk_bytes, uint64_t id,
                           std::vector<unsigned char> proof, std::chrono::milliseconds stall,
                           uint32_t retries, data_done done)
  : dest_(dest), chunk_bytes_(chunk_bytes), id_(id), proof_(std::move(proof)), stall_(stall),
    retries_(retries), done_(std::move(done)) {
}

data_receive::~data_receive() {
  cancel();
}

void data_receive::start(int fd, ssl_session tls) {
  run(fd, std::move(tls), [this](int f, ssl_st* t) { receive(data_stream{f, t}); });
}

void data_receive::receive(const data_stream& conn) {
  set_timeouts(conn.fd, stall_);
  xxh3_stream digest;
  uint64_t verified = 0;
  uint64_t size = dest_.size();
  auto fail = [&](caf::error err, uint64_t status) {
    unsigned char ack[ack_bytes];
    put_u64(ack, verified);
    put_u64(ack + 8, status);
    put_u64(ack + 16, 0);
    send_all(conn, ack, sizeof ack);
    done_(0, std::move(err));
  };
  uint32_t retries_left = retries_;
  bool resending = false; // asked for the chunks from `verified` again; skipping until they come
  while (verified < size) {
    unsigned char frame[frame_bytes];
    if (!recv_all(conn, frame, sizeof frame, &progress_)) {
      done_(0, cancelled() ? make_error(errc::peer_failure, "transfer ended")
                           : cut("no frame from the sender", stall_));
      return;
    }
    uint64_t offset = get_u64(frame), length = get_u64(frame + 8), hash = get_u64(frame + 16);
    if (resending && offset > verified && length > 0 && length <= chunk_bytes_
        && offset < size && length <= size - offset) {
      // sent before the sender saw the request: read past (into bytes not verified yet)
      if (!recv_all(conn, dest_.data() + offset, length, &progress_)) {
        done_(0, cancelled() ? make_error(errc::peer_failure, "transfer ended")
                             : cut("the sender stopped mid-chunk", stall_));
        return;
      }
      continue;
    }
    resending = false;
    if (offset != verified || length == 0 || length > chunk_bytes_ || length > size - verified) {
      fail(make_error(errc::invalid_argument, "a data frame out of order or beyond the block"),
           static_cast<uint64_t>(errc::invalid_argument));
      return;
    }
    auto* p = dest_.data() + offset;
    if (!recv_all(conn, p, length, &progress_)) {
      done_(0, cancelled() ? make_error(errc::peer_failure, "transfer ended")
                           : cut("the sender stopped mid-chunk", stall_));
      return;
    }
    if (XXH3_64bits(p, length) != hash) {
      if (retries_left == 0) {
        fail(make_error(errc::checksum_mismatch,
                        "chunk at offset " + std::to_string(offset) + " failed its checksum "
                          + std::to_string(retries_ + 1)
                          + " times (remote.checksum_retries)"),
             static_cast<uint64_t>(errc::checksum_mismatch));
        return;
      }
      --retries_left;
      resending = true;
      unsigned char ack[ack_bytes];
      put_u64(ack, verified);
      put_u64(ack + 8, data_resend_status);
      put_u64(ack + 16, 0);
      if (!send_all(conn, ack, sizeof ack)) {
        done_(0, cut("cannot ask for a chunk again", stall_));
        return;
      }
      continue;
    }
    digest.update(std::span{p, length});
    verified += length;
    progress_.add(length);
    unsigned char ack[ack_bytes];
    put_u64(ack, verified);
    put_u64(ack + 8, 0);
    put_u64(ack + 16, verified == size ? digest.digest() : 0);
    if (verified == size)
      done_(digest.digest(), caf::error{}); // before the last ack: the commit follows it
    if (!send_all(conn, ack, sizeof ack)) {
      if (verified < size)
        done_(0, cut("cannot acknowledge", stall_));
      return;
    }
  }
}

// -- data_send ----------------------------------------------------------------------------------

data_send::data_send(target to, std::span<const std::byte> src, uint64_t chunk_bytes,
                     uint32_t window, std::chrono::milliseconds stall, uint32_t retries,
                     std::shared_ptr<const data_tls> tls, data_done done)
  : to_(std::move(to)), src_(src), chunk_bytes_(chunk_bytes), window_(std::max<uint32_t>(1, window)),
    stall_(stall), retries_(retries), tls_(std::move(tls)), done_(std::move(done)) {
}

data_send::~data_send() {
  cancel();
}

void data_send::start() {
  // resolves, connects and shakes hands on the thread, never the engine's
  run(-1, nullptr, [this](int, ssl_st*) { send(); });
}

// A socket connecting (non-blocking) to the target; -1 if the address does not resolve.
static int start_connect(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  int fd = -1;
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &found) == 0 && found) {
    fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0
        && errno != EINPROGRESS) {
      ::close(fd);
      fd = -1;
    }
    ::freeaddrinfo(found);
  }
  return fd;
}

void data_send::send() {
  int fd = start_connect(to_.host, to_.port);
  if (fd < 0) {
    done_(0, make_error(errc::peer_failure, "cannot connect the data connection to " + to_.host
                                              + ":" + std::to_string(to_.port)));
    return;
  }
  if (!adopt(fd)) { // cancelled meanwhile
    ::close(fd);
    done_(0, make_error(errc::peer_failure, "transfer ended"));
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + stall_;
  for (;;) { // wait for the connect, in steps, so that cancel() is seen
    pollfd p{fd, POLLOUT, 0};
    int r = ::poll(&p, 1, 50);
    if (cancelled()) {
      done_(0, make_error(errc::peer_failure, "transfer ended"));
      return;
    }
    if (r > 0)
      break;
    if (std::chrono::steady_clock::now() > deadline) {
      done_(0, make_error(errc::peer_failure, "the data connection did not connect within "
                                                "remote.stall_timeout"));
      return;
    }
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    done_(0, make_error(errc::peer_failure, std::string{"cannot connect the data connection: "}
                                              + std::strerror(err)));
    return;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  set_timeouts(fd, stall_);
  ssl_session session;
  if (tls_) {
    session = tls_->session(fd, false);
    if (!session) {
      done_(0, make_error(errc::peer_failure, "cannot start TLS on the data connection"));
      return;
    }
    if (int r = SSL_connect(session.get()); r != 1) {
      auto code = SSL_get_error(session.get(), r);
      if (cancelled()) {
        ERR_clear_error();
        done_(0, make_error(errc::peer_failure, "transfer ended"));
      } else if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        errno = EAGAIN;
        done_(0, cut("the TLS handshake", stall_));
      } else {
        done_(0, make_error(errc::peer_failure,
                            "the TLS handshake of the data connection failed: "
                              + tls_failure(session.get(), "the connection ended")));
      }
      return;
    }
  }
  data_stream s{fd, session.get()};
  unsigned char hello[hello_bytes];
  std::memcpy(hello, hello_magic, 8);
  put_u64(hello + 8, to_.token);
  if (to_.proof.size() != data_proof_bytes) {
    done_(0, make_error(errc::access_denied, "no proof for the data connection"));
    return;
  }
  std::memcpy(hello + 16, to_.proof.data(), data_proof_bytes);
  if (!send_all(s, hello, sizeof hello, &progress_)) {
    done_(0, cut("the hello was not taken", stall_));
    return;
  }
  xxh3_stream digest; // of the bytes sent so far, in order
  uint64_t size = src_.size(), sent = 0, acked = 0;
  uint32_t in_flight = 0;
  uint32_t retries_left = retries_;
  while (acked < size) {
    while (in_flight < window_ && sent < size) {
      uint64_t n = std::min(chunk_bytes_, size - sent);
      const auto* p = src_.data() + sent;
      unsigned char frame[frame_bytes];
      put_u64(frame, sent);
      put_u64(frame + 8, n);
      put_u64(frame + 16, XXH3_64bits(p, n));
      digest.update(std::span{p, n});
      if (!send_all(s, frame, sizeof frame, &progress_)
          || !send_all(s, p, n, &progress_)) {
        done_(0, cancelled() ? make_error(errc::peer_failure, "transfer ended")
                             : cut("the receiver stopped taking chunks", stall_));
        return;
      }
      sent += n;
      ++in_flight;
    }
    unsigned char ack[ack_bytes];
    if (!recv_all(s, ack, sizeof ack, &progress_)) {
      done_(0, cancelled() ? make_error(errc::peer_failure, "transfer ended")
                           : cut("no acknowledgement from the receiver", stall_));
      return;
    }
    auto status = get_u64(ack + 8);
    if (status == data_resend_status) {
      // Every earlier frame is acknowledged; the receiver skips the later ones in flight.
      if (get_u64(ack) != acked) {
        done_(0, make_error(errc::peer_failure, "a request to resend from offset "
                                                  + std::to_string(get_u64(ack))
                                                  + ", which is not the first unacknowledged"));
        return;
      }
      if (retries_left == 0) {
        done_(0, make_error(errc::checksum_mismatch,
                            "the chunk at offset " + std::to_string(acked) + " failed its checksum "
                              + std::to_string(retries_ + 1)
                              + " times on the data connection (remote.checksum_retries)"));
        return;
      }
      --retries_left;
      sent = acked;
      in_flight = 0;
      digest = xxh3_stream{}; // rehashed up to the resend point: rare, unlike a copy per chunk
      digest.update(src_.first(acked));
      continue;
    }
    if (status != 0) {
      auto code = status == static_cast<uint64_t>(errc::checksum_mismatch)
                    ? errc::checksum_mismatch
                    : errc::peer_failure;
      done_(0, make_error(code, "the receiver refused the chunk at offset "
                                  + std::to_string(get_u64(ack)) + " on the data connection"));
      return;
    }
    auto verified = get_u64(ack);
    if (verified <= acked || verified > sent) {
      done_(0, make_error(errc::peer_failure, "an acknowledgement out of order"));
      return;
    }
    progress_.add(verified - acked);
    acked = verified;
    --in_flight;
    if (acked == size && get_u64(ack + 16) != digest.digest()) {
      done_(0, make_error(errc::checksum_mismatch,
                          "the receiver's digest of the block differs from the sender's"));
      return;
    }
  }
  done_(digest.digest(), caf::error{});
}

// -- data_listener ------------------------------------------------------------------------------

caf::expected<std::unique_ptr<data_listener>>
data_listener::open(const std::string& host, std::chrono::milliseconds hello_timeout,
                    std::shared_ptr<const data_tls> tls) {
  std::unique_ptr<data_listener> l{new data_listener};
  l->hello_timeout_ = hello_timeout;
  l->tls_ = std::move(tls);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), "0", &hints, &found) != 0 || !found)
    return make_error(errc::config_error, "cannot resolve " + host + " for the data port");
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, 64) == 0;
  ::freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (!ok || ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0
      || ::pipe2(l->wake_, O_CLOEXEC) != 0) {
    auto why = std::string{std::strerror(errno)};
    if (fd >= 0)
      ::close(fd);
    return make_error(errc::config_error, "cannot open the data port on " + host + ": " + why);
  }
  l->listen_fd_ = fd;
  l->host_ = host;
  l->port_ = ntohs(bound.ss_family == AF_INET6
                     ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  l->thread_ = std::thread{[p = l.get()] {
    block_sigpipe(); // TLS handshakes write
    p->accept_loop();
  }};
  return l;
}

data_listener::~data_listener() {
  if (wake_[1] >= 0) {
    char x = 0;
    [[maybe_unused]] auto n = ::write(wake_[1], &x, 1);
  }
  if (thread_.joinable())
    thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]})
    if (fd >= 0)
      ::close(fd);
  std::map<uint64_t, std::shared_ptr<data_receive>> left;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    left.swap(expected_);
  }
}

void data_listener::expect(uint64_t token, std::shared_ptr<data_receive> job) {
  std::lock_guard<std::mutex> guard{mutex_};
  expected_[token] = std::move(job);
}

void data_listener::forget(uint64_t token) {
  std::shared_ptr<data_receive> gone;
  std::lock_guard<std::mutex> guard{mutex_};
  if (auto i = expected_.find(token); i != expected_.end()) {
    gone = std::move(i->second);
    expected_.erase(i);
  }
}

// One step of a connection whose TLS handshake or hello is still coming: what it does with the
// bytes that are there now, without blocking.
enum class hello_step { waiting, complete, refused };

void data_listener::accept_loop() {
  // Connections whose handshake or hello is still coming: served without blocking, so that one
  // slow (or silent) connection holds up neither the others nor new ones.
  struct pending {
    int fd;
    ssl_session tls;      // with remote.tls: the session, from accept on
    bool handshaken;      // the TLS handshake completed (always true without TLS)
    short events;         // what the connection waits for (POLLOUT while TLS wants to write)
    unsigned char hello[hello_bytes];
    size_t got;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<pending> waiting;
  auto refuse = [this](pending& w) {
    ++refused_;
    w.tls.reset();
    ::close(w.fd);
  };
  // Moves `w` on as far as the bytes that have arrived allow.
  auto advance = [](pending& w) {
    if (!w.tls) {
      auto k = ::recv(w.fd, w.hello + w.got, hello_bytes - w.got, MSG_DONTWAIT);
      if (k > 0)
        w.got += static_cast<size_t>(k);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        return hello_step::refused;
      return w.got == hello_bytes ? hello_step::complete : hello_step::waiting;
    }
    auto wants = [&](int result) {
      switch (SSL_get_error(w.tls.get(), result)) {
        case SSL_ERROR_WANT_READ:
          w.events = POLLIN;
          return hello_step::waiting;
        case SSL_ERROR_WANT_WRITE:
          w.events = POLLOUT;
          return hello_step::waiting;
        default: // no TLS, a certificate not of the CA, no certificate, the connection ended
          ERR_clear_error();
          return hello_step::refused;
      }
    };
    if (!w.handshaken) {
      int r = SSL_accept(w.tls.get());
      if (r != 1)
        return wants(r);
      w.handshaken = true;
      w.events = POLLIN;
    }
    while (w.got < hello_bytes) { // the hello may be in the session's buffer already
      size_t k = 0;
      int r = SSL_read_ex(w.tls.get(), w.hello + w.got, hello_bytes - w.got, &k);
      if (r != 1)
        return wants(r);
      w.got += k;
    }
    return hello_step::complete;
  };
  for (;;) {
    std::vector<pollfd> p{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (const auto& w : waiting)
      p.push_back({w.fd, w.events, 0});
    if (::poll(p.data(), p.size(), waiting.empty() ? -1 : 100) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p[1].revents != 0)
      break;
    auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < waiting.size();) {
      auto& w = waiting[i];
      auto step = hello_step::waiting;
      if (p[i + 2].revents != 0)
        step = advance(w);
      if (step == hello_step::complete)
        take(w.fd, std::move(w.tls), w.hello);
      else if (step == hello_step::refused || now > w.deadline)
        refuse(w);
      if (step == hello_step::complete || step == hello_step::refused || now > w.deadline) {
        waiting[i] = std::move(waiting.back());
        waiting.pop_back();
        p[i + 2] = p.back();
        p.pop_back();
      } else {
        ++i;
      }
    }
    if (p[0].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        if (waiting.size() >= max_pending_hellos) { // the oldest makes room
          refuse(waiting.front());
          waiting.erase(waiting.begin());
        }
        pending w{fd, nullptr, !tls_, POLLIN, {}, 0, now + hello_timeout_};
        if (tls_ && !(w.tls = tls_->session(fd, true)))
          refuse(w);
        else
          waiting.push_back(std::move(w));
      }
    }
  }
  for (auto& w : waiting) {
    w.tls.reset();
    ::close(w.fd);
  }
}

void data_listener::take(int fd, ssl_session tls, const unsigned char* hello) {
  std::shared_ptr<data_receive> job;
  if (std::memcmp(hello, hello_magic, 8) == 0) {
    std::lock_guard<std::mutex> guard{mutex_};
    auto i = expected_.find(get_u64(hello + 8));
    if (i != expected_.end() && i->second->proof().size() == data_proof_bytes
        && CRYPTO_memcmp(i->second->proof().data(), hello + 16, data_proof_bytes) == 0) {
      job = std::move(i->second); // a token proves one connection, once
      expected_.erase(i);
    }
  }
  if (!job) {
    ++refused_;
    tls.reset();
    ::close(fd);
    return;
  }
  // The receiving thread blocks (with the socket's timeouts) where this one must not.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  job->start(fd, std::move(tls));
}

} // namespace cafshm
