// The data connection of a remote transfer: the block's payload over a TCP connection of its own
// between the two engines, off CAF's BASP and off the engine actor's thread (bench/data_path.cpp
// measured a socket owned by a thread against a CAF io broker: docs/benchmarks.md).
//
// The receiving engine keeps one data_listener (a socket bound to the interface of its remote
// listener, port chosen by the OS, an accept thread). For each offer it takes, it registers a
// data_receive under a fresh one-time token and answers the offer with the token, host and port
// (in the sealed receipt). The sending engine starts a data_send: a thread that connects, proves
// the token and streams the block. Each side's thread posts its end (the block's XXH3 or an
// error) to its engine actor; the commit with the digest stays a sealed message of the link.
//
// Wire format (integers little-endian, 8 bytes each):
//   hello, sender -> receiver: magic "cafshmD1", token, proof (32 bytes). The proof is
//     HMAC-SHA256 under the data key over the label, token and transfer id; the data key is
//     HKDF-SHA256 of the link's key of the sender's direction (link_seal.hpp). A connection
//     whose hello is not exactly that, for a token registered and not used before, is closed
//     and counted (data_listener::refused); the token of a proved hello is used up.
//   frame, sender -> receiver: offset, length, XXH3-64 of the bytes, then `length` bytes.
//     Frames come in order, each at most the offer's chunk_bytes.
//   ack, receiver -> sender, after each frame: bytes verified so far, status (0 ok,
//     resend_status, else an errc value that ends the transfer), the block's XXH3 once
//     verified == size (else 0).
// The sender keeps at most `window` frames unacknowledged: bytes in flight <= chunk x window.
// A chunk that fails its XXH3 is sent again, up to remote.checksum_retries times on either
// side: the receiver acks with resend_status and the bytes verified so far (the failed chunk's
// offset), skips the frames the sender had sent after that chunk (unacknowledged; their bytes
// land beyond what is verified and are written again), and takes frames again from the one at
// that offset; the sender starts over from there. Past its retries the receiver answers
// errc::checksum_mismatch, and a sender past its own ends the transfer with it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "data_tls.hpp"

namespace cafshm {

struct data_stream;

/// Bytes of a hello's proof.
constexpr size_t data_proof_bytes = 32;
/// The status of an ack that asks for the chunks from its offset again (above every errc).
constexpr uint64_t data_resend_status = 0x100;

/// The proof of a hello for `token` of transfer `id`, from the link key of the sender's
/// direction. Empty if OpenSSL failed (an empty proof is never accepted).
std::vector<unsigned char> data_connection_proof(std::span<const unsigned char> link_key,
                                                 uint64_t token, uint64_t id);

/// What a data connection's thread reports when it ends: the block's XXH3, or why it failed.
using data_done = std::function<void(uint64_t digest, caf::error err)>;

/// The progress clock of a transfer's thread, readable from the engine actor.
class data_progress {
public:
  data_progress() { touch(); }
  void touch() noexcept {
    last_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                   std::memory_order_relaxed);
  }
  std::chrono::steady_clock::time_point last() const noexcept {
    return std::chrono::steady_clock::time_point{
      std::chrono::steady_clock::duration{last_ns_.load(std::memory_order_relaxed)}};
  }
  void add(uint64_t n) noexcept { bytes_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::chrono::steady_clock::rep> last_ns_{0};
  std::atomic<uint64_t> bytes_{0};
};

/// The socket and thread of one side of one data connection. cancel() (and the destructor)
/// stops the thread and waits for it: afterwards the block's memory is no longer touched.
class data_worker {
public:
  data_worker() = default;
  data_worker(const data_worker&) = delete;
  data_worker& operator=(const data_worker&) = delete;
  virtual ~data_worker();

  void cancel();
  const data_progress& progress() const noexcept { return progress_; }

protected:
  // Runs `body` on the worker's thread with socket `fd` and its TLS session `tls` (both owned
  // from here on, `tls` freed before `fd` closes; -1: the body makes its socket and adopts
  // it), unless cancelled.
  void run(int fd, ssl_session tls, std::function<void(int, ssl_st*)> body);
  // Makes `fd` the worker's socket (closed when the thread ends, shut down by cancel());
  // false if cancelled: then the caller closes it.
  bool adopt(int fd);
  bool cancelled() const noexcept { return cancelled_.load(); }

