// Row 4: remote transfer on loopback. cafshm's client::transmit between two cafshmd, against a
// raw TCP socket pair moving the same bytes (the ceiling) and plain CAF std::vector<char> messages
// in chunks with the same window, with the peak RSS of every process involved. Then the same with
// remote.tls at both engines against a raw TLS 1.3 socket pair with the same certificates (a test
// CA made for the run), and the round trip of an engine request while a large transfer runs
// against the same request with no transfer. The helper roles xmit, tcp-source/-sink,
// tls-source/-sink and caf-source/-sink are this program started again.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include "bench.hpp"
#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "cafshm/settings.hpp"
#include "memory_probe.hpp"
#include "processes.hpp"
#include "testing/certificates.hpp"
#include "tests/support/free_port.hpp"

namespace bench {

using clock_type = std::chrono::steady_clock;

namespace {

using xchunk_atom = caf::atom_constant<caf::atom("b_xchunk")>;
using xgo_atom = caf::atom_constant<caf::atom("b_xgo")>;

std::string get(const std::map<std::string, std::string>& args, const std::string& k,
                const std::string& def = {}) {
  auto i = args.find(k);
  return i == args.end() ? def : i->second;
}

void print_rss() {
  auto st = proc_status(::getpid());
  std::cout << "rss hwm_kib=" << st["VmHWM"] << " anon_kib=" << st["RssAnon"] << std::endl;
}

// "1.5,2,3.25": times as the helper roles print them and parse_times() reads them.
std::string joined_times(const std::vector<double>& us) {
  std::ostringstream o;
  for (size_t i = 0; i < us.size(); ++i)
    o << (i ? "," : "") << us[i];
  return o.str();
}

void print_times(const std::vector<double>& us) {
  std::cout << "result us=" << joined_times(us) << std::endl;
}

std::vector<double> parse_times(const std::string& text) {
  std::vector<double> v;
  std::istringstream in{text};
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty())
      v.push_back(std::stod(item));
  return v;
}

// -- raw TCP ------------------------------------------------------------------------------------

bool write_all(int fd, const char* p, uint64_t n) {
  while (n > 0) {
    auto k = ::send(fd, p, std::min<uint64_t>(n, 1u << 30), MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<uint64_t>(k);
  }
  return true;
}

bool read_all(int fd, char* p, uint64_t n) {
  while (n > 0) {
    auto k = ::recv(fd, p, std::min<uint64_t>(n, 1u << 30), 0);
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<uint64_t>(k);
  }
  return true;
}

} // namespace

int role_tcp_sink(const std::map<std::string, std::string>&) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(ls, 1) != 0)
    return 1;
  socklen_t len = sizeof(addr);
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  std::cout << "ready " << ntohs(addr.sin_port) << std::endl;
  int fd = ::accept(ls, nullptr, nullptr);
  if (fd < 0)
    return 1;
  std::vector<char> dest;
  for (;;) {
    uint64_t size = 0;
    if (!read_all(fd, reinterpret_cast<char*>(&size), 8) || size == 0)
      break;
    if (dest.size() != size)
      dest.assign(size, 0); // the destination, faulted in (during the warm-up transfer)
    if (!read_all(fd, dest.data(), size))
      break;
    char ack = 1;
    if (!write_all(fd, &ack, 1))
      break;
  }
  print_rss();
  ::close(fd);
  ::close(ls);
  return 0;
}

int role_tcp_source(const std::map<std::string, std::string>& args) {
  uint64_t size = parse_size(get(args, "--size"));
  int reps = std::stoi(get(args, "--reps", "3"));
  int warmup = std::stoi(get(args, "--warmup", "1"));
  std::vector<char> src(size);
  fill_pattern(src.data(), size, 1);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(get(args, "--port"))));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::cout << "error connect" << std::endl;
    return 1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<double> us;
  for (int r = 0; r < warmup + reps; ++r) {
    auto t0 = clock_type::now();
    char ack = 0;
    if (!write_all(fd, reinterpret_cast<const char*>(&size), 8) || !write_all(fd, src.data(), size)
        || !read_all(fd, &ack, 1)) {
      std::cout << "error transfer" << std::endl;
      return 1;
    }
    if (r >= warmup)
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  uint64_t zero = 0;
  write_all(fd, reinterpret_cast<const char*>(&zero), 8);
  print_times(us);
  print_rss();
  ::close(fd);
  return 0;
}

// -- raw TLS ------------------------------------------------------------------------------------
//
// The raw TCP pair's framing (8-byte size, the payload, a 1-byte acknowledgement) inside one
// TLS 1.3 session, set up as the engines set up their data connections (data_tls.cpp): TLS 1.3
// only, this side's certificate and key, the peer's certificate required and verified against
// the CA, no host name check, no session tickets. The source plays engine A's certificate, the
// sink engine B's.

