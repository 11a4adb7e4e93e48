// Row 8: fan-out. One sending cafshmd A and N receiving cafshmd on loopback; one block written at
// A is transmitted by a client of A to every receiver, one after another and all N at once, with
// the sending daemon's heap (RssAnon) before, during and after, and after each new peer. The
// helper role fanout (this program started again) holds the clients.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <xxhash.h>

#include "bench.hpp"
#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "cafshm/settings.hpp"
#include "memory_probe.hpp"
#include "processes.hpp"

namespace bench {

using clock_type = std::chrono::steady_clock;

namespace {

std::string arg(const std::map<std::string, std::string>& args, const std::string& k,
                const std::string& def = {}) {
  auto i = args.find(k);
  return i == args.end() ? def : i->second;
}

cafshm::endpoint endpoint_of(const std::string& text) {
  auto c = text.rfind(':');
  return cafshm::endpoint{text.substr(0, c),
                          static_cast<uint16_t>(std::stoi(text.substr(c + 1)))};
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> v;
  std::istringstream in{text};
  std::string item;
  while (std::getline(in, item, sep))
    if (!item.empty())
      v.push_back(item);
  return v;
}

template <class T>
std::string join(const std::vector<T>& v) {
  std::ostringstream o;
  for (size_t i = 0; i < v.size(); ++i)
    o << (i ? "," : "") << v[i];
  return o.str();
}

// What one pass of the helper did.
struct pass_result {
  double wall_us = 0;
  std::vector<double> us;        // each transmit that succeeded
  std::vector<uint64_t> anon_kib; // in turn: A's RssAnon after each transmit
  uint64_t failed = 0;
  uint64_t verified = 0;         // copies whose XXH3 at the receiver equals the source's
  std::string first_error;
};

// The clients of the fanout helper: "fsrc" at A with one block, "fsink" at every receiver.
class fanout_clients {
public:
  fanout_clients(caf::actor_system& sys, const std::map<std::string, std::string>& args)
    : pid_a_(static_cast<pid_t>(std::stol(arg(args, "--pid-a", "0")))) {
    cafshm::client_options co;
    co.timeout = std::chrono::seconds(60);
    auto src = cafshm::client::connect(sys, endpoint_of(arg(args, "--engine-a")), "fsrc", co);
    if (!src) {
      error_ = "register at A: " + cafshm::describe(src.error());
      return;
    }
    src_.emplace(std::move(*src));
    for (const auto& s : split(arg(args, "--sinks"), ',')) {
      auto c = cafshm::client::connect(sys, endpoint_of(s), "fsink", co);
      if (!c) {
        error_ = "register at " + s + ": " + cafshm::describe(c.error());
        return;
      }
      sinks_.push_back(std::move(*c));
      peers_.push_back(s);
    }
  }
  ~fanout_clients() {
    if (view_)
      (void) src_->unmap(std::move(*view_));
    if (ref_.valid())
      (void) src_->free(ref_);
  }
  fanout_clients(const fanout_clients&) = delete;
  fanout_clients& operator=(const fanout_clients&) = delete;

  const std::string& error() const noexcept { return error_; }

  /// A block of `size` bytes at A, filled with a pattern; replaces the one before.
  std::string make_block(uint64_t size) {
    if (view_)
      (void) src_->unmap(std::move(*view_));
    view_.reset();
    if (ref_.valid())
      (void) src_->free(ref_);
    ref_ = {};
    auto ref = src_->allocate(size);
    if (!ref)
      return "allocate " + cafshm::describe(ref.error());
    ref_ = *ref;
    auto view = src_->map(ref_, cafshm::access_mode::read_write);
    if (!view)
      return "map " + cafshm::describe(view.error());
    view_.emplace(std::move(*view));
    auto* p = reinterpret_cast<char*>(view_->data());
    fill_pattern(p, size, size);
    hash_ = XXH3_64bits(p, size);
    return {};
  }

