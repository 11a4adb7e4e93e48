#include "commands.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <iostream>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/actor_cast.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "output.hpp"

namespace cafshm::cli {

namespace {

[[noreturn]] void fail(std::string what) {
  throw failure{std::move(what)};
}

[[noreturn]] void fail_errno(const std::string& what) {
  fail(what + ": " + std::strerror(errno));
}

template <class T>
T value_of(caf::expected<T> x) {
  if (!x)
    fail(describe(x.error()));
  return std::move(*x);
}

void check(const caf::expected<void>& x) {
  if (!x)
    fail(describe(x.error()));
}

// Owns a file descriptor; never closes the standard streams.
struct file {
  int fd;
  std::string name; // for messages
  ~file() {
    if (fd > STDERR_FILENO)
      ::close(fd);
  }
};

void read_exact(const file& in, std::span<std::byte> dst) {
  for (size_t done = 0; done < dst.size();) {
    auto n = ::read(in.fd, dst.data() + done, dst.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail_errno("cannot read " + in.name);
    if (n == 0)
      fail(in.name + " shrank while it was read");
    done += static_cast<size_t>(n);
  }
}

// Everything `in` holds, refusing more than `max_bytes` (a device like /dev/zero never ends).
std::vector<char> read_all(const file& in, uint64_t max_bytes) {
  constexpr size_t chunk = 1 << 20;
  std::vector<char> result;
  for (;;) {
    auto old = result.size();
    if (old > max_bytes)
      fail(in.name + " holds more than " + std::to_string(max_bytes)
           + " bytes (put --max-size raises the limit)");
    result.resize(old + chunk);
    auto n = ::read(in.fd, result.data() + old, chunk);
    if (n < 0 && errno != EINTR)
      fail_errno("cannot read " + in.name);
    result.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n == 0)
      return result;
  }
}

void write_all(const file& out, std::span<const char> bytes) {
  for (size_t done = 0; done < bytes.size();) {
    auto n = ::write(out.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail_errno("cannot write " + out.name);
    done += static_cast<size_t>(n);
  }
}

// A progress line on stderr: rewritten in place on a terminal, otherwise one line a second at
// most (so that logs stay short).
class progress_line {
public:
  using clock = std::chrono::steady_clock;

  bool due() const { return tty_ || last_ == clock::time_point{} || clock::now() - last_ >= period; }

  void show(const std::string& text) {
    last_ = clock::now();
    if (!tty_) {
      std::cerr << text << std::endl;
      return;
    }
    std::cerr << '\r' << text << std::string(width_ > text.size() ? width_ - text.size() : 0, ' ')
              << std::flush;
    width_ = text.size();
  }

  void clear() {
    if (tty_ && width_ > 0)
      std::cerr << '\r' << std::string(width_, ' ') << '\r' << std::flush;
  }

private:
  static constexpr auto period = std::chrono::seconds(1);
  bool tty_ = ::isatty(STDERR_FILENO) == 1;
  size_t width_ = 0;
  clock::time_point last_;
};

// Whether the engine's label of a peer ("host:port", or "name (host:port)" for a configured
// peer) is the destination `to` (an address or a configured peer's name).
bool is_peer(const std::string& label, const std::string& to) {
  return label == to || label.rfind(to + " (", 0) == 0
         || label.find("(" + to + ")") != std::string::npos;
}

// Our transfer among the engine's outgoing ones: same destination and size, the newest if
// several match.
const transmit_progress* find_progress(const engine_stats& st, const std::string& to,
                                       uint64_t size) {
  const transmit_progress* best = nullptr;
  for (const auto& t : st.outgoing)
    if (!t.cache_fill && t.bytes == size && is_peer(t.peer, to)
        && (best == nullptr || t.id > best->id))
      best = &t;
  return best;
}

// "3.1 MiB of 64 MiB sent (4%), 12.5 MiB/s, 5 s left": the rate since the transmit started.
std::string progress_text(const transmit_progress& t, std::chrono::steady_clock::duration took) {
  auto percent = t.bytes == 0 ? 100 : t.acked * 100 / t.bytes;
  auto text = human_size(t.acked) + " of " + human_size(t.bytes) + " sent ("
              + std::to_string(percent) + "%)";
  double seconds = std::chrono::duration<double>(took).count();
  if (seconds <= 0 || t.acked == 0)
    return text;
  double rate = static_cast<double>(t.acked) / seconds;
  auto left = static_cast<uint64_t>(static_cast<double>(t.bytes - t.acked) / rate + 0.5);
  return text + ", " + human_size(static_cast<uint64_t>(rate)) + "/s, " + std::to_string(left)
         + " s left";
}

void flush_stdout() {
  if (!std::cout.flush())
    fail("cannot write stdout");
}

// Like middleman::remote_actor, but bounded by `timeout`: CAF 0.17 waits forever for the
// handshake, so a port that accepts connections and never answers would hang the command.
// Runs `body` with a client registered for this command only and unregisters it afterwards (on
// failure too: the client's destructor unregisters, which reclaims whatever it still holds).
template <class F>
void with_client(const settings& s, F&& body) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", size_t{1});
  // The middleman's own actor on the scheduler instead of a thread of its own: when a request
  // timed out while the middleman was still connecting (--timeout 1ms), CAF 0.17 keeps a
  // reference to that actor in the unfinished connection, and ~actor_system would wait for its
  // thread forever.
  cfg.set("middleman.attach-utility-actors", true);
  cfg.load<caf::io::middleman>();
  cfg.load<module>();
  auto client_settings = s;
  client_settings.role = role::client;
  module::configure(cfg, std::move(client_settings));
  caf::actor_system sys{cfg};
  client_options opts;
  opts.timeout = s.client.request_timeout;
  opts.unique_name = true; // several commands may run at once: cafshm-cli, cafshm-cli-2, ...
  auto c = value_of(client::connect(sys, s.client.engine, "cafshm-cli", opts));
  body(c);
  check(c.close());
}

} // namespace

void stat(const settings& s, bool json) {
  with_client(s, [&](client& c) {
    auto stats = value_of(c.stats());
    json ? write_json(std::cout, stats) : write_text(std::cout, stats);
    flush_stdout();
  });
}

void put(const settings& s, const std::string& name, const std::string& path,
         uint64_t max_bytes) {
  bool from_stdin = path == "-";
  file in{from_stdin ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC),
          from_stdin ? "stdin" : "'" + path + "'"};
  if (in.fd < 0)
    fail_errno("cannot open " + in.name);
  struct stat st{};
  if (::fstat(in.fd, &st) != 0)
    fail_errno("cannot stat " + in.name);
  // Regular files go straight into the block; other inputs have no size up front.
  bool direct = S_ISREG(st.st_mode);
  std::vector<char> buffered;
  if (!direct)
    buffered = read_all(in, max_bytes);
  uint64_t size = direct ? static_cast<uint64_t>(st.st_size) : buffered.size();
  if (size > max_bytes)
    fail(in.name + " holds " + std::to_string(size) + " bytes, more than "
         + std::to_string(max_bytes) + " (put --max-size raises the limit)");
  if (size == 0)
    fail(in.name + " is empty (a block holds at least 1 byte)");
  with_client(s, [&](client& c) {
    auto ref = value_of(c.allocate(size));
    try {
      auto view = value_of(c.map(ref, access_mode::read_write));
      if (direct)
        read_exact(in, view.bytes());
      else
        std::memcpy(view.data(), buffered.data(), size);
      check(c.unmap(std::move(view)));
      check(c.name(ref, name));
      value_of(c.give_to_engine(ref));
    } catch (...) {
      c.free(ref); // not transferred: the block is still this process's
      throw;
    }
  });
}