namespace {

struct ssl_ctx_free {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct ssl_free {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free>;
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;

// OpenSSL's error queue of this thread as text, emptied.
std::string ssl_errors() {
  std::string r;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    r += (r.empty() ? "" : "; ") + std::string{buf};
  }
  return r.empty() ? "unknown" : r;
}

int passphrase_cb(char* buf, int size, int, void* user) {
  const auto* pass = static_cast<const std::string*>(user);
  int n = std::min(size, static_cast<int>(pass->size()));
  std::memcpy(buf, pass->data(), static_cast<size_t>(n));
  return n;
}

// The context of --cert, --key (with --pass) and --ca; null after printing "error ...".
ssl_ctx_ptr tls_context(const std::map<std::string, std::string>& args) {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_method())};
  if (!ctx) {
    std::cout << "error SSL_CTX_new: " << ssl_errors() << std::endl;
    return nullptr;
  }
  auto* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(c, 0);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  std::string pass = get(args, "--pass");
  SSL_CTX_set_default_passwd_cb(c, passphrase_cb);
  SSL_CTX_set_default_passwd_cb_userdata(c, &pass);
  bool ok = SSL_CTX_use_certificate_chain_file(c, get(args, "--cert").c_str()) == 1
            && SSL_CTX_use_PrivateKey_file(c, get(args, "--key").c_str(), SSL_FILETYPE_PEM) == 1
            && SSL_CTX_check_private_key(c) == 1
            && SSL_CTX_load_verify_locations(c, get(args, "--ca").c_str(), nullptr) == 1;
  SSL_CTX_set_default_passwd_cb_userdata(c, nullptr);
  if (!ok) {
    std::cout << "error certificates: " << ssl_errors() << std::endl;
    return nullptr;
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

// A session on `fd` after a completed handshake in which the peer's certificate verified; null
// after printing "error ...".
ssl_ptr tls_session(SSL_CTX* ctx, int fd, bool accepting) {
  ssl_ptr s{SSL_new(ctx)};
  if (!s || SSL_set_fd(s.get(), fd) != 1) {
    std::cout << "error SSL_new: " << ssl_errors() << std::endl;
    return nullptr;
  }
  int rc = accepting ? SSL_accept(s.get()) : SSL_connect(s.get());
  if (rc != 1 || SSL_get_verify_result(s.get()) != X509_V_OK
      || SSL_get0_peer_certificate(s.get()) == nullptr) {
    std::cout << "error handshake: " << ssl_errors() << std::endl;
    return nullptr;
  }
  return s;
}

bool tls_write_all(SSL* s, const char* p, uint64_t n) {
  while (n > 0) {
    size_t k = 0;
    if (SSL_write_ex(s, p, std::min<uint64_t>(n, 1u << 30), &k) != 1)
      return false;
    p += k;
    n -= k;
  }
  return true;
}

bool tls_read_all(SSL* s, char* p, uint64_t n) {
  while (n > 0) {
    size_t k = 0;
    if (SSL_read_ex(s, p, std::min<uint64_t>(n, 1u << 30), &k) != 1)
      return false;
    p += k;
    n -= k;
  }
  return true;
}

} // namespace

int role_tls_sink(const std::map<std::string, std::string>& args) {
  auto ctx = tls_context(args);
  if (!ctx)
    return 1;
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(ls, 1) != 0)
    return 1;
  socklen_t len = sizeof(addr);
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  std::cout << "ready " << ntohs(addr.sin_port) << std::endl;
  int fd = ::accept(ls, nullptr, nullptr);
  if (fd < 0)
    return 1;
  auto s = tls_session(ctx.get(), fd, true);
  std::vector<char> dest;
  while (s) {
    uint64_t size = 0;
    if (!tls_read_all(s.get(), reinterpret_cast<char*>(&size), 8) || size == 0)
      break;
    if (dest.size() != size)
      dest.assign(size, 0); // the destination, faulted in (during the warm-up transfer)
    if (!tls_read_all(s.get(), dest.data(), size))
      break;
    char ack = 1;
    if (!tls_write_all(s.get(), &ack, 1))
      break;
  }
  print_rss();
  s.reset();
  ::close(fd);
  ::close(ls);
  return 0;
}

int role_tls_source(const std::map<std::string, std::string>& args) {
  uint64_t size = parse_size(get(args, "--size"));
  int reps = std::stoi(get(args, "--reps", "3"));
  int warmup = std::stoi(get(args, "--warmup", "1"));
  auto ctx = tls_context(args);
  if (!ctx)
    return 1;
  std::vector<char> src(size);
  fill_pattern(src.data(), size, 3);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(get(args, "--port"))));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::cout << "error connect" << std::endl;
    return 1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto s = tls_session(ctx.get(), fd, false);
  if (!s) {
    ::close(fd);
    return 1;
  }
  std::vector<double> us;
  for (int r = 0; r < warmup + reps; ++r) {
    auto t0 = clock_type::now();
    char ack = 0;
    if (!tls_write_all(s.get(), reinterpret_cast<const char*>(&size), 8)
        || !tls_write_all(s.get(), src.data(), size) || !tls_read_all(s.get(), &ack, 1)) {
      std::cout << "error transfer: " << ssl_errors() << std::endl;
      ::close(fd);
      return 1;
    }
    if (r >= warmup)
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  uint64_t zero = 0;
  tls_write_all(s.get(), reinterpret_cast<const char*>(&zero), 8);
  print_times(us);
  std::cout << "cipher " << SSL_get_version(s.get()) << " " << SSL_get_cipher_name(s.get())
            << std::endl;
  print_rss();
  s.reset();
  ::close(fd);
  return 0;
}