  /// Transmits the block to every receiver one after another; after each, once A counts no
  /// transfer in progress, reads A's RssAnon. The copies are verified and freed afterwards.
  pass_result in_turn() {
    pass_result out;
    std::vector<std::optional<cafshm::block_ref>> copies(sinks_.size());
    for (size_t i = 0; i < sinks_.size(); ++i) {
      auto t0 = clock_type::now();
      auto r = send_to(i);
      auto us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
      out.wall_us += us;
      if (r) {
        out.us.push_back(us);
        copies[i] = r->remote;
      } else {
        note_failure(out, i, r.error());
      }
      wait_sender_idle(out);
      out.anon_kib.push_back(pid_a_ > 0 ? status_kib(pid_a_, "RssAnon") : 0);
    }
    verify(out, copies);
    return out;
  }

  /// Transmits the block to all receivers at once, one thread each, released together.
  pass_result all_at_once() {
    pass_result out;
    std::vector<std::optional<cafshm::block_ref>> copies(sinks_.size());
    std::vector<std::optional<caf::error>> errors(sinks_.size());
    std::vector<double> us(sinks_.size(), 0);
    std::mutex mtx;
    std::condition_variable cv;
    bool go = false;
    size_t waiting = 0;
    std::vector<std::thread> threads;
    for (size_t i = 0; i < sinks_.size(); ++i)
      threads.emplace_back([&, i] {
        {
          std::unique_lock<std::mutex> guard{mtx};
          ++waiting;
          cv.notify_all();
          cv.wait(guard, [&] { return go; });
        }
        auto t0 = clock_type::now();
        auto r = send_to(i);
        us[i] = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
        if (r)
          copies[i] = r->remote;
        else
          errors[i] = r.error();
      });
    clock_type::time_point t0;
    {
      std::unique_lock<std::mutex> guard{mtx};
      cv.wait(guard, [&] { return waiting == sinks_.size(); });
      go = true;
      t0 = clock_type::now();
    }
    cv.notify_all();
    for (auto& t : threads)
      t.join();
    out.wall_us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
    for (size_t i = 0; i < sinks_.size(); ++i) {
      if (errors[i])
        note_failure(out, i, *errors[i]);
      else
        out.us.push_back(us[i]);
    }
    wait_sender_idle(out);
    verify(out, copies);
    return out;
  }

private:
  caf::expected<cafshm::transmit_receipt> send_to(size_t i) {
    cafshm::transmit_target target;
    target.process = "fsink";
    return src_->transmit(ref_, peers_[i], target);
  }

  void note_failure(pass_result& out, size_t i, const caf::error& e) {
    ++out.failed;
    if (out.first_error.empty())
      out.first_error = "to " + peers_[i] + ": " + cafshm::describe(e);
  }

