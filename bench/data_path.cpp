// cafshm-bench-datapath: which carrier can move a remote transfer's payload near raw TCP speed.
// Three carriers move the same bytes between two processes over loopback, each measured as the
// time from the first byte sent to the receiver's acknowledgement of the last:
//   tcp     a raw TCP socket pair: one send() of the whole buffer, recv() into a pre-faulted
//           buffer (the ceiling);
//   direct  a socket owned by a thread of its own at each side, as the engine's data connection
//           does it: chunks (remote.chunk_bytes) framed with their XXH3, sent straight from a
//           shared-memory segment, received straight into another one, each chunk also fed
//           into a streaming XXH3 of the block, at most `window` chunks unacknowledged;
//   broker  CAF 0.17's raw-byte facility: an io broker at each side on the middleman's
//           multiplexer (spawn_server / spawn_client), the sender copying each chunk into the
//           scribe's wr_buf() with ack_writes() for the window, the receiver taking
//           receive_policy::at_most(chunk) reads and copying them into the shared-memory
//           destination, with the same XXH3 work.
// Usage: cafshm-bench-datapath [--sizes 64MiB,1GiB] [--reps 3] [--chunk 1MiB] [--window 4]
// Prints one line per carrier and size: median (min-max) GB/s, and /proc/loadavg before/after.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "xxh3_stream.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  uint64_t n = std::stoull(s, &pos);
  auto unit = s.substr(pos);
  if (unit == "KiB")
    return n << 10;
  if (unit == "MiB")
    return n << 20;
  if (unit == "GiB")
    return n << 30;
  return n;
}

std::string loadavg() {
  std::ifstream f{"/proc/loadavg"};
  std::string line;
  std::getline(f, line);
  return line;
}

// A shared-memory segment of `size` bytes (memfd), mapped, pre-faulted, with a pattern.
struct segment {
  int fd = -1;
  char* data = nullptr;
  uint64_t size = 0;
  explicit segment(uint64_t n) : size(n) {
    fd = ::memfd_create("cafshm-bench-datapath", 0);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(n)) != 0)
      throw std::runtime_error("memfd");
    auto* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
      throw std::runtime_error("mmap");
    data = static_cast<char*>(p);
    for (uint64_t i = 0; i < n; i += 8)
      std::memcpy(data + i, &i, std::min<uint64_t>(8, n - i));
  }
  ~segment() {
    ::munmap(data, size);
    ::close(fd);
  }
};

bool send_all(int fd, const char* p, uint64_t n) {
  while (n > 0) {
    auto k = ::send(fd, p, std::min<uint64_t>(n, 1u << 30), MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<uint64_t>(k);
  }
  return true;
}

bool recv_all(int fd, char* p, uint64_t n) {
  while (n > 0) {
    auto k = ::recv(fd, p, std::min<uint64_t>(n, 1u << 30), MSG_WAITALL);
    if (k <= 0)
      return false;
    p += k;
    n -= static_cast<uint64_t>(k);
  }
  return true;
}

int listen_loopback(uint16_t& port) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 4) != 0
      || ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("listen");
  port = ntohs(a.sin_port);
  return ls;
}

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// A chunk's frame on the direct connection: offset, length, XXH3 of the bytes that follow.
struct frame {
  uint64_t offset;
  uint64_t length;
  uint64_t hash;
};

// -- receivers (child process; they print nothing, exit 0 on success) ---------------------------

int receive_tcp(int fd, uint64_t size, int rounds) {
  std::vector<char> dest(size, 1);
  for (int r = 0; r < rounds; ++r) {
    if (!recv_all(fd, dest.data(), size))
      return 1;
    char ack = 1;
    if (!send_all(fd, &ack, 1))
      return 1;
  }
  return 0;
}

int receive_direct(int fd, uint64_t size, int rounds) {
  segment dest{size};
  for (int r = 0; r < rounds; ++r) {
    cafshm::xxh3_stream digest;
    uint64_t got = 0;
    while (got < size) {
      frame f{};
      if (!recv_all(fd, reinterpret_cast<char*>(&f), sizeof f) || f.offset != got
          || f.length > size - got || !recv_all(fd, dest.data + f.offset, f.length))
        return 1;
      if (XXH3_64bits(dest.data + f.offset, f.length) != f.hash)
        return 2;
      digest.update(std::as_bytes(std::span{dest.data + f.offset, f.length}));
      got += f.length;
      uint64_t ack = got;
      if (!send_all(fd, reinterpret_cast<char*>(&ack), sizeof ack))
        return 1;
    }
    uint64_t d = digest.digest();
    if (!send_all(fd, reinterpret_cast<char*>(&d), sizeof d))
      return 1;
  }
  return 0;
}

// -- senders (parent) ---------------------------------------------------------------------------