// -- plain CAF ----------------------------------------------------------------------------------

namespace {

struct caf_sink_state {
  std::vector<char> dest;
};

struct caf_xfer {
  caf::actor sink;
  const char* src = nullptr;
  uint64_t size = 0, chunk = 0, next = 0, acked = 0;
  uint32_t window = 4, in_flight = 0;
  std::string error;
  std::promise<void> done;
};

void caf_pump(caf::event_based_actor* self, std::shared_ptr<caf_xfer> x) {
  while (x->in_flight < x->window && x->next < x->size) {
    uint64_t off = x->next;
    uint64_t n = std::min(x->chunk, x->size - off);
    x->next += n;
    ++x->in_flight;
    // Like cafshm's sender: the chunk is copied into a vector<char> for the message.
    std::vector<char> data(x->src + off, x->src + off + n);
    self->request(x->sink, std::chrono::seconds(120), xchunk_atom::value, off, x->size,
                  std::move(data))
      .then(
        [self, x, n](uint64_t) {
          --x->in_flight;
          x->acked += n;
          if (x->acked == x->size) {
            x->done.set_value();
            self->quit();
          } else {
            caf_pump(self, x);
          }
        },
        [self, x](caf::error& e) {
          if (x->error.empty()) {
            x->error = self->system().render(e);
            x->done.set_value();
            self->quit();
          }
        });
  }
}

} // namespace

int role_caf_sink(const std::map<std::string, std::string>&) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto st = std::make_shared<caf_sink_state>();
  auto a = sys.spawn([st](caf::event_based_actor*) -> caf::behavior {
    return {[st](xchunk_atom, uint64_t off, uint64_t total, const std::vector<char>& data) {
      if (st->dest.size() != total)
        st->dest.assign(total, 0);
      if (off <= total && data.size() <= total - off)
        std::memcpy(st->dest.data() + off, data.data(), data.size());
      return off;
    }};
  });
  auto port = sys.middleman().publish(a, 0, "127.0.0.1");
  if (!port)
    return 1;
  std::cout << "ready " << *port << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  print_rss();
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return 0;
}

int role_caf_source(const std::map<std::string, std::string>& args) {
  uint64_t size = parse_size(get(args, "--size"));
  int reps = std::stoi(get(args, "--reps", "3"));
  int warmup = std::stoi(get(args, "--warmup", "1"));
  uint64_t chunk = parse_size(get(args, "--chunk", "4MiB"));
  uint32_t window = static_cast<uint32_t>(std::stoul(get(args, "--window", "4")));
  std::vector<char> src(size);
  fill_pattern(src.data(), size, 2);
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto sink = sys.middleman().remote_actor("127.0.0.1",
                                           static_cast<uint16_t>(std::stoi(get(args, "--port"))));
  if (!sink) {
    std::cout << "error remote_actor" << std::endl;
    return 1;
  }
  std::vector<double> us;
  for (int r = 0; r < warmup + reps; ++r) {
    auto x = std::make_shared<caf_xfer>();
    x->sink = *sink;
    x->src = src.data();
    x->size = size;
    x->chunk = chunk;
    x->window = window;
    auto fut = x->done.get_future();
    auto t0 = clock_type::now();
    sys.spawn([x](caf::event_based_actor* self) -> caf::behavior {
      self->send(self, xgo_atom::value);
      return {[self, x](xgo_atom) { caf_pump(self, x); }};
    });
    fut.wait();
    if (!x->error.empty()) {
      std::cout << "error " << x->error << std::endl;
      return 1;
    }
    if (r >= warmup)
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  print_times(us);
  print_rss();
  return 0;
}

// -- cafshm transmit --------------------------------------------------------------------------

namespace {

// A block of `size` bytes at engine A owned by `src`, filled with a pattern and mapped
// read-write until destruction (then unmapped and freed). Every send() changes its first bytes,
// so that a destination with a content cache never has the block already, and transmits it to
// `peer` for the process "xsink", whose copy is freed again untimed.
class xmit_block {
public:
  xmit_block(cafshm::client& src, cafshm::client& dst, std::string peer, uint64_t size)
    : src_(src), dst_(dst), peer_(std::move(peer)), size_(size) {
    auto ref = src_.allocate(size);
    if (!ref) {
      error_ = "allocate " + cafshm::describe(ref.error());
      return;
    }
    ref_ = *ref;
    auto view = src_.map(ref_, cafshm::access_mode::read_write);
    if (!view) {
      error_ = "map " + cafshm::describe(view.error());
      return;
    }
    view_.emplace(std::move(*view));
    fill_pattern(reinterpret_cast<char*>(view_->data()), size, size);
  }
  ~xmit_block() {
    if (view_)
      (void) src_.unmap(std::move(*view_));
    if (ref_.valid())
      (void) src_.free(ref_);
  }
  xmit_block(const xmit_block&) = delete;
  xmit_block& operator=(const xmit_block&) = delete;

  /// Empty if the block is ready to send, else what failed.
  const std::string& error() const noexcept { return error_; }

  /// Transmit number `r`: the time of client::transmit in us, or nullopt after setting error().
  std::optional<double> send(int r) {
    uint64_t stamp = static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ull + size_;
    std::memcpy(view_->data(), &stamp, std::min<uint64_t>(8, size_));
    return send_unchanged();
  }

  /// Transmits the block as it is (a destination with a cache may hold it already).
  std::optional<double> send_unchanged() {
    cafshm::transmit_target target;
    target.process = "xsink";
    auto t0 = clock_type::now();
    auto receipt = src_.transmit(ref_, peer_, target);
    auto el = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
    if (!receipt) {
      error_ = cafshm::describe(receipt.error());
      return std::nullopt;
    }
    (void) dst_.free(receipt->remote);
    return el;
  }

private:
  cafshm::client& src_;
  cafshm::client& dst_;
  std::string peer_;
  uint64_t size_;
  cafshm::block_ref ref_{};
  std::optional<cafshm::block_view> view_;
  std::string error_;
};

// Round trips of `probe`'s cheapest blocking engine request (client::find_process of "xsrc", a
// name lookup) on a thread of their own, from start() until stop(), one every `gap` plus the
// round trip (so that the probe does not take a core of its own); each sample keeps when it
// began and ended.
class request_probe {
public:
  struct sample {
    clock_type::time_point begin, end;
  };

  explicit request_probe(cafshm::client& probe) : probe_(probe) {}
  ~request_probe() { stop(); }

  /// Starts the loop after `delay`.
  void start(std::chrono::milliseconds delay, std::chrono::microseconds gap) {
    stop_ = false;
    samples_.clear();
    thread_ = std::thread{[this, delay, gap] {
      std::this_thread::sleep_for(delay);
      for (bool first = true; !stop_.load(std::memory_order_relaxed); first = false) {
        if (!first)
          std::this_thread::sleep_for(gap);
        auto t0 = clock_type::now();
        auto r = probe_.find_process("xsrc");
        auto t1 = clock_type::now();
        if (!r) {
          error_ = cafshm::describe(r.error());
          return;
        }
        samples_.push_back({t0, t1});
      }
    }};
  }

  /// Ends the loop after its current request; answers every sample taken since start().
  const std::vector<sample>& stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
    return samples_;
  }

  const std::string& error() const noexcept { return error_; }

private:
  cafshm::client& probe_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<sample> samples_;
  std::string error_;
};

double us_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

} // namespace