  // Until A's statistics show no outgoing transfer (its data threads done), at most 10 s; past
  // that the pass says so (the heap figures then include a transfer still ending).
  void wait_sender_idle(pass_result& out) {
    auto deadline = clock_type::now() + std::chrono::seconds(10);
    while (clock_type::now() < deadline) {
      auto st = src_->stats();
      if (st && st->transmits_out == 0)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (out.first_error.empty())
      out.first_error = "A still counted a transfer 10 s after the transmits returned";
  }

  // XXH3 of each copy at its receiver, read in place, against the source's; frees the copies.
  void verify(pass_result& out, std::vector<std::optional<cafshm::block_ref>>& copies) {
    for (size_t i = 0; i < copies.size(); ++i) {
      if (!copies[i])
        continue;
      auto& sink = sinks_[i];
      auto view = sink.map(*copies[i], cafshm::access_mode::read);
      if (view) {
        if (XXH3_64bits(view->data(), view->size()) == hash_)
          ++out.verified;
        else if (out.first_error.empty())
          out.first_error = "the copy at " + peers_[i] + " differs";
        (void) sink.unmap(std::move(*view));
      } else if (out.first_error.empty()) {
        out.first_error = "map at " + peers_[i] + ": " + cafshm::describe(view.error());
      }
      (void) sink.free(*copies[i]);
    }
  }

  pid_t pid_a_;
  std::optional<cafshm::client> src_;
  std::vector<cafshm::client> sinks_;
  std::vector<std::string> peers_;
  cafshm::block_ref ref_{};
  std::optional<cafshm::block_view> view_;
  uint64_t hash_ = 0;
  std::string error_;
};

// "result wall_us=W us=... anon_kib=... failed=F verified=V first_error=TEXT"
void print_pass(const pass_result& r) {
  std::cout << "result wall_us=" << r.wall_us << " us=" << join(r.us)
            << " anon_kib=" << join(r.anon_kib) << " failed=" << r.failed
            << " verified=" << r.verified << " first_error=" << r.first_error << std::endl;
}

pass_result parse_pass(const std::string& line) {
  pass_result r;
  auto rest = line.substr(std::string{"result "}.size());
  auto err = rest.find(" first_error=");
  if (err != std::string::npos) {
    r.first_error = rest.substr(err + 13);
    rest = rest.substr(0, err);
  }
  std::istringstream in{rest};
  std::string field;
  while (in >> field) {
    auto eq = field.find('=');
    auto key = field.substr(0, eq);
    auto value = field.substr(eq + 1);
    if (key == "wall_us")
      r.wall_us = std::stod(value);
    else if (key == "us")
      for (const auto& x : split(value, ','))
        r.us.push_back(std::stod(x));
    else if (key == "anon_kib")
      for (const auto& x : split(value, ','))
        r.anon_kib.push_back(std::stoull(x));
    else if (key == "failed")
      r.failed = std::stoull(value);
    else if (key == "verified")
      r.verified = std::stoull(value);
  }
  return r;
}

} // namespace

// Registers "fsrc" at --engine-a and "fsink" at each of --sinks (host:port,...), transmits go to
// those addresses; --pid-a is A's process (its RssAnon is read after each transmit in turn).
// Commands on stdin:
//   block SIZE   allocate SIZE at A and fill it; prints "ok" or "error ..."
//   turn         transmit to every receiver in turn; prints a result line (print_pass)
//   all          transmit to every receiver at once, one thread each; the same result line
int role_fanout(const std::map<std::string, std::string>& args) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cfg.set("middleman.attach-utility-actors", true); // see client::connect
  cafshm::settings s;
  s.role = cafshm::role::client;
  cafshm::module::configure(cfg, s);
  caf::actor_system sys{cfg};
  fanout_clients clients{sys, args};
  if (!clients.error().empty()) {
    std::cout << "error " << clients.error() << std::endl;
    return 1;
  }
  std::cout << "ready" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd;
    uint64_t size = 0;
    in >> cmd >> size;
    if (cmd == "block") {
      auto e = clients.make_block(size);
      std::cout << (e.empty() ? std::string{"ok"} : "error " + e) << std::endl;
    } else if (cmd == "turn") {
      print_pass(clients.in_turn());
    } else if (cmd == "all") {
      print_pass(clients.all_at_once());
    } else {
      break;
    }
  }
  return 0;
}