double send_tcp(int fd, const segment& src) {
  auto t0 = clock_type::now();
  char ack = 0;
  if (!send_all(fd, src.data, src.size) || !recv_all(fd, &ack, 1))
    throw std::runtime_error("tcp transfer");
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double send_direct(int fd, const segment& src, uint64_t chunk, uint32_t window) {
  auto t0 = clock_type::now();
  cafshm::xxh3_stream digest;
  uint64_t sent = 0, acked = 0;
  std::vector<uint64_t> ends; // chunk ends in flight
  while (acked < src.size) {
    while (sent < src.size && ends.size() < window) {
      uint64_t n = std::min(chunk, src.size - sent);
      frame f{sent, n, XXH3_64bits(src.data + sent, n)};
      digest.update(std::as_bytes(std::span{src.data + sent, n}));
      if (!send_all(fd, reinterpret_cast<char*>(&f), sizeof f))
        throw std::runtime_error("direct frame");
      off_t off = static_cast<off_t>(sent);
      uint64_t left = n;
      while (left > 0) { // the payload straight from the segment's file
        auto k = ::sendfile(fd, src.fd, &off, left);
        if (k <= 0)
          throw std::runtime_error("sendfile");
        left -= static_cast<uint64_t>(k);
      }
      sent += n;
      ends.push_back(sent);
    }
    uint64_t ack = 0;
    if (!recv_all(fd, reinterpret_cast<char*>(&ack), sizeof ack))
      throw std::runtime_error("direct ack");
    acked = ack;
    ends.erase(ends.begin(), std::find_if(ends.begin(), ends.end(),
                                          [&](uint64_t e) { return e > acked; }));
  }
  uint64_t theirs = 0;
  if (!recv_all(fd, reinterpret_cast<char*>(&theirs), sizeof theirs)
      || theirs != digest.digest())
    throw std::runtime_error("direct digest");
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// -- CAF brokers --------------------------------------------------------------------------------

using start_atom = caf::atom_constant<caf::atom("start")>;

// The receiving broker: copies what arrives into `dest`, acknowledges each chunk (8 bytes: the
// bytes received so far) and after `size` bytes the digest; `rounds` rounds, then quits.
caf::behavior sink_broker(caf::io::broker* self, segment* dest, uint64_t chunk, int rounds) {
  struct state {
    uint64_t got = 0;
    uint64_t in_chunk = 0;
    int round = 0;
    std::unique_ptr<cafshm::xxh3_stream> digest = std::make_unique<cafshm::xxh3_stream>();
  };
  auto st = std::make_shared<state>();
  return {
    [=](const caf::io::new_connection_msg& m) {
      self->configure_read(m.handle, caf::io::receive_policy::at_most(chunk));
    },
    [=](caf::io::new_data_msg& m) {
      if (m.buf.size() > dest->size - st->got)
        self->quit();
      std::memcpy(dest->data + st->got, m.buf.data(), m.buf.size());
      st->in_chunk += m.buf.size();
      st->got += m.buf.size();
      if (st->in_chunk == chunk || st->got == dest->size) {
        auto first = st->got - st->in_chunk;
        if (XXH3_64bits(dest->data + first, st->in_chunk) == 0)
          std::cerr << "(unlikely zero hash)\n";
        st->digest->update(std::as_bytes(std::span{dest->data + first, st->in_chunk}));
        st->in_chunk = 0;
        uint64_t ack = st->got;
        self->write(m.handle, sizeof ack, &ack);
        if (st->got == dest->size) {
          uint64_t d = st->digest->digest();
          self->write(m.handle, sizeof d, &d);
          st->got = 0;
          st->digest = std::make_unique<cafshm::xxh3_stream>();
          if (++st->round == rounds)
            self->quit();
        }
        self->flush(m.handle);
      }
      // never read past a chunk's end: each chunk is hashed and acknowledged on its own
      auto left = std::min(chunk - st->in_chunk, dest->size - st->got);
      self->configure_read(m.handle, caf::io::receive_policy::at_most(left == 0 ? chunk : left));
    },
    [=](const caf::io::connection_closed_msg&) { self->quit(); },
  };
}

// The sending broker: on start, sends `src` in chunks (copied into wr_buf), at most `window`
// unacknowledged; answers the starter with the seconds taken once the digest came back.
caf::behavior source_broker(caf::io::broker* self, caf::io::connection_handle hdl,
                            const segment* src, uint64_t chunk, uint32_t window) {
  struct state {
    uint64_t sent = 0, acked = 0;
    uint32_t in_flight = 0;
    std::vector<char> in;
    std::unique_ptr<cafshm::xxh3_stream> digest;
    clock_type::time_point t0;
    caf::response_promise rp;
  };
  auto st = std::make_shared<state>();
  self->configure_read(hdl, caf::io::receive_policy::exactly(8));
  auto pump = [=] {
    while (st->sent < src->size && st->in_flight < window) {
      uint64_t n = std::min(chunk, src->size - st->sent);
      auto* p = src->data + st->sent;
      if (XXH3_64bits(p, n) == 0)
        std::cerr << "(unlikely zero hash)\n";
      st->digest->update(std::as_bytes(std::span{p, n}));
      auto& buf = self->wr_buf(hdl);
      buf.insert(buf.end(), p, p + n);
      self->flush(hdl);
      st->sent += n;
      ++st->in_flight;
    }
  };
  return {
    [=](start_atom) {
      st->sent = st->acked = 0;
      st->in_flight = 0;
      st->digest = std::make_unique<cafshm::xxh3_stream>();
      st->t0 = clock_type::now();
      st->rp = self->make_response_promise();
      pump();
      return st->rp;
    },
    [=](caf::io::new_data_msg& m) {
      uint64_t v = 0;
      std::memcpy(&v, m.buf.data(), 8);
      if (st->acked < src->size) {
        st->acked = v;
        --st->in_flight;
        pump();
        return;
      }
      double secs = std::chrono::duration<double>(clock_type::now() - st->t0).count();
      st->rp.deliver(v == st->digest->digest() ? secs : -1.0);
    },
    [=](const caf::io::connection_closed_msg&) { self->quit(); },
  };
}

caf::actor_system_config& broker_config(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", 1);
  return cfg;
}

// -- driver -------------------------------------------------------------------------------------

struct result {
  std::vector<double> gbps;
};

std::string summary(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::ostringstream out;
  out.precision(3);
  out << std::fixed << v[v.size() / 2] << " (" << v.front() << "-" << v.back() << ")";
  return out.str();
}

// One warm-up round plus `reps` measured rounds of `kind` at `size`.
std::vector<double> run(const std::string& kind, uint64_t size, int reps, uint64_t chunk,
                        uint32_t window) {
  int rounds = reps + 1;
  std::vector<double> gbps;
  segment src{size};
  if (kind == "broker") {
    int ready[2];
    if (::pipe(ready) != 0)
      throw std::runtime_error("pipe");
    pid_t child = ::fork();
    if (child == 0) {
      ::close(ready[0]);
      caf::actor_system_config cfg;
      caf::actor_system sys{broker_config(cfg)};
      segment dest{size};
      uint16_t port = 0;
      auto srv = sys.middleman().spawn_server(sink_broker, port, &dest, chunk, rounds);
      if (!srv)
        ::_exit(1);
      if (::write(ready[1], &port, sizeof port) != sizeof port)
        ::_exit(1);
      sys.await_all_actors_done();
      ::_exit(0);
    }
    ::close(ready[1]);
    uint16_t port = 0;
    if (::read(ready[0], &port, sizeof port) != sizeof port)
      throw std::runtime_error("broker sink did not start");
    ::close(ready[0]);
    {
      caf::actor_system_config cfg;
      caf::actor_system sys{broker_config(cfg)};
      auto spawned = sys.middleman().spawn_client(source_broker, "127.0.0.1", port,
                                                  static_cast<const segment*>(&src), chunk,
                                                  window);
      if (!spawned)
        throw std::runtime_error("broker connect");
      auto src_broker = *spawned;
      caf::scoped_actor self{sys};
      for (int r = 0; r < rounds; ++r) {
        double secs = -1;
        self->request(src_broker, caf::infinite, start_atom::value)
          .receive([&](double s) { secs = s; },
                   [&](caf::error& e) { throw std::runtime_error(sys.render(e)); });
        if (secs < 0)
          throw std::runtime_error("broker digest mismatch");
        if (r > 0)
          gbps.push_back(static_cast<double>(size) / secs / 1e9);
      }
      caf::anon_send_exit(src_broker, caf::exit_reason::user_shutdown);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return gbps;
  }
  uint16_t port = 0;
  int ls = listen_loopback(port);
  pid_t child = ::fork();
  if (child == 0) {
    int fd = ::accept(ls, nullptr, nullptr);
    int one = 1; // the 8-byte acknowledgements go out at once (no Nagle delay)
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = kind == "tcp" ? receive_tcp(fd, size, rounds) : receive_direct(fd, size, rounds);
    ::_exit(rc);
  }
  ::close(ls);
  int fd = connect_loopback(port);
  for (int r = 0; r < rounds; ++r) {
    double secs = kind == "tcp" ? send_tcp(fd, src) : send_direct(fd, src, chunk, window);
    if (r > 0)
      gbps.push_back(static_cast<double>(size) / secs / 1e9);
  }
  ::close(fd);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(kind + " receiver failed");
  return gbps;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> sizes{"64MiB", "1GiB"};
  int reps = 3;
  uint64_t chunk = 1 << 20;
  uint32_t window = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sizes") {
      sizes.clear();
      std::istringstream in{v};
      for (std::string s; std::getline(in, s, ',');)
        sizes.push_back(s);
    } else if (k == "--reps") {
      reps = std::stoi(v);
    } else if (k == "--chunk") {
      chunk = parse_size(v);
    } else if (k == "--window") {
      window = static_cast<uint32_t>(std::stoul(v));
    }
  }
  std::cout << "loadavg before: " << loadavg() << "\n";
  std::cout << "chunk " << chunk << " B, window " << window << ", " << reps
            << " measured rounds after one warm-up; GB/s median (min-max)\n";
  try {
    for (const auto& s : sizes)
      for (std::string kind : {"tcp", "direct", "broker"})
        std::cout << s << " " << kind << " " << summary(run(kind, parse_size(s), reps, chunk, window))
                  << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "cafshm-bench-datapath: " << e.what() << "\n";
    return 1;
  }
  std::cout << "loadavg after: " << loadavg() << "\n";
}