// Registers "xsrc" at engine A and "xsink" at engine B; transmits go to --peer (engine B's
// peer listener, "host:port"), by default --engine-b. Commands on stdin:
//   run SIZE REPS WARMUP   allocate SIZE at A, write it, transmit it to B (owner xsink)
//                          WARMUP + REPS times (timing REPS), free each copy at B untimed;
//                          prints "result us=..." or "error ..."
//   cache SIZE REPS WARMUP each repetition changes the block and transmits it (a miss at a
//                          destination with a cache), then transmits it unchanged (a hit);
//                          prints "result miss_us=... hit_us=..." or "error ..."
//   rtt SIZE REPS WARMUP IDLE_MS GAP_US
//                          a second client of A ("xprobe") makes blocking find_process round
//                          trips, GAP_US apart: for IDLE_MS with no transfer running, then
//                          during each of REPS transmits of SIZE (after WARMUP untimed ones),
//                          starting 10 ms after the transmit was requested; a round trip counts
//                          as "during" only if it ended before transmit returned, and the idle
//                          and transfer phases alternate. Prints "result idle_us=...
//                          during_us=... transfer_us=... transport=shm|basp" or "error ...".
int role_xmit(const std::map<std::string, std::string>& args) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cafshm::settings s;
  s.role = cafshm::role::client;
  cafshm::module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto ep = [&](const std::string& k) {
    auto t = get(args, k);
    auto c = t.rfind(':');
    return cafshm::endpoint{t.substr(0, c), static_cast<uint16_t>(std::stoi(t.substr(c + 1)))};
  };
  cafshm::client_options co;
  co.timeout = std::chrono::seconds(60);
  auto src = cafshm::client::connect(sys, ep("--engine-a"), "xsrc", co);
  auto dst = cafshm::client::connect(sys, ep("--engine-b"), "xsink", co);
  if (!src || !dst) {
    std::cerr << "xmit: cannot register\n";
    return 1;
  }
  std::string peer = get(args, "--peer", get(args, "--engine-b"));
  std::cout << "ready" << std::endl;
  std::optional<cafshm::client> probe;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd;
    uint64_t size = 0;
    int reps = 0, warmup = 0, idle_ms = 0, gap_us = 0;
    in >> cmd >> size >> reps >> warmup >> idle_ms >> gap_us;
    if (cmd != "run" && cmd != "rtt" && cmd != "cache")
      break;
    xmit_block block{*src, *dst, peer, size};
    if (!block.error().empty()) {
      std::cout << "error " << block.error() << std::endl;
      continue;
    }
    if (cmd == "run") {
      std::vector<double> us;
      for (int r = 0; r < warmup + reps; ++r) {
        auto el = block.send(r);
        if (!el)
          break;
        if (r >= warmup)
          us.push_back(*el);
      }
      if (!block.error().empty())
        std::cout << "error " << block.error() << std::endl;
      else
        print_times(us);
      continue;
    }
    if (cmd == "cache") {
      std::vector<double> miss, hit;
      for (int r = 0; r < warmup + reps; ++r) {
        auto m = block.send(r);
        auto h = m ? block.send_unchanged() : std::nullopt;
        if (!h)
          break;
        if (r >= warmup) {
          miss.push_back(*m);
          hit.push_back(*h);
        }
      }
      if (!block.error().empty()) {
        std::cout << "error " << block.error() << std::endl;
        continue;
      }
      std::cout << "result miss_us=" << joined_times(miss) << " hit_us=" << joined_times(hit)
                << std::endl;
      continue;
    }
    if (!probe) {
      auto p = cafshm::client::connect(sys, ep("--engine-a"), "xprobe", co);
      if (!p) {
        std::cout << "error probe client: " << cafshm::describe(p.error()) << std::endl;
        continue;
      }
      probe.emplace(std::move(*p));
    }
    request_probe rp{*probe};
    std::vector<double> idle, during, transfer;
    std::string error;
    for (int r = 0; r < warmup + reps && error.empty(); ++r) {
      if (r < warmup) {
        if (!block.send(r))
          error = block.error();
        continue;
      }
      rp.start(std::chrono::milliseconds(0), std::chrono::microseconds(gap_us));
      std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
      for (const auto& x : rp.stop())
        idle.push_back(us_between(x.begin, x.end));
      rp.start(std::chrono::milliseconds(10), std::chrono::microseconds(gap_us));
      auto t0 = clock_type::now();
      auto el = block.send(r);
      auto t1 = clock_type::now();
      const auto& samples = rp.stop();
      if (!el) {
        error = block.error();
        break;
      }
      transfer.push_back(*el);
      for (const auto& x : samples)
        if (x.begin >= t0 && x.end <= t1)
          during.push_back(us_between(x.begin, x.end));
      if (!rp.error().empty())
        error = "probe: " + rp.error();
    }
    if (!error.empty()) {
      std::cout << "error " << error << std::endl;
      continue;
    }
    std::cout << "result idle_us=" << joined_times(idle) << " during_us=" << joined_times(during)
              << " transfer_us=" << joined_times(transfer) << " transport="
              << (probe->transport() == cafshm::local_transport::shm ? "shm" : "basp")
              << std::endl;
  }
  return 0;
}