namespace {

std::string fanout_yaml(uint64_t chunk, uint32_t window) {
  // All engines on loopback: unauthenticated peers, dialing 127.0.0.1 allowed.
  return "remote:\n  chunk: " + human_size(chunk) + "\n  window: " + std::to_string(window)
         + "\n  cache: 0B\n  unauthenticated_peers: true\n  allow_dial: [127.0.0.1]\n";
}

double mib(uint64_t kib) {
  return static_cast<double>(kib) / 1024.0;
}

// `reps` passes of `cmd` ("turn" or "all") through the helper, with A's heap around them.
fanout_case run_case(const std::string& mode, const std::string& cmd, int reps,
                     daemon_process& a, child_process& helper, uint64_t size, size_t peers,
                     std::vector<double>* anon_after_peer) {
  fanout_case out;
  out.mode = mode;
  out.anon_before_mib = mib(status_kib(a.pid(), "RssAnon"));
  reset_peak_rss(a.pid());
  rss_sampler sampler{{a.pid()}};
  std::vector<double> walls, us;
  for (int r = 0; r < reps; ++r) {
    helper.write_line(cmd);
    auto line = helper.read_line(std::chrono::seconds(900));
    if (!line || line->rfind("result ", 0) != 0) {
      out.error = line ? *line : "no answer from the fanout helper";
      break;
    }
    auto p = parse_pass(*line);
    walls.push_back(p.wall_us / 1e6);
    for (auto t : p.us)
      us.push_back(t / 1e6);
    out.transmits += peers;
    out.failed += p.failed;
    out.verified += p.verified;
    if (out.error.empty() && !p.first_error.empty())
      out.error = p.first_error;
    if (anon_after_peer && r == 0)
      for (auto k : p.anon_kib)
        anon_after_peer->push_back(mib(k));
  }
  auto peaks = sampler.stop();
  out.anon_peak_mib = mib(peaks[0]);
  out.anon_after_mib = mib(status_kib(a.pid(), "RssAnon"));
  out.hwm_mib = mib(status_kib(a.pid(), "VmHWM"));
  out.wall_s = summarize(walls);
  out.xmit_s = summarize(us);
  out.gbps = out.wall_s.median > 0
               ? static_cast<double>(peers * size) / out.wall_s.median / 1e9
               : 0;
  return out;
}

} // namespace

fanout_report run_fanout(const options& opts) {
  fanout_report rep;
  cafshm::remote_settings defaults;
  rep.chunk = defaults.chunk_bytes;
  rep.window = defaults.window_chunks;
  rep.size = opts.quick ? 32ull << 20 : 64ull << 20;
  rep.reps = opts.quick ? 2 : 5;
  std::vector<size_t> counts = opts.quick ? std::vector<size_t>{2, 4, 8}
                                          : std::vector<size_t>{2, 4, 8, 16};
  // The smallest arena that holds the block: the block itself.
  const std::string arena = human_size(rep.size);
  const auto yaml = fanout_yaml(rep.chunk, rep.window);
  for (auto n : counts) {
    std::cerr << "bench: fanout: " << n << " receivers\n";
    fanout_row row;
    row.peers = n;
    daemon_process a{unique_name("cafshm-bench-fa"), engine_options(opts.bin_dir, arena, yaml)};
    std::vector<std::unique_ptr<daemon_process>> sinks;
    bool started = a.ready();
    for (size_t i = 0; i < n && started; ++i) {
      sinks.push_back(std::make_unique<daemon_process>(unique_name("cafshm-bench-fb"),
                                                       engine_options(opts.bin_dir, arena, yaml)));
      started = sinks.back()->ready();
    }
    if (!started) {
      row.error = "cafshmd did not start";
      rep.rows.push_back(row);
      continue;
    }
    std::string addresses;
    for (const auto& s : sinks)
      addresses += (addresses.empty() ? "" : ",") + s->address_text();
    child_process helper{{opts.self, "--role", "fanout", "--engine-a", a.address_text(),
                          "--sinks", addresses, "--pid-a", std::to_string(a.pid())}};
    auto ready = helper.read_line(std::chrono::seconds(60));
    if (!ready || *ready != "ready") {
      row.error = "the fanout helper did not start: " + ready.value_or("no answer");
      rep.rows.push_back(row);
      continue;
    }
    helper.write_line("block " + std::to_string(rep.size));
    auto made = helper.read_line(std::chrono::seconds(60));
    if (!made || *made != "ok") {
      row.error = "block at A: " + made.value_or("no answer");
      rep.rows.push_back(row);
      continue;
    }
    row.anon_start_mib = mib(status_kib(a.pid(), "RssAnon"));
    row.cases.push_back(run_case("in turn, new peers", "turn", 1, a, helper, rep.size, n,
                                 &row.anon_after_peer_mib));
    row.cases.push_back(run_case("in turn", "turn", rep.reps, a, helper, rep.size, n, nullptr));
    row.cases.push_back(run_case("all at once", "all", rep.reps, a, helper, rep.size, n, nullptr));
    helper.close_stdin();
    helper.wait(std::chrono::seconds(30));
    rep.rows.push_back(row);
  }
  return rep;
}

} // namespace bench