void get(const settings& s, const std::string& name, const std::string& path) {
  with_client(s, [&](client& c) {
    auto view = value_of(c.map(value_of(c.lookup(name)), access_mode::read));
    bool to_stdout = path.empty() || path == "-";
    file out{to_stdout ? STDOUT_FILENO
                       : ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666),
             to_stdout ? "stdout" : "'" + path + "'"};
    if (out.fd < 0)
      fail_errno("cannot open " + out.name);
    write_all(out, view.chars());
    if (!to_stdout && ::close(std::exchange(out.fd, -1)) != 0)
      fail_errno("cannot write " + out.name);
    check(c.unmap(std::move(view)));
  });
}

void ls(const settings& s) {
  with_client(s, [&](client& c) {
    write_names(std::cout, value_of(c.stats()));
    flush_stdout();
  });
}

void rm(const settings& s, const std::string& name) {
  with_client(s, [&](client& c) { check(c.remove(name)); });
}

void transmit(const settings& s, const std::string& name, const std::string& to,
              const std::string& as, bool json) {
  using namespace std::chrono_literals;
  with_client(s, [&](client& c) {
    auto ref = value_of(c.lookup(name));
    // Blocks until the destination verified the copy; meanwhile, this thread shows progress.
    auto started = std::chrono::steady_clock::now();
    auto pending = std::async(std::launch::async,
                              [&] { return c.transmit(ref, to, transmit_target{"", as, {}}); });
    if (pending.wait_for(1s) != std::future_status::ready) {
      progress_line line;
      do {
        if (!line.due())
          continue;
        auto st = c.stats();
        if (const auto* t = st ? find_progress(*st, to, ref.size) : nullptr)
          line.show("transmit '" + name + "': "
                    + progress_text(*t, std::chrono::steady_clock::now() - started));
      } while (pending.wait_for(250ms) != std::future_status::ready);
      line.clear();
    }
    auto receipt = value_of(pending.get());
    if (json) {
      write_transmit_json(std::cout, name, to, as, receipt,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                            .count());
      flush_stdout();
      return;
    }
    std::cout << "transmitted '" << name << "' to " << to << " as '" << as
              << "': " << receipt.bytes << " bytes, " << receipt.payload_bytes
              << " payload bytes sent, " << (receipt.cache_hit ? "cache hit" : "cache miss")
              << std::endl;
    flush_stdout();
  });
}

} // namespace cafshm::cli