// -- row 4 ----------------------------------------------------------------------------------------

namespace {

std::string remote_yaml(uint64_t chunk, uint32_t window, uint64_t cache = 0) {
  // Both engines on loopback: unauthenticated peers, dialing 127.0.0.1 allowed.
  return "remote:\n  chunk: " + human_size(chunk) + "\n  window: " + std::to_string(window)
         + "\n  cache: " + human_size(cache)
         + "\n  unauthenticated_peers: true\n  allow_dial: [127.0.0.1]\n";
}

stat gbps_of(const std::vector<double>& us, uint64_t size) {
  std::vector<double> g;
  for (auto t : us)
    g.push_back(static_cast<double>(size) / (t * 1e3)); // bytes/us/1e3 = GB/s
  return summarize(g);
}

double kib_to_mib(uint64_t k) {
  return static_cast<double>(k) / 1024.0;
}

// Parses "rss hwm_kib=N anon_kib=M" into hwm.
rss_figures parse_rss(const std::string& rest) {
  rss_figures f;
  uint64_t hwm = 0, anon = 0;
  std::sscanf(rest.c_str(), "hwm_kib=%lu anon_kib=%lu", &hwm, &anon);
  f.hwm_mib = kib_to_mib(hwm);
  f.anon_peak_mib = 0;
  return f;
}

struct xmit_run {
  stat gbps;
  rss_figures a, b, client;
  std::string error;
};

// One size through a running pair of daemons and an xmit helper.
xmit_run run_xmit(daemon_process& a, daemon_process& b, child_process& x, uint64_t size, int reps, int warmup) {
  xmit_run out;
  reset_peak_rss(a.pid());
  reset_peak_rss(b.pid());
  reset_peak_rss(x.pid());
  rss_sampler sampler{{a.pid(), b.pid(), x.pid()}};
  x.write_line("run " + std::to_string(size) + " " + std::to_string(reps) + " "
               + std::to_string(warmup));
  auto line = x.read_line(std::chrono::seconds(600));
  auto peaks = sampler.stop();
  const auto& base = sampler.baseline();
  auto fig = [&](pid_t pid, size_t i) {
    rss_figures f;
    f.hwm_mib = kib_to_mib(status_kib(pid, "VmHWM"));
    f.anon_peak_mib = kib_to_mib(peaks[i] - std::min(peaks[i], base[i]));
    return f;
  };
  out.a = fig(a.pid(), 0);
  out.b = fig(b.pid(), 1);
  out.client = fig(x.pid(), 2);
  if (!line) {
    out.error = "no answer from the xmit helper";
  } else if (line->rfind("result us=", 0) == 0) {
    out.gbps = gbps_of(parse_times(line->substr(10)), size);
  } else {
    out.error = *line;
  }
  return out;
}

struct pair_run {
  stat gbps;
  rss_figures source, sink;
  std::string cipher; // tls: what the source said it negotiated
  std::string error;
};

// A sink and a source helper of one kind (tcp, tls or caf) for one size; `sink_args` and
// `source_args` are added to their command lines.
pair_run run_pair(const options& opts, const std::string& kind, uint64_t size, int reps,
                  int warmup, uint64_t chunk, uint32_t window,
                  const std::vector<std::string>& sink_args = {},
                  const std::vector<std::string>& source_args = {}) {
  pair_run out;
  std::vector<std::string> sink_argv{opts.self, "--role", kind + "-sink"};
  sink_argv.insert(sink_argv.end(), sink_args.begin(), sink_args.end());
  child_process sink{sink_argv};
  auto ready = sink.wait_for_line("ready ", std::chrono::seconds(30));
  if (!ready) {
    out.error = kind + " sink did not start";
    return out;
  }
  std::vector<std::string> source_argv{
    opts.self,  "--role", kind + "-source",      "--port",  *ready,
    "--size",   std::to_string(size),           "--reps",  std::to_string(reps),
    "--warmup", std::to_string(warmup),         "--chunk", std::to_string(chunk),
    "--window", std::to_string(window)};
  source_argv.insert(source_argv.end(), source_args.begin(), source_args.end());
  child_process source{source_argv};
  auto result = source.read_line(std::chrono::seconds(600));
  if (!result || result->rfind("result us=", 0) != 0) {
    out.error = kind + ": " + (result ? *result : std::string{"no result"});
    return out;
  }
  out.gbps = gbps_of(parse_times(result->substr(10)), size);
  if (kind == "tls")
    if (auto cipher = source.wait_for_line("cipher ", std::chrono::seconds(30)))
      out.cipher = *cipher;
  if (auto rss = source.wait_for_line("rss ", std::chrono::seconds(30)))
    out.source = parse_rss(*rss);
  source.wait(std::chrono::seconds(30));
  sink.close_stdin();
  if (auto rss = sink.wait_for_line("rss ", std::chrono::seconds(30)))
    out.sink = parse_rss(*rss);
  sink.wait(std::chrono::seconds(30));
  return out;
}

// The remote: section of an engine with remote.tls: certificate `who` of `certs`, its peer
// listener on 127.0.0.1:port, the chunk and window of the plain engines, no cache.
std::string tls_remote_yaml(const cafshm::test::certificates& certs, const std::string& who,
                            uint16_t port, uint64_t chunk, uint32_t window) {
  return certs.yaml(who, port) + "  chunk: " + human_size(chunk)
         + "\n  window: " + std::to_string(window) + "\n  cache: 0B\n  allow_dial: [127.0.0.1]\n";
}

// A cafshmd with remote.tls whose peer listener is on a port free a moment ago (remote.tls needs
// a fixed port; tried again with another should a process take it first). Null if none started
// with a TLS peer listener.
struct tls_daemon {
  std::unique_ptr<daemon_process> daemon;
  uint16_t peer_port = 0;
  std::string peers() const { return "127.0.0.1:" + std::to_string(peer_port); }
};
tls_daemon start_tls_daemon(const options& opts, const cafshm::test::certificates& certs,
                            const std::string& who, const std::string& arena, uint64_t chunk,
                            uint32_t window) {
  tls_daemon out;
  for (int attempt = 0; attempt < 5 && !out.daemon; ++attempt) {
    auto port = cafshm::test::free_port();
    auto d = std::make_unique<daemon_process>(
      unique_name("cafshm-bench-t" + who),
      engine_options(opts.bin_dir, arena, tls_remote_yaml(certs, who, port, chunk, window)));
    if (!d->ready())
      continue;
    auto line = d->process().wait_for_line("cafshmd peers on ", std::chrono::seconds(10));
    if (!line || *line != "127.0.0.1:" + std::to_string(port) + " (tls)")
      continue;
    out.peer_port = port;
    out.daemon = std::move(d);
  }
  return out;
}

// The TLS rows: transmit between two engines with remote.tls, then the raw TLS pair, each size.
void run_tls(const options& opts, remote_report& rep, const std::vector<uint64_t>& sizes,
             const std::vector<int>& reps, const std::string& arena) {
  cafshm::test::certificates certs{"cafshm-bench-tls"};
  if (!certs.error().empty()) {
    rep.tls_error = certs.error();
    return;
  }
  for (auto size : sizes) {
    tls_row row;
    row.size = size;
    rep.tls.push_back(row);
  }
  {
    auto a = start_tls_daemon(opts, certs, "a", arena, rep.chunk, rep.window);
    auto b = start_tls_daemon(opts, certs, "b", arena, rep.chunk, rep.window);
    if (!a.daemon || !b.daemon) {
      rep.tls_error = "cafshmd with remote.tls did not start";
      return;
    }
    child_process x{{opts.self, "--role", "xmit", "--engine-a", a.daemon->address_text(),
                     "--engine-b", b.daemon->address_text(), "--peer", b.peers()}};
    if (!x.wait_for_line("ready", std::chrono::seconds(30))) {
      rep.tls_error = "the xmit helper did not start";
      return;
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::cerr << "bench: remote: transmit with remote.tls " << human_size(sizes[i]) << "\n";
      auto r = run_xmit(*a.daemon, *b.daemon, x, sizes[i], reps[i], 1);
      auto& row = rep.tls[i];
      row.xmit_gbps = r.gbps;
      row.daemon_a = r.a;
      row.daemon_b = r.b;
      row.error = r.error;
    }
    x.close_stdin();
    x.wait(std::chrono::seconds(20));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::cerr << "bench: remote: raw TLS pair " << human_size(sizes[i]) << "\n";
    auto t = run_pair(opts, "tls", sizes[i], reps[i], 1, rep.chunk, rep.window,
                      {"--cert", certs.path("b.pem"), "--key", certs.path("b.key"), "--ca",
                       certs.path("ca.pem")},
                      {"--cert", certs.path("a.pem"), "--key", certs.path("a.key"), "--pass",
                       "secret", "--ca", certs.path("ca.pem")});
    auto& row = rep.tls[i];
    row.pair_gbps = t.gbps;
    row.pair_source = t.source;
    row.pair_sink = t.sink;
    if (!t.cipher.empty())
      rep.tls_cipher = t.cipher;
    if (!t.error.empty())
      row.error += (row.error.empty() ? "" : "; ") + t.error;
  }
}

// A miss and a hit of `size` per repetition between two engines whose destination keeps a cache
// with remote.cache_hit `policy`.
cache_row run_cache(const options& opts, const std::string& policy, uint64_t size, int reps) {
  cache_row row;
  row.policy = policy;
  row.size = size;
  auto yaml = remote_yaml(cafshm::remote_settings{}.chunk_bytes,
                          cafshm::remote_settings{}.window_chunks, 2 * size)
              + "  cache_hit: " + policy + "\n";
  daemon_process a{unique_name("cafshm-bench-ca"), engine_options(opts.bin_dir, "512MiB", yaml)};
  daemon_process b{unique_name("cafshm-bench-cb"), engine_options(opts.bin_dir, "512MiB", yaml)};
  if (!a.ready() || !b.ready()) {
    row.error = "cafshmd did not start";
    return row;
  }
  child_process x{{opts.self, "--role", "xmit", "--engine-a", a.address_text(), "--engine-b",
                   b.address_text()}};
  if (!x.wait_for_line("ready", std::chrono::seconds(30))) {
    row.error = "the xmit helper did not start";
    return row;
  }
  x.write_line("cache " + std::to_string(size) + " " + std::to_string(reps) + " 1");
  auto line = x.read_line(std::chrono::seconds(600));
  if (!line || line->rfind("result ", 0) != 0) {
    row.error = line ? *line : std::string{"no answer from the xmit helper"};
  } else {
    std::istringstream in{line->substr(7)};
    std::string field;
    auto ms = [](std::vector<double> us) {
      for (auto& t : us)
        t /= 1000;
      return summarize(us);
    };
    while (in >> field) {
      auto eq = field.find('=');
      if (field.substr(0, eq) == "miss_us")
        row.miss_ms = ms(parse_times(field.substr(eq + 1)));
      else if (field.substr(0, eq) == "hit_us")
        row.hit_ms = ms(parse_times(field.substr(eq + 1)));
    }
  }
  x.close_stdin();
  x.wait(std::chrono::seconds(20));
  return row;
}

// Engine requests idle and during transfers of `size` through the running pair a, b.
requests_during_transfer run_requests(child_process& x, uint64_t size, int reps) {
  requests_during_transfer out;
  out.size = size;
  x.write_line("rtt " + std::to_string(size) + " " + std::to_string(reps) + " 1 500 1000");
  auto line = x.read_line(std::chrono::seconds(900));
  if (!line) {
    out.error = "no answer from the xmit helper";
    return out;
  }
  if (line->rfind("result ", 0) != 0) {
    out.error = *line;
    return out;
  }
  std::istringstream in{line->substr(7)};
  std::string field;
  while (in >> field) {
    auto eq = field.find('=');
    auto key = field.substr(0, eq);
    auto value = field.substr(eq + 1);
    if (key == "idle_us")
      out.idle_us = summarize(parse_times(value));
    else if (key == "during_us")
      out.during_us = summarize(parse_times(value));
    else if (key == "transfer_us") {
      auto us = parse_times(value);
      out.transfers = us.size();
      out.transfer_gbps = gbps_of(us, size);
    } else if (key == "transport")
      out.transport = value;
  }
  return out;
}

} // namespace