  data_progress progress_;

private:
  std::mutex mutex_;
  int fd_ = -1;            // guarded by mutex_; shut down by cancel()
  bool started_ = false;   // guarded by mutex_
  std::atomic<bool> cancelled_{false};
  std::thread thread_;
};

/// The receiving side of one transfer: fills `dest` from the frames of a proved connection.
class data_receive : public data_worker {
public:
  /// `retries`: how many failed chunks it asks for again before it gives up.
  data_receive(std::span<std::byte> dest, uint64_t chunk_bytes, uint64_t id,
               std::vector<unsigned char> proof, std::chrono::milliseconds stall,
               uint32_t retries, data_done done);
  ~data_receive() override;

  uint64_t id() const noexcept { return id_; }
  const std::vector<unsigned char>& proof() const noexcept { return proof_; }
  /// Takes the proved connection `fd` (blocking, with its TLS session if the data port has
  /// TLS) and starts receiving (the listener calls this once).
  void start(int fd, ssl_session tls);

private:
  void receive(const data_stream& conn);

  std::span<std::byte> dest_;
  uint64_t chunk_bytes_;
  uint64_t id_;
  std::vector<unsigned char> proof_;
  std::chrono::milliseconds stall_;
  uint32_t retries_;
  data_done done_;
};

/// The sending side of one transfer: connects, proves the token and streams `src`.
class data_send : public data_worker {
public:
  struct target {
    std::string host;
    uint16_t port = 0;
    uint64_t token = 0;
    std::vector<unsigned char> proof;
  };
  /// `retries`: how many resends the receiver may ask for before the transfer fails. With
  /// `tls` (remote.tls), the connection is TLS and the receiver must prove a certificate of
  /// the CA; without, it is plain TCP.
  data_send(target to, std::span<const std::byte> src, uint64_t chunk_bytes, uint32_t window,
            std::chrono::milliseconds stall, uint32_t retries,
            std::shared_ptr<const data_tls> tls, data_done done);
  ~data_send() override;
  void start();

private:
  void send();

  target to_;
  std::span<const std::byte> src_;
  uint64_t chunk_bytes_;
  uint32_t window_;
  std::chrono::milliseconds stall_;
  uint32_t retries_;
  std::shared_ptr<const data_tls> tls_;
  data_done done_;
};

/// The engine's data port: accepts data connections, checks their hellos, hands each proved
/// one to the data_receive registered under its token.
class data_listener {
public:
  /// Listens on `host`, port chosen by the OS; a connection that has not completed its TLS
  /// handshake (with `tls`) and sent its whole hello within `hello_timeout` is refused.
  static caf::expected<std::unique_ptr<data_listener>>
  open(const std::string& host, std::chrono::milliseconds hello_timeout,
       std::shared_ptr<const data_tls> tls = nullptr);
  ~data_listener();

  const std::string& host() const noexcept { return host_; }
  uint16_t port() const noexcept { return port_; }
  /// Connections closed for a hello that was not a valid proof of a registered, unused token,
  /// or (with TLS) for a failed TLS handshake.
  uint64_t refused() const noexcept { return refused_.load(); }

  void expect(uint64_t token, std::shared_ptr<data_receive> job);
  void forget(uint64_t token);

private:
  data_listener() = default;
  void accept_loop();
  void take(int fd, ssl_session tls, const unsigned char* hello);

  std::string host_;
  uint16_t port_ = 0;
  std::chrono::milliseconds hello_timeout_{0};
  std::shared_ptr<const data_tls> tls_; // null: plain TCP
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1}; // a pipe: the destructor wakes the accept thread
  std::atomic<uint64_t> refused_{0};
  std::mutex mutex_;
  std::map<uint64_t, std::shared_ptr<data_receive>> expected_; // guarded by mutex_
  std::thread thread_;
};

} // namespace cafshm
