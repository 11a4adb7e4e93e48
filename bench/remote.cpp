// Row 4: remote transfer on loopback. cafshm's client::transmit between two cafshmd, against a
// raw TCP socket pair moving the same bytes (the ceiling) and plain CAF std::vector<char> messages
// in chunks with the same window, with the peak RSS of every process involved. The helper roles
// xmit, tcp-source/-sink and caf-source/-sink are this program started again.
#include <algorithm>
#include <cstring>
#include <future>
#include <iostream>
#include <sstream>
#include <tuple>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

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

void fill_pattern(char* p, uint64_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
  for (; i < n; ++i)
    p[i] = static_cast<char>(i);
}

void print_rss() {
  auto st = proc_status(::getpid());
  std::cout << "rss hwm_kib=" << st["VmHWM"] << " anon_kib=" << st["RssAnon"] << std::endl;
}

void print_times(const std::vector<double>& us) {
  std::cout << "result us=";
  for (size_t i = 0; i < us.size(); ++i)
    std::cout << (i ? "," : "") << us[i];
  std::cout << std::endl;
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

// Registers "xsrc" at engine A and "xsink" at engine B. Commands on stdin:
//   run SIZE REPS WARMUP   allocate SIZE at A, write it, transmit it to B (owner xsink)
//                          WARMUP + REPS times (timing REPS), free each copy at B untimed;
//                          prints "result us=..." or "error ..."
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
  std::string peer = get(args, "--engine-b");
  std::cout << "ready" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd;
    uint64_t size = 0;
    int reps = 0, warmup = 0;
    in >> cmd >> size >> reps >> warmup;
    if (cmd != "run")
      break;
    auto ref = src->allocate(size);
    if (!ref) {
      std::cout << "error allocate " << cafshm::describe(ref.error()) << std::endl;
      continue;
    }
    // The view stays open: every repetition changes the first bytes, so that a destination with
    // a content cache never has the block already.
    auto view = src->map(*ref, cafshm::access_mode::read_write);
    if (!view) {
      std::cout << "error map " << cafshm::describe(view.error()) << std::endl;
      continue;
    }
    fill_pattern(reinterpret_cast<char*>(view->data()), size, size);
    std::vector<double> us;
    std::string error;
    for (int r = 0; r < warmup + reps && error.empty(); ++r) {
      uint64_t stamp = static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ull + size;
      std::memcpy(view->data(), &stamp, std::min<uint64_t>(8, size));
      cafshm::transmit_target target;
      target.process = "xsink";
      auto t0 = clock_type::now();
      auto receipt = src->transmit(*ref, peer, target);
      auto el = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
      if (!receipt) {
        error = cafshm::describe(receipt.error());
        break;
      }
      if (r >= warmup)
        us.push_back(el);
      (void) dst->free(receipt->remote);
    }
    (void) src->unmap(std::move(*view));
    (void) src->free(*ref);
    if (!error.empty())
      std::cout << "error " << error << std::endl;
    else
      print_times(us);
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
  std::string error;
};

// A sink and a source helper of one kind (tcp or caf) for one size.
pair_run run_pair(const options& opts, const std::string& kind, uint64_t size, int reps,
                  int warmup, uint64_t chunk, uint32_t window) {
  pair_run out;
  child_process sink{{opts.self, "--role", kind + "-sink"}};
  auto ready = sink.wait_for_line("ready ", std::chrono::seconds(30));
  if (!ready) {
    out.error = kind + " sink did not start";
    return out;
  }
  child_process source{{opts.self, "--role", kind + "-source", "--port", *ready, "--size",
                std::to_string(size), "--reps", std::to_string(reps), "--warmup",
                std::to_string(warmup), "--chunk", std::to_string(chunk), "--window",
                std::to_string(window)}};
  auto result = source.read_line(std::chrono::seconds(600));
  if (!result || result->rfind("result us=", 0) != 0) {
    out.error = kind + ": " + (result ? *result : std::string{"no result"});
    return out;
  }
  out.gbps = gbps_of(parse_times(result->substr(10)), size);
  if (auto rss = source.wait_for_line("rss ", std::chrono::seconds(30)))
    out.source = parse_rss(*rss);
  source.wait(std::chrono::seconds(30));
  sink.close_stdin();
  if (auto rss = sink.wait_for_line("rss ", std::chrono::seconds(30)))
    out.sink = parse_rss(*rss);
  sink.wait(std::chrono::seconds(30));
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
    x.close_stdin();
    x.wait(std::chrono::seconds(20));
  }
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