remote_report run_remote(const options& opts) {
  remote_report rep;
  cafshm::remote_settings defaults;
  rep.chunk = defaults.chunk_bytes;
  rep.window = defaults.window_chunks;
  std::vector<uint64_t> sizes{4ull << 20, 64ull << 20, opts.quick ? 256ull << 20 : 1ull << 30};
  std::vector<int> reps = opts.quick ? std::vector<int>{5, 3, 2} : std::vector<int>{15, 9, 5};
  const std::string arena = opts.quick ? "512MiB" : "2GiB";
  {
    daemon_process a{unique_name("cafshm-bench-ra"),
                     engine_options(opts.bin_dir, arena, remote_yaml(rep.chunk, rep.window))};
    daemon_process b{unique_name("cafshm-bench-rb"),
                     engine_options(opts.bin_dir, arena, remote_yaml(rep.chunk, rep.window))};
    if (!a.ready() || !b.ready()) {
      rep.error = "cafshmd did not start";
      return rep;
    }
    child_process x{{opts.self, "--role", "xmit", "--engine-a", a.address_text(), "--engine-b", b.address_text()}};
    if (!x.wait_for_line("ready", std::chrono::seconds(30))) {
      rep.error = "the xmit helper did not start";
      return rep;
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::cerr << "bench: remote: transmit " << human_size(sizes[i]) << "\n";
      remote_row row;
      row.size = sizes[i];
      auto r = run_xmit(a, b, x, sizes[i], reps[i], 1);
      row.xmit_gbps = r.gbps;
      row.daemon_a = r.a;
      row.daemon_b = r.b;
      row.xmit_client = r.client;
      row.error = r.error;
      rep.rows.push_back(row);
    }
    std::cerr << "bench: remote: engine requests idle and during transfers of "
              << human_size(sizes.back()) << "\n";
    rep.requests = run_requests(x, sizes.back(), opts.quick ? 3 : 5);
    x.close_stdin();
    x.wait(std::chrono::seconds(20));
  }
  // Sizes of the TLS rows: the two larger ones of the plain rows.
  run_tls(opts, rep, {sizes[1], sizes[2]}, {reps[1], reps[2]}, arena);
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto& row = rep.rows[i];
    std::cerr << "bench: remote: tcp and caf " << human_size(sizes[i]) << "\n";
    auto t = run_pair(opts, "tcp", sizes[i], reps[i], 1, rep.chunk, rep.window);
    row.tcp_gbps = t.gbps;
    row.tcp_source = t.source;
    row.tcp_sink = t.sink;
    auto c = run_pair(opts, "caf", sizes[i], reps[i], 1, rep.chunk, rep.window);
    row.caf_gbps = c.gbps;
    row.caf_source = c.source;
    row.caf_sink = c.sink;
    for (auto* e : {&t.error, &c.error})
      if (!e->empty())
        row.error += (row.error.empty() ? "" : "; ") + *e;
  }
  for (const char* policy : {"copy", "hand_over"}) {
    std::cerr << "bench: remote: cache hits (" << policy << ") of 64MiB\n";
    rep.cache.push_back(run_cache(opts, policy, 64ull << 20, opts.quick ? 3 : 9));
  }
  // remote.chunk x remote.window at 64 MiB blocks
  rep.sweep_size = 64ull << 20;
  struct config {
    uint64_t chunk;
    uint32_t window;
    uint64_t cache;
  };
  std::vector<config> configs;
  // (4 MiB, 4, no cache) is the 64 MiB row of the table above: not measured twice.
  if (opts.quick) {
    configs = {{1u << 20, 4, 0}, {16u << 20, 2, 0}};
  } else {
    for (uint64_t c : {1ull << 20, 4ull << 20, 16ull << 20})
      for (uint32_t w : {2u, 4u, 8u})
        if (c != rep.chunk || w != rep.window)
          configs.push_back({c, w, 0});
  }
  // the defaults as shipped: the receiver also keeps a copy of every block in its cache
  configs.push_back({defaults.chunk_bytes, defaults.window_chunks, defaults.cache_bytes});
  for (auto [chunk, window, cache] : configs) {
    std::cerr << "bench: remote: sweep chunk " << human_size(chunk) << " window " << window
              << " cache " << human_size(cache) << "\n";
    sweep_row row;
    row.chunk = chunk;
    row.window = window;
    row.cache = cache;
    daemon_process a{unique_name("cafshm-bench-sa"),
                     engine_options(opts.bin_dir, "512MiB", remote_yaml(chunk, window, cache))};
    daemon_process b{unique_name("cafshm-bench-sb"),
                     engine_options(opts.bin_dir, "512MiB", remote_yaml(chunk, window, cache))};
    if (!a.ready() || !b.ready()) {
      row.error = "cafshmd did not start";
      rep.sweep.push_back(row);
      continue;
    }
    child_process x{{opts.self, "--role", "xmit", "--engine-a", a.address_text(), "--engine-b", b.address_text()}};
    if (!x.wait_for_line("ready", std::chrono::seconds(30))) {
      row.error = "the xmit helper did not start";
      rep.sweep.push_back(row);
      continue;
    }
    auto r = run_xmit(a, b, x, rep.sweep_size, opts.quick ? 3 : 9, 1);
    row.gbps = r.gbps;
    row.daemon_a = r.a;
    row.daemon_b = r.b;
    row.error = r.error;
    rep.sweep.push_back(row);
    x.close_stdin();
    x.wait(std::chrono::seconds(20));
  }
  for (const auto& r : rep.rows)
    if (r.size == rep.sweep_size) {
      sweep_row row;
      row.chunk = rep.chunk;
      row.window = rep.window;
      row.gbps = r.xmit_gbps;
      row.daemon_a = r.daemon_a;
      row.daemon_b = r.daemon_b;
      row.error = r.error;
      rep.sweep.push_back(row);
    }
  std::sort(rep.sweep.begin(), rep.sweep.end(), [](const sweep_row& x, const sweep_row& y) {
    return std::tie(x.cache, x.chunk, x.window) < std::tie(y.cache, y.chunk, y.window);
  });
  return rep;
}

} // namespace bench
