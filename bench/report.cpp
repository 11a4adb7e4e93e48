// Writes bench/results/latest.json, latest.md and the data files of the plots (*.dat; bench.sh
// turns them into PNGs with gnuplot).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench.hpp"

namespace bench {

namespace {

constexpr uint64_t mib_bytes = uint64_t{1} << 20;
constexpr uint64_t gib_bytes = mib_bytes << 10;

// Three significant digits, no exponent for ordinary values.

std::string num(double x) {
  if (!std::isfinite(x))
    return "null";
  char buf[64];
  double a = std::fabs(x);
  if (a == 0)
    return "0";
  if (a >= 1000)
    std::snprintf(buf, sizeof(buf), "%.0f", x);
  else if (a >= 100)
    std::snprintf(buf, sizeof(buf), "%.1f", x);
  else if (a >= 10)
    std::snprintf(buf, sizeof(buf), "%.2f", x);
  else if (a >= 1)
    std::snprintf(buf, sizeof(buf), "%.3f", x);
  else
    std::snprintf(buf, sizeof(buf), "%.3g", x);
  return buf;
}

std::string big(double x) { // 12.3 M, 456 k
  if (x >= 1e6)
    return num(x / 1e6) + " M";
  if (x >= 1e3)
    return num(x / 1e3) + " k";
  return num(x);
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string ratio(double a, double b) {
  if (b <= 0 || a <= 0)
    return "–";
  return num(a / b) + "×";
}

std::string mark(bool ok) {
  return ok ? "**met**" : "**missed**";
}

std::string spread(const stat& s) {
  if (s.empty())
    return "–";
  return num(s.median) + " (" + num(s.min) + "–" + num(s.max) + ")";
}

std::string lat(const stat& s) {
  if (s.empty())
    return "–";
  return num(s.median) + " / " + num(s.p99);
}

std::string rss(const rss_figures& f) {
  return num(f.hwm_mib) + " / " + num(f.anon_peak_mib);
}

// JSON object writer with comma handling.
class json {
public:
  explicit json(std::ostream& out) : out_(out) {}
  json& open(const std::string& key = {}, char c = '{') {
    sep();
    if (!key.empty())
      out_ << quote(key) << ": ";
    out_ << c;
    first_ = true;
    return *this;
  }
  json& close(char c = '}') {
    out_ << c;
    first_ = false;
    return *this;
  }
  json& kv(const std::string& k, double v) {
    sep();
    out_ << quote(k) << ": " << (std::isfinite(v) ? num_exact(v) : "null");
    return *this;
  }
  json& kv(const std::string& k, uint64_t v) {
    sep();
    out_ << quote(k) << ": " << v;
    return *this;
  }
  json& kv(const std::string& k, int v) {
    sep();
    out_ << quote(k) << ": " << v;
    return *this;
  }
  json& kv(const std::string& k, const std::string& v) {
    sep();
    out_ << quote(k) << ": " << quote(v);
    return *this;
  }
  json& kv(const std::string& k, const char* v) { return kv(k, std::string{v}); }
  /// An element of an array.
  json& kv_value(double v) {
    sep();
    out_ << (std::isfinite(v) ? num_exact(v) : "null");
    return *this;
  }
  json& kv(const std::string& k, bool v) {
    sep();
    out_ << quote(k) << ": " << (v ? "true" : "false");
    return *this;
  }
  json& st(const std::string& prefix, const stat& s, bool latency) {
    kv(prefix + "median", s.median);
    if (latency)
      kv(prefix + "p99", s.p99);
    kv(prefix + "min", s.min);
    kv(prefix + "max", s.max);
    kv(prefix + "n", static_cast<uint64_t>(s.n));
    return *this;
  }

private:
  static std::string num_exact(double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
  }
  void sep() {
    if (!first_)
      out_ << ",\n";
    first_ = false;
  }
  std::ostream& out_;
  bool first_ = true;
};

const handoff_row* handoff_at(const handoff_report& h, uint64_t size) {
  for (const auto& r : h.rows)
    if (r.size == size)
      return &r;
  return nullptr;
}

const iceoryx_row* iceoryx_at(const handoff_report& h, uint64_t size) {
  for (const auto& r : h.iceoryx.rows)
    if (r.size == size)
      return &r;
  return nullptr;
}

double over(const stat& a, double b) {
  return !a.empty() && b > 0 ? a.median / b : 0;
}

// The worst size of a fast-path hand-off column against a baseline of the same size; 0 (no
// figure, not met) when any size lacks the column or the baseline.
double worst_over(const handoff_report& h, stat handoff_row::*column, bool iceoryx,
                  stat iceoryx_row::*baseline) {
  double worst = 0;
  for (const auto& x : h.rows) {
    double b = x.shm.median;
    if (iceoryx) {
      const auto* i = iceoryx_at(h, x.size);
      b = i ? (i->*baseline).median : 0;
    }
    double q = over(x.*column, b);
    if (q == 0)
      return 0;
    worst = std::max(worst, q);
  }
  return worst;
}

const remote_row* remote_at(const remote_report& r, uint64_t size) {
  for (const auto& x : r.rows)
    if (x.size == size)
      return &x;
  return nullptr;
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

} // namespace

void write_outputs(const report& r) {
  namespace fs = std::filesystem;
  fs::create_directories(r.opts.out_dir);
  const auto dir = fs::path{r.opts.out_dir};
  // A run of some rows only says which, and shows only their sections and targets: its mode is
  // "partial" (quick or not), else "quick" or "full".
  const auto& o = r.opts;
  std::string rows_text;
  bool all_rows = true;
  for (const char* row :
       {"handoff", "pipeline", "alloc", "remote", "scale", "inbox", "growth", "fanout"}) {
    if (o.has(row))
      rows_text += (rows_text.empty() ? "" : ",") + std::string{row};
    else
      all_rows = false;
  }
  const std::string mode = !all_rows ? "partial" : o.quick ? "quick" : "full";
  const std::string date = now_text();
  const auto& h = r.handoff;
  const auto* h64 = handoff_at(h, 64);
  const auto* h16 = handoff_at(h, 16u << 20);
  const auto* h64m = handoff_at(h, 64u << 20);
  double flat = h64 && h16 ? h16->shm.median / h64->shm.median : 0;
  double x16 = h16 ? h16->caf.median / h16->shm.median : 0;
  double x64 = h64m ? h64m->caf.median / h64m->shm.median : 0;
  // Without a pool: no slower than plain CAF at 64 B, ≥ 50× faster at 16 MiB.
  double nopool_64 = h64 && h64->caf.median > 0 ? h64->shm_engine.median / h64->caf.median : 0;
  double nopool_x16 = h16 && h16->shm_engine.median > 0 ? h16->caf.median / h16->shm_engine.median
                                                         : 0;
  // The library pool against the hand-made one: the worst size.
  double library_worst = 0;
  for (const auto& x : h.rows)
    if (x.shm.median > 0 && !x.shm_library.empty())
      library_worst = std::max(library_worst, x.shm_library.median / x.shm.median);
  // The local fast path's hand-off targets (worst size): parking ≤ 1/5 of BASP and ≤ 1.5×
  // iceoryx WaitSet, spinning ≤ 3× iceoryx polling.
  double park_over_basp = worst_over(h, &handoff_row::fast_park, false, nullptr);
  double park_over_waitset = worst_over(h, &handoff_row::fast_park, true, &iceoryx_row::waitset);
  double spin_over_polling = worst_over(h, &handoff_row::fast_spin, true, &iceoryx_row::polling);
  double direct_rate = 0;
  for (const auto& a : r.alloc.rates)
    if (a.name.rfind("tlsf", 0) == 0)
      direct_rate = a.pairs_per_s.median;
  const auto* r64 = remote_at(r.remote, 64ull << 20);
  double xmit_share = r64 && r64->tcp_gbps.median > 0 ? r64->xmit_gbps.median / r64->tcp_gbps.median : 0;
  double window_mib = static_cast<double>(r.remote.chunk * r.remote.window) / (1 << 20);
  // With remote.tls: transmit against the raw TLS pair at every size measured; the target holds
  // if the worst size reaches it.
  double tls_share_worst = r.remote.tls.empty() ? 0 : 1e300;
  for (const auto& x : r.remote.tls)
    tls_share_worst = std::min(tls_share_worst, x.pair_gbps.median > 0 && !x.xmit_gbps.empty()
                                                  ? x.xmit_gbps.median / x.pair_gbps.median
                                                  : 0.0);
  const auto& rq = r.remote.requests;
  double rtt_median_ratio = rq.idle_us.median > 0 && !rq.during_us.empty()
                              ? rq.during_us.median / rq.idle_us.median
                              : 0;
  double rtt_p99_ratio = rq.idle_us.p99 > 0 && !rq.during_us.empty()
                           ? rq.during_us.p99 / rq.idle_us.p99
                           : 0;
  // fragmentation: at every fill the tlsf ratio >= Boost's, no more failures than Boost, and
  // occupied / requested <= 1.02 for requests >= 64 KiB
  bool frag_ok = !r.alloc.frag.empty();
  for (size_t i = 0; i + 1 < r.alloc.frag.size(); i += 2)
    frag_ok = frag_ok && r.alloc.frag[i].mean_ratio >= r.alloc.frag[i + 1].mean_ratio
              && r.alloc.frag[i].failed <= r.alloc.frag[i + 1].failed
              && r.alloc.frag[i].occupied_per_requested <= 1.02;
  double max_anon = 0;
  for (const auto& x : r.remote.rows)
    max_anon = std::max({max_anon, x.daemon_a.anon_peak_mib, x.daemon_b.anon_peak_mib});

  // -- JSON --------------------------------------------------------------------------------------
  {
    std::ofstream out{dir / "latest.json"};
    json j{out};
    j.open();
    j.kv("mode", mode).kv("quick", o.quick).kv("rows", rows_text);
    j.kv("date", date).kv("total_seconds", r.total_seconds);
    j.open("machine");
    for (const auto& [k, v] : r.machine)
      j.kv(k, v);
    j.close();
    j.open("handoff", '[');
    for (const auto& x : h.rows) {
      j.open();
      j.kv("size", x.size)
        .kv("cafshm_rtt_us", x.shm.median)
        .kv("caf_rtt_us", x.caf.median)
        .kv("memcpy_us", x.memcpy_us.median)
        .kv("cafshm_p99_us", x.shm.p99)
        .kv("caf_p99_us", x.caf.p99)
        .kv("cafshm_checksum_rtt_us", x.shm_sum.median)
        .kv("cafshm_checksum_p99_us", x.shm_sum.p99)
        .kv("cafshm_write_rtt_us", x.shm_fill.median)
        .kv("cafshm_write_p99_us", x.shm_fill.p99)
        .kv("cafshm_library_pool_rtt_us", x.shm_library.median)
        .kv("cafshm_library_pool_p99_us", x.shm_library.p99)
        .kv("library_over_handmade", x.shm.median > 0 ? x.shm_library.median / x.shm.median : 0.0)
        .kv("cafshm_notify_rtt_us", x.shm_notify.median)
        .kv("cafshm_notify_p99_us", x.shm_notify.p99)
        .kv("cafshm_nopool_rtt_us", x.shm_engine.median)
        .kv("cafshm_nopool_p99_us", x.shm_engine.p99)
        .kv("memcpy_p99_us", x.memcpy_us.p99)
        .kv("fast_thread_rtt_us", x.fast_thread.median)
        .kv("fast_thread_p99_us", x.fast_thread.p99)
        .kv("fast_park_rtt_us", x.fast_park.median)
        .kv("fast_park_p99_us", x.fast_park.p99)
        .kv("fast_spin_rtt_us", x.fast_spin.median)
        .kv("fast_spin_p99_us", x.fast_spin.p99)
        .kv("fast_thread_over_basp", over(x.fast_thread, x.shm.median))
        .kv("fast_park_over_basp", over(x.fast_park, x.shm.median))
        .kv("fast_spin_over_basp", over(x.fast_spin, x.shm.median))
        .kv("caf_over_cafshm", x.shm.median > 0 ? x.caf.median / x.shm.median : 0.0)
        .kv("samples_cafshm", static_cast<uint64_t>(x.shm.n))
        .kv("samples_caf", static_cast<uint64_t>(x.caf.n));
      j.close();
    }
    j.close(']');
    j.open("handoff_iceoryx", '[');
    for (const auto& x : h.iceoryx.rows) {
      const auto* c = handoff_at(h, x.size);
      j.open();
      j.kv("size", x.size)
        .kv("polling_rtt_us", x.polling.median)
        .kv("polling_p99_us", x.polling.p99)
        .kv("waitset_rtt_us", x.waitset.median)
        .kv("waitset_p99_us", x.waitset.p99)
        .kv("cafshm_over_waitset",
            c && x.waitset.median > 0 ? c->shm.median / x.waitset.median : 0.0)
        .kv("cafshm_over_polling",
            c && x.polling.median > 0 ? c->shm.median / x.polling.median : 0.0);
      if (c)
        for (auto [name, column] : {std::pair{"fast_thread", &handoff_row::fast_thread},
                                    std::pair{"fast_park", &handoff_row::fast_park},
                                    std::pair{"fast_spin", &handoff_row::fast_spin}})
          j.kv(std::string{name} + "_over_waitset", over(c->*column, x.waitset.median))
            .kv(std::string{name} + "_over_polling", over(c->*column, x.polling.median));
      j.close();
    }
    j.close(']');
    if (!h.iceoryx.error.empty())
      j.kv("handoff_iceoryx_error", h.iceoryx.error);
    j.kv("handoff_nopool_path", h.nopool_path);
    j.open("handoff_fast");
    j.kv("spin_us", static_cast<uint64_t>(h.fast_spin_us));
    j.open("columns", '[');
    for (const auto& c : h.fast) {
      j.open();
      j.kv("name", c.name)
        .kv("scheduler", c.scheduler)
        .kv("verified", c.verified)
        .kv("round_trips", c.round_trips)
        .kv("records_sent", c.records_sent)
        .kv("records_delivered", c.records_delivered);
      if (!c.error.empty())
        j.kv("error", c.error);
      j.close();
    }
    j.close(']');
    j.close();
    j.open("handoff_scheduler");
    j.kv("chosen", h.chosen.text());
    j.open("trials", '[');
    for (const auto& t : h.trials) {
      j.open();
      j.kv("scheduler", t.s.text())
        .kv("cafshm_64B_rtt_us", t.shm.median)
        .kv("cafshm_64B_p99_us", t.shm.p99)
        .kv("caf_64B_rtt_us", t.caf.median)
        .kv("caf_64B_p99_us", t.caf.p99)
        .kv("caf_1MiB_rtt_us", t.caf_1m.median);
      j.close();
    }
    j.close(']');
    if (!h.error.empty())
      j.kv("error", h.error);
    j.close();
    j.open("pipeline", '[');
    for (const auto& p : r.pipeline) {
      j.open();
      j.kv("transport", p.transport)
        .kv("width", static_cast<uint64_t>(p.width))
        .kv("height", static_cast<uint64_t>(p.height))
        .kv("frame_bytes", p.frame_bytes)
        .kv("frames", static_cast<uint64_t>(p.frames))
        .kv("runs", static_cast<uint64_t>(p.fps.n))
        .kv("fps", p.fps.median)
        .kv("fps_min", p.fps.min)
        .kv("fps_max", p.fps.max)
        .kv("GBps", p.gbps.median)
        .kv("GBps_min", p.gbps.min)
        .kv("GBps_max", p.gbps.max);
      if (!p.error.empty())
        j.kv("error", p.error);
      j.close();
    }
    j.close(']');
    j.open("alloc");
    j.kv("workload", r.alloc.workload);
    j.open("request_rtt", '[');
    for (const auto& q : r.alloc.request_rtts) {
      j.open();
      j.kv("engine", q.engine).kv("rtt_us", q.us.median).kv("p99_us", q.us.p99);
      j.close();
    }
    j.close(']');
    j.open("rates", '[');
    for (const auto& a : r.alloc.rates) {
      j.open();
      j.kv("allocator", a.name).kv("note", a.note);
      j.kv("pairs_per_s", a.pairs_per_s.median)
        .kv("pairs_per_s_min", a.pairs_per_s.min)
        .kv("pairs_per_s_max", a.pairs_per_s.max)
        .kv("runs", static_cast<uint64_t>(a.pairs_per_s.n));
      j.close();
    }
    j.close(']');
    j.kv("fragmentation_workload", r.alloc.frag_workload);
    j.open("fragmentation", '[');
    for (const auto& f : r.alloc.frag) {
      j.open();
      j.kv("allocator", f.allocator)
        .kv("fill_target", f.fill)
        .kv("arena_bytes", f.arena)
        .kv("free_bytes", f.free_bytes)
        .kv("largest_free_bytes", f.largest_free)
        .kv("largest_over_free", f.ratio)
        .kv("largest_over_free_mean", f.mean_ratio)
        .kv("largest_over_free_min", f.min_ratio)
        .kv("ops", f.ops)
        .kv("failed_allocations", f.failed)
        .kv("live_requested_fraction", f.live_requested)
        .kv("occupied_per_requested_64KiB_up", f.occupied_per_requested);
      j.close();
    }
    j.close(']');
    if (!r.alloc.error.empty())
      j.kv("error", r.alloc.error);
    j.close();
    j.open("remote");
    j.kv("chunk_bytes", r.remote.chunk).kv("window_chunks", static_cast<uint64_t>(r.remote.window));
    j.open("rows", '[');
    for (const auto& x : r.remote.rows) {
      j.open();
      j.kv("size", x.size)
        .kv("cafshm_GBps", x.xmit_gbps.median)
        .kv("cafshm_GBps_min", x.xmit_gbps.min)
        .kv("cafshm_GBps_max", x.xmit_gbps.max)
        .kv("tcp_GBps", x.tcp_gbps.median)
        .kv("tcp_GBps_min", x.tcp_gbps.min)
        .kv("tcp_GBps_max", x.tcp_gbps.max)
        .kv("caf_GBps", x.caf_gbps.median)
        .kv("caf_GBps_min", x.caf_gbps.min)
        .kv("caf_GBps_max", x.caf_gbps.max)
        .kv("cafshm_over_tcp", x.tcp_gbps.median > 0 ? x.xmit_gbps.median / x.tcp_gbps.median : 0.0)
        .kv("reps", static_cast<uint64_t>(x.xmit_gbps.n));
      auto rs = [&](const std::string& k, const rss_figures& f) {
        j.kv(k + "_hwm_mib", f.hwm_mib);
        j.kv(k + "_anon_peak_mib", f.anon_peak_mib);
      };
      rs("daemon_a", x.daemon_a);
      rs("daemon_b", x.daemon_b);
      rs("cafshm_client", x.xmit_client);
      j.kv("tcp_source_hwm_mib", x.tcp_source.hwm_mib).kv("tcp_sink_hwm_mib", x.tcp_sink.hwm_mib);
      j.kv("caf_source_hwm_mib", x.caf_source.hwm_mib).kv("caf_sink_hwm_mib", x.caf_sink.hwm_mib);
      if (!x.error.empty())
        j.kv("error", x.error);
      j.close();
    }
    j.close(']');
    j.kv("sweep_size", r.remote.sweep_size);
    j.open("sweep", '[');
    for (const auto& s : r.remote.sweep) {
      j.open();
      j.kv("chunk_bytes", s.chunk)
        .kv("window_chunks", static_cast<uint64_t>(s.window))
        .kv("cache_bytes", s.cache)
        .kv("GBps", s.gbps.median)
        .kv("GBps_min", s.gbps.min)
        .kv("GBps_max", s.gbps.max)
        .kv("daemon_a_anon_peak_mib", s.daemon_a.anon_peak_mib)
        .kv("daemon_b_anon_peak_mib", s.daemon_b.anon_peak_mib);
      if (!s.error.empty())
        j.kv("error", s.error);
      j.close();
    }
    j.close(']');
    j.open("tls", '[');
    for (const auto& x : r.remote.tls) {
      j.open();
      j.kv("size", x.size)
        .kv("cafshm_tls_GBps", x.xmit_gbps.median)
        .kv("cafshm_tls_GBps_min", x.xmit_gbps.min)
        .kv("cafshm_tls_GBps_max", x.xmit_gbps.max)
        .kv("tls_pair_GBps", x.pair_gbps.median)
        .kv("tls_pair_GBps_min", x.pair_gbps.min)
        .kv("tls_pair_GBps_max", x.pair_gbps.max)
        .kv("cafshm_tls_over_tls_pair",
            x.pair_gbps.median > 0 ? x.xmit_gbps.median / x.pair_gbps.median : 0.0);
      if (const auto* plain = remote_at(r.remote, x.size); plain && plain->tcp_gbps.median > 0)
        j.kv("cafshm_over_tcp", plain->xmit_gbps.median / plain->tcp_gbps.median);
      j.kv("reps", static_cast<uint64_t>(x.xmit_gbps.n));
      j.kv("daemon_a_hwm_mib", x.daemon_a.hwm_mib).kv("daemon_a_anon_peak_mib", x.daemon_a.anon_peak_mib);
      j.kv("daemon_b_hwm_mib", x.daemon_b.hwm_mib).kv("daemon_b_anon_peak_mib", x.daemon_b.anon_peak_mib);
      j.kv("tls_source_hwm_mib", x.pair_source.hwm_mib).kv("tls_sink_hwm_mib", x.pair_sink.hwm_mib);
      if (!x.error.empty())
        j.kv("error", x.error);
      j.close();
    }
    j.close(']');
    j.kv("tls_pair_cipher", r.remote.tls_cipher);
    if (!r.remote.tls_error.empty())
      j.kv("tls_error", r.remote.tls_error);
    j.open("requests_during_transfer");
    j.kv("request", "client::find_process").kv("transport", rq.transport).kv("size", rq.size);
    j.kv("transfers", static_cast<uint64_t>(rq.transfers));
    j.st("idle_us_", rq.idle_us, true).st("during_us_", rq.during_us, true);
    j.st("transfer_GBps_", rq.transfer_gbps, false);
    j.kv("during_over_idle_median", rtt_median_ratio).kv("during_over_idle_p99", rtt_p99_ratio);
    if (!rq.error.empty())
      j.kv("error", rq.error);
    j.close();
    j.open("cache_hits", '[');
    for (const auto& c : r.remote.cache) {
      j.open();
      j.kv("cache_hit", c.policy).kv("size", c.size);
      j.st("miss_ms_", c.miss_ms, true).st("hit_ms_", c.hit_ms, true);
      j.kv("miss_over_hit_median", c.hit_ms.median > 0 ? c.miss_ms.median / c.hit_ms.median : 0);
      if (!c.error.empty())
        j.kv("error", c.error);
      j.close();
    }
    j.close(']');
    if (!r.remote.error.empty())
      j.kv("error", r.remote.error);
    j.close();
    j.open("scale", '[');
    for (const auto& s : r.scale.rows) {
      j.open();
      j.kv("clients", s.clients)
        .kv("payload_bytes", r.scale.size)
        .kv("pool_rtt_us", s.pool_rtt.median)
        .kv("pool_p99_us", s.pool_rtt.p99)
        .kv("pool_round_trips_per_s", s.pool_rate)
        .kv("nopool_rtt_us", s.engine_rtt.median)
        .kv("nopool_p99_us", s.engine_rtt.p99)
        .kv("nopool_round_trips_per_s", s.engine_rate)
        .kv("alloc_pairs_per_s", s.alloc_rate)
        .kv("alloc_pairs_per_s_per_client_median", s.alloc_per_client.median);
      if (!s.error.empty())
        j.kv("error", s.error);
      j.close();
    }
    j.close(']');
    j.open("inbox");
    j.kv("record_bytes", static_cast<uint64_t>(r.inbox.record_bytes));
    if (h64)
      j.kv("basp_64B_rtt_us", h64->caf.median).kv("basp_64B_p99_us", h64->caf.p99);
    j.open("rows", '[');
    for (const auto& x : r.inbox.rows) {
      j.open();
      j.kv("variant", x.variant)
        .kv("spin_us", static_cast<uint64_t>(std::labs(x.spin_us)))
        .kv("yield_while_spinning", x.spin_us < 0)
        .kv("rtt_us", x.rtt.median)
        .kv("p99_us", x.rtt.p99)
        .kv("samples", static_cast<uint64_t>(x.rtt.n));
      if (!x.error.empty())
        j.kv("error", x.error);
      j.close();
    }
    j.close(']');
    if (!r.inbox.iceoryx.rows.empty()) {
      const auto& iox = r.inbox.iceoryx.rows.front();
      j.kv("iceoryx_64B_polling_rtt_us", iox.polling.median)
        .kv("iceoryx_64B_polling_p99_us", iox.polling.p99)
        .kv("iceoryx_64B_waitset_rtt_us", iox.waitset.median)
        .kv("iceoryx_64B_waitset_p99_us", iox.waitset.p99);
    }
    if (!r.inbox.iceoryx.error.empty())
      j.kv("iceoryx_error", r.inbox.iceoryx.error);
    j.close();
    {
      const auto& g = r.growth;
      j.open("growth");
      j.kv("arena_bytes", g.arena)
        .kv("max_arena_bytes", g.max_arena)
        .kv("big_block_bytes", g.big_block)
        .kv("shm_free_bytes", g.shm_free)
        .kv("admin_bytes", g.admin_bytes)
        .kv("admin_share_of_max_arena",
            g.max_arena ? static_cast<double>(g.admin_bytes) / static_cast<double>(g.max_arena) : 0.0);
      j.st("add_big_ms_", g.add_big_ms, true)
        .st("remove_big_ms_", g.remove_big_ms, true)
        .st("add_step_ms_", g.add_step_ms, true)
        .st("remove_step_ms_", g.remove_step_ms, true)
        .st("plain_alloc_free_us_", g.plain_alloc_us, true)
        .st("engine_big_alloc_ms_", g.engine_big_alloc_ms, true)
        .st("engine_map_ms_", g.engine_map_ms, true)
        .kv("big_bytes_ok", g.big_bytes_ok)
        .kv("segments_with_big", static_cast<uint64_t>(g.segments_with_big))
        .kv("segments_after", static_cast<uint64_t>(g.segments_after))
        .kv("pipeline_frames", static_cast<uint64_t>(g.frames))
        .st("pipeline_fps_", g.fps, false)
        .kv("peak_used_arena_bytes", g.peak_arena)
        .kv("segments_added", static_cast<uint64_t>(g.segments_added));
      if (!g.scaled_note.empty())
        j.kv("scaled", g.scaled_note);
      if (!g.error.empty())
        j.kv("error", g.error);
      j.close();
    }
    {
      const auto& f = r.fanout;
      j.open("fanout");
      j.kv("size", f.size).kv("chunk_bytes", f.chunk)
        .kv("window_chunks", static_cast<uint64_t>(f.window))
        .kv("passes", f.reps);
      j.open("rows", '[');
      for (const auto& x : f.rows) {
        j.open();
        j.kv("peers", static_cast<uint64_t>(x.peers)).kv("sender_anon_start_mib", x.anon_start_mib);
        j.open("sender_anon_after_new_peer_mib", '[');
        for (auto v : x.anon_after_peer_mib) {
          j.kv_value(v);
        }
        j.close(']');
        j.open("cases", '[');
        for (const auto& c : x.cases) {
          j.open();
          j.kv("mode", c.mode)
            .st("wall_s_", c.wall_s, false)
            .kv("aggregate_GBps", c.gbps)
            .st("transmit_s_", c.xmit_s, false)
            .kv("transmits", c.transmits)
            .kv("failed", c.failed)
            .kv("verified", c.verified)
            .kv("sender_anon_before_mib", c.anon_before_mib)
            .kv("sender_anon_peak_mib", c.anon_peak_mib)
            .kv("sender_anon_after_mib", c.anon_after_mib)
            .kv("sender_hwm_mib", c.hwm_mib);
          if (!c.error.empty())
            j.kv("error", c.error);
          j.close();
        }
        j.close(']');
        if (!x.error.empty())
          j.kv("error", x.error);
        j.close();
      }
      j.close(']');
      j.close();
    }
    j.open("targets");
    j.kv("handoff_16MiB_over_64B", flat).kv("handoff_16MiB_over_64B_met", flat > 0 && flat <= 1.5);
    j.kv("library_pool_over_handmade_worst", library_worst)
      .kv("library_pool_over_handmade_worst_met", library_worst > 0 && library_worst <= 1.1);
    j.kv("caf_over_cafshm_16MiB", x16).kv("caf_over_cafshm_16MiB_met", x16 >= 20);
    j.kv("fast_park_over_basp_worst", park_over_basp)
      .kv("fast_park_over_basp_worst_met", park_over_basp > 0 && park_over_basp <= 0.2)
      .kv("fast_park_over_iceoryx_waitset_worst", park_over_waitset)
      .kv("fast_park_over_iceoryx_waitset_worst_met",
          park_over_waitset > 0 && park_over_waitset <= 1.5)
      .kv("fast_spin_over_iceoryx_polling_worst", spin_over_polling)
      .kv("fast_spin_over_iceoryx_polling_worst_met",
          spin_over_polling > 0 && spin_over_polling <= 3);
    j.kv("caf_over_cafshm_64MiB", x64).kv("caf_over_cafshm_64MiB_met", x64 >= 100);
    j.kv("remote_64MiB_share_of_tcp", xmit_share).kv("remote_64MiB_share_of_tcp_met", xmit_share >= 0.8);
    j.kv("remote_window_mib", window_mib).kv("remote_daemon_anon_peak_mib_max", max_anon);
    if (o.has("remote")) {
      j.kv("remote_tls_share_of_tls_pair_worst", tls_share_worst)
        .kv("remote_tls_share_of_tls_pair_worst_met", tls_share_worst >= 0.6);
      j.kv("request_during_transfer_over_idle_median", rtt_median_ratio)
        .kv("request_during_transfer_over_idle_median_met",
            rtt_median_ratio > 0 && rtt_median_ratio <= 2);
      j.kv("request_during_transfer_over_idle_p99", rtt_p99_ratio);
    }
    j.kv("direct_pairs_per_s", direct_rate).kv("direct_pairs_per_s_met", direct_rate >= 10e6);
    j.kv("fragmentation_no_worse_than_boost", frag_ok);
    if (r.growth.max_arena != 0) {
      double share = static_cast<double>(r.growth.admin_bytes) / static_cast<double>(r.growth.max_arena);
      j.kv("admin_share_of_max_arena", share).kv("admin_share_of_max_arena_met", share <= 0.005);
      j.kv("growth_serves_1GiB_block", r.growth.error.empty() && r.growth.big_block == gib_bytes
                                           && r.growth.big_bytes_ok);
    }
    j.close();
    j.close();
    out << "\n";
  }

  // -- data files for gnuplot ----------------------------------------------------------------------
  {
    std::ofstream out{dir / "handoff.dat"};
    out << "# size cafshm cafshm_checksum cafshm_write cafshm_nopool caf memcpy cafshm_library_pool"
           " cafshm_notify (median RTT, us)\n";
    for (const auto& x : h.rows)
      out << x.size << ' ' << x.shm.median << ' ' << x.shm_sum.median << ' ' << x.shm_fill.median
          << ' ' << x.shm_engine.median << ' ' << x.caf.median << ' ' << x.memcpy_us.median << ' '
          << x.shm_library.median << ' ' << x.shm_notify.median << "\n";
  }
  {
    std::ofstream out{dir / "pipeline.dat"};
    out << "# frame_bytes shm_GBps caf_GBps shm_min shm_max caf_min caf_max\n";
    for (const auto& p : r.pipeline) {
      if (p.transport != "shm")
        continue;
      for (const auto& q : r.pipeline)
        if (q.transport == "caf" && q.width == p.width && q.height == p.height)
          out << p.frame_bytes << ' ' << p.gbps.median << ' ' << q.gbps.median << ' ' << p.gbps.min
              << ' ' << p.gbps.max << ' ' << q.gbps.min << ' ' << q.gbps.max << "\n";
    }
  }
  {
    std::ofstream out{dir / "remote.dat"};
    out << "# size cafshm_GBps tcp_GBps caf_GBps (medians) then min max of each\n";
    for (const auto& x : r.remote.rows)
      out << x.size << ' ' << x.xmit_gbps.median << ' ' << x.tcp_gbps.median << ' '
          << x.caf_gbps.median << ' ' << x.xmit_gbps.min << ' ' << x.xmit_gbps.max << ' '
          << x.tcp_gbps.min << ' ' << x.tcp_gbps.max << ' ' << x.caf_gbps.min << ' '
          << x.caf_gbps.max << "\n";
  }

  // -- Markdown --------------------------------------------------------------------------------------
  std::ofstream md{dir / "latest.md"};
  md << "# cafshm benchmarks (" << mode << " run"
     << (all_rows ? "" : std::string{o.quick ? ", quick" : ""} + ", rows " + rows_text) << ")\n\n";
  md << "Written by `scripts/bench.sh" << (r.opts.quick ? " --quick" : "")
     << (all_rows ? "" : " --rows " + rows_text) << "` on " << date
     << " in " << static_cast<int>(r.total_seconds)
     << " s. Every figure is the median of repeated measurements; latencies also give p99, "
        "throughputs the spread (min–max over runs). Every ratio compares rows of this run.\n\n";
  md << "| machine | |\n|---|---|\n";
  // load_*: /proc/loadavg (1, 5, 15 min) — other work on the machine shows there.
  for (const char* k : {"cpu", "cores", "memory", "kernel", "os", "compiler", "build_type",
                        "cxx_flags", "caf", "load_at_start", "load_at_end"})
    if (auto i = r.machine.find(k); i != r.machine.end())
      md << "| " << k << " | " << i->second << " |\n";
  md << "\n## Targets\n\n| target | measured | |\n|---|---|---|\n";
  if (o.has("handoff")) {
    md << "| hand-off RTT(16 MiB) ≤ 1.5 × RTT(64 B) | " << num(flat) << "× | " << mark(flat > 0 && flat <= 1.5) << " |\n";
    md << "| library pool RTT ≤ 1.1 × hand-made pool RTT (worst size) | " << num(library_worst)
       << "× | " << mark(library_worst > 0 && library_worst <= 1.1) << " |\n";
    md << "| ≥ 20× faster than plain CAF at 16 MiB | " << num(x16) << "× | " << mark(x16 >= 20) << " |\n";
    md << "| ≥ 100× faster than plain CAF at 64 MiB | " << num(x64) << "× | " << mark(x64 >= 100) << " |\n";
    md << "| hand-off without a pool at 64 B no slower than plain CAF (÷ plain CAF) | "
       << num(nopool_64) << "× | " << mark(nopool_64 > 0 && nopool_64 <= 1) << " |\n";
    md << "| hand-off without a pool ≥ 50× faster than plain CAF at 16 MiB | " << num(nopool_x16)
       << "× | " << mark(nopool_x16 >= 50) << " |\n";
    md << "| pool hand-off over the fast path, polling scheduler parking at once, ≤ 1/5 of BASP "
          "(worst size) | "
       << num(park_over_basp) << "× | " << mark(park_over_basp > 0 && park_over_basp <= 0.2)
       << " |\n";
    md << "| the same ≤ 1.5× iceoryx WaitSet (worst size) | " << num(park_over_waitset) << "× | "
       << mark(park_over_waitset > 0 && park_over_waitset <= 1.5) << " |\n";
    md << "| pool hand-off over the fast path, polling scheduler spinning, ≤ 3× iceoryx polling "
          "(worst size) | "
       << num(spin_over_polling) << "× | "
       << mark(spin_over_polling > 0 && spin_over_polling <= 3) << " |\n";
  }
  if (o.has("remote")) {
    md << "| remote transmit ≥ 80 % of raw TCP at 64 MiB | " << num(100 * xmit_share) << " % | "
       << mark(xmit_share >= 0.8) << " |\n";
    md << "| daemon heap peak bounded by the window (" << num(window_mib) << " MiB) | max "
       << num(max_anon) << " MiB (" << num(window_mib > 0 ? max_anon / window_mib : 0)
       << "× the window) | see §4 |\n";
    std::string shares;
    for (const auto& x : r.remote.tls)
      shares += (shares.empty() ? "" : ", ") + human_size(x.size) + ": "
                + (x.pair_gbps.median > 0 && !x.xmit_gbps.empty()
                     ? num(100 * x.xmit_gbps.median / x.pair_gbps.median) + " %"
                     : std::string{"–"});
    md << "| remote transmit with remote.tls ≥ 60 % of a raw TLS pair (every size) | "
       << (shares.empty() ? std::string{"–"} : shares) << " | " << mark(tls_share_worst >= 0.6)
       << " |\n";
    md << "| engine request during a " << human_size(rq.size)
       << " transfer within 2× of idle (median) | " << num(rtt_median_ratio) << "× (p99 "
       << num(rtt_p99_ratio) << "×) | " << mark(rtt_median_ratio > 0 && rtt_median_ratio <= 2)
       << " |\n";
  }
  if (o.has("alloc")) {
    md << "| allocator allocate+free ≥ 10 M pairs/s | " << big(direct_rate) << " | " << mark(direct_rate >= 10e6) << " |\n";
    md << "| fragmentation no worse than Boost, no more failures, occupied ÷ requested ≤ 1.02 (≥ 64 KiB) | see §3 | " << mark(frag_ok) << " |\n";
  }
  if (o.has("growth") && r.growth.max_arena != 0) {
    const auto& g = r.growth;
    double share = static_cast<double>(g.admin_bytes) / static_cast<double>(g.max_arena);
    md << "| admin memory ≤ 0.5 % of the maximum arena (" << human_size(g.max_arena)
       << ") at default capacities | " << num(100 * share) << " % | " << mark(share <= 0.005)
       << " |\n";
    bool served = g.error.empty() && g.big_block == gib_bytes && g.big_bytes_ok;
    md << "| a 64 MiB arena with max_arena 4 GiB serves a 1 GiB block and 4K frames | "
       << (served ? "served, " : "not served, ") << "time to add the segment "
       << num(g.engine_big_alloc_ms.median) << " ms (through cafshmd) | " << mark(served)
       << " |\n";
  }
  md << "\n";

  // 1
  if (o.has("handoff")) {
    md << "## 1. Hand-off round trip between two processes\n\n";
    md << "Two processes registered with one cafshmd; RTT in µs, median / p99. **cafshm**: a "
          "hand-made pool of pre-allocated, pre-shared, pre-mapped blocks (one per side); one CAF "
          "message with a `block_ref` each way, each side reads the first and last byte of the "
          "other's block. **library pool**: the same through `cafshm::pool` (two blocks per side) "
          "and `cafshm::pool_reader`: each side loans a block, seals it and sends the `pool_frame`; "
          "the other side opens it, reads the first and last byte and releases it (marked on the "
          "pool's return board in shared memory; a message only if the sender waits for a block). "
          "**+1 message**: the hand-made pool, and each side also sends the other process one "
          "small message per round trip (what a release cost when it was a message). These three "
          "are measured in the same interleaved rounds. "
          "**+checksum**: both sides "
          "XXH3 the whole payload instead. **+write**: the sender also writes the whole payload "
          "before each send. **no pool**: allocate+map, write, unmap+transfer, send; the peer maps, "
          "reads, unmap+transfers back; map, read, unmap+free (6 requests to cafshmd, 3 of them "
          "compound; the two messages through "
       << h.nopool_path << "). **plain "
          "CAF**: `std::vector<char>` through the io middleman and back. **memcpy**: one copy of "
          "the payload on one core.\n\n";
    md << "Scheduler (both processes, both transports): **" << h.chosen.text()
       << "** (policy/max-threads), the fastest of:\n\n";
    md << "| scheduler | cafshm 64 B | plain CAF 64 B | plain CAF 1 MiB |\n|---|---|---|---|\n";
    for (const auto& t : h.trials)
      md << "| " << t.s.text() << " | " << lat(t.shm) << " | " << lat(t.caf) << " | " << lat(t.caf_1m) << " |\n";
    md << "\n| payload | cafshm | library pool | library ÷ cafshm | +1 message | +checksum | +write | no pool | plain CAF | memcpy | CAF ÷ cafshm | cafshm ÷ cafshm(64 B) |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& x : h.rows)
      md << "| " << human_size(x.size) << " | " << lat(x.shm) << " | " << lat(x.shm_library)
         << " | " << ratio(x.shm_library.median, x.shm.median) << " | " << lat(x.shm_notify)
         << " | " << lat(x.shm_sum) << " | "
         << lat(x.shm_fill) << " | " << lat(x.shm_engine) << " | " << lat(x.caf) << " | "
         << lat(x.memcpy_us) << " | " << ratio(x.caf.median, x.shm.median) << " | "
         << (h64 ? ratio(x.shm.median, h64->shm.median) : "–") << " |\n";
    if (!h.error.empty())
      md << "\nError: " << h.error << "\n";
    md << "\nThe same round trip through Eclipse iceoryx 2.0.3 (Debian), with a RouDi of the "
          "bench's own: each side loans a chunk, touches its first and last byte and publishes it; "
          "**polling**: the subscriber loops on `take()`; **WaitSet**: it blocks until data "
          "arrives. RTT in µs, median / p99; the ratios are cafshm (pool) ÷ iceoryx.\n\n";
    md << "| payload | cafshm | iceoryx polling | iceoryx WaitSet | ÷ polling | ÷ WaitSet |\n"
          "|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& x : h.iceoryx.rows) {
      const auto* c = handoff_at(h, x.size);
      md << "| " << human_size(x.size) << " | " << (c ? lat(c->shm) : "–") << " | "
         << lat(x.polling) << " | " << lat(x.waitset) << " | "
         << (c ? ratio(c->shm.median, x.polling.median) : "–") << " | "
         << (c ? ratio(c->shm.median, x.waitset.median) : "–") << " |\n";
    }
    if (!h.iceoryx.error.empty())
      md << "\niceoryx: " << h.iceoryx.error << "\n";
    md << "\nThe hand-made pool (the **cafshm** column's protocol, here **BASP**: its handle comes "
          "from the middleman's `remote_actor`) with the handle from `client::find_actor`: an "
          "inbox proxy, the messages through the two processes' actor inboxes. **receiver "
          "thread**: each client's thread reads its actor inbox (scheduler "
       << h.chosen.text()
       << ", the same processes as BASP); **park** / **spin**: two more pairs of processes "
          "that load `cafshm::polling_scheduler` (one worker each), whose workers read the "
          "inboxes and park at once (`local.idle: park`) or spin "
       << h.fast_spin_us
       << " µs first (`local.idle: spin`). Measured in the same interleaved rounds as the "
          "BASP column; iceoryx as above. RTT in µs, median / p99.\n\n";
    md << "| payload | BASP | receiver thread | park | spin | iceoryx WaitSet | iceoryx polling "
          "|\n|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& x : h.rows) {
      const auto* i = iceoryx_at(h, x.size);
      md << "| " << human_size(x.size) << " | " << lat(x.shm) << " | " << lat(x.fast_thread)
         << " | " << lat(x.fast_park) << " | " << lat(x.fast_spin) << " | "
         << (i ? lat(i->waitset) : "–") << " | " << (i ? lat(i->polling) : "–") << " |\n";
    }
    md << "\nMedians against the same size's baselines: ÷ BASP; ÷ iceoryx WaitSet; ÷ iceoryx "
          "polling. Targets: park ≤ 0.2 of BASP and ≤ 1.5× WaitSet, spin ≤ 3× polling.\n\n";
    md << "| payload | receiver thread | park | spin |\n|---:|---|---|---|\n";
    for (const auto& x : h.rows) {
      const auto* i = iceoryx_at(h, x.size);
      auto three = [&](const stat& c) {
        return ratio(c.median, x.shm.median) + "; "
               + (i ? ratio(c.median, i->waitset.median) : "–") + "; "
               + (i ? ratio(c.median, i->polling.median) : "–");
      };
      md << "| " << human_size(x.size) << " | " << three(x.fast_thread) << " | "
         << three(x.fast_park) << " | " << three(x.fast_spin) << " |\n";
    }
    md << "\nThat the messages took the fast path: `find_actor` answered an "
          "`inbox_actor_proxy`, both processes' actor inboxes were read as the column says (a "
          "thread or the polling scheduler's workers), and the client's actor-path counters moved by one "
          "message record out and one in per round trip (warm-up included); a column for which "
          "any of this fails has no figures.\n\n";
    md << "| column | scheduler | verified | round trips | records written | records delivered "
          "|\n|---|---|---|---:|---:|---:|\n";
    for (const auto& c : h.fast)
      md << "| " << c.name << " | " << c.scheduler << " | "
         << (c.verified ? std::string{"yes"} : "**no**: " + c.error) << " | " << c.round_trips
         << " | " << c.records_sent << " | " << c.records_delivered << " |\n";
    md << "\n![hand-off latency](handoff_latency.png)\n";
  }

  // 2
  if (o.has("pipeline")) {
    md << "\n## 2. Pipeline throughput (examples/pipeline)\n\n"
          "producer → transformer (RGB → gray) → sink, three processes; `cafshm-pipeline "
          "--transport shm|caf`. GB/s = input RGB bytes per second. Median (min–max) of "
       << (r.opts.quick ? 2 : 5) << " runs.\n\n";
    md << "| transport | frame | MB/frame | frames | frames/s | GB/s | shm ÷ caf |\n|---|---|---:|---:|---:|---:|---:|\n";
    for (const auto& p : r.pipeline) {
      std::string vs = "";
      if (p.transport == "shm")
        for (const auto& q : r.pipeline)
          if (q.transport == "caf" && q.width == p.width && q.height == p.height)
            vs = ratio(p.fps.median, q.fps.median);
      md << "| " << p.transport << " | " << p.width << "×" << p.height << " | "
         << num(p.frame_bytes / 1e6) << " | " << p.frames << " | " << spread(p.fps) << " | "
         << spread(p.gbps) << " | " << vs << " |";
      if (!p.error.empty())
        md << " error: " << p.error;
      md << "\n";
    }
    md << "\n![pipeline throughput](pipeline_throughput.png)\n";
  }

  // 3
  if (o.has("alloc")) {
    md << "\n## 3. Allocator\n\nWorkload: " << r.alloc.workload << ".\n\n";
    md << "A single request round trip to the engine (blocking `client::find_process`, µs median / "
          "p99): ";
    for (size_t i = 0; i < r.alloc.request_rtts.size(); ++i)
      md << (i ? "; " : "") << r.alloc.request_rtts[i].engine << " " << lat(r.alloc.request_rtts[i].us);
    md << ". cafshmd uses its built-in scheduler settings (its YAML has no scheduler keys); "
          "\"engine with …\" is the same engine and module hosted by the benchmark with the "
          "hand-off row's scheduler. `client::find_process` is a blocking call: \"over the fast "
          "path (shm)\" through the engine's request inbox and the client's reply inbox, \"over "
          "BASP\" a CAF request from a new `scoped_actor` per call (a second client with "
          "`local.transport: basp`, its calls interleaved with the first's; \"back to back\": "
          "each client's calls in a row instead); \"one reused "
          "scoped_actor\" sends the same request over BASP from one long-lived `scoped_actor`; "
          "\"event-based actor\" from an event-based actor (`client::request(self, ...)`, over "
          "the fast path, its answer put into the actor's mailbox by the client's reading thread, "
          "and then from a second client over BASP), the next request in the response "
          "handler.\n\n";
    md << "| allocator | allocate+free pairs/s, median (min–max) | ÷ tlsf direct | |\n|---|---:|---:|---|\n";
    for (const auto& a : r.alloc.rates)
      md << "| " << a.name << " | " << big(a.pairs_per_s.median) << " (" << big(a.pairs_per_s.min)
         << "–" << big(a.pairs_per_s.max) << ") | " << ratio(a.pairs_per_s.median, direct_rate)
         << " | " << a.note << " |\n";
    md << "\nFragmentation: " << r.alloc.frag_workload
       << ". Ratio = largest free block ÷ free bytes (1 = no external fragmentation); mean over "
          "samples in the second half of the run, and at its end. Boost's largest free block is the "
          "largest allocation that succeeds (binary search); tlsf's is its largest free block. "
          "Occupied ÷ requested: bytes the tlsf allocator's blocks occupy (size rounded up to the "
          "4 KiB min block) over requested bytes, for the requests of 64 KiB and more.\n\n";
    md << "| fill target | allocator | ratio mean | ratio min | ratio at end | free MiB | largest free MiB | failed allocations | live requested ÷ arena | occupied ÷ requested (≥ 64 KiB) |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& f : r.alloc.frag)
      md << "| " << num(f.fill) << " | " << f.allocator << " | " << num(f.mean_ratio) << " | "
         << num(f.min_ratio) << " | " << num(f.ratio) << " | " << num(f.free_bytes / 1048576.0)
         << " | " << num(f.largest_free / 1048576.0) << " | " << f.failed << " of " << f.ops
         << " ops | " << num(f.live_requested) << " | "
         << (f.occupied_per_requested > 0 ? num(f.occupied_per_requested) : std::string{"–"})
         << " |\n";
    if (!r.alloc.error.empty())
      md << "\nError: " << r.alloc.error << "\n";
  }

  // 4
  if (o.has("remote")) {
    md << "\n## 4. Remote transfer on loopback\n\n"
          "`client::transmit` from a block at cafshmd A to cafshmd B (remote.chunk "
       << human_size(r.remote.chunk) << ", remote.window " << r.remote.window
       << ", remote.cache 0 so that every repetition moves the payload), against a raw TCP socket "
          "pair (one `send` of the whole buffer, the receiver `recv`s into a pre-faulted buffer) and "
          "plain CAF (`std::vector<char>` chunks of the same size and window, acknowledged, copied "
          "into a pre-faulted buffer). GB/s = 10^9 bytes/s, median (min–max). RSS in MiB as "
          "VmHWM / peak heap growth during the row (RssAnon sampled every 4 ms); a daemon's "
          "VmHWM includes the arena pages it touched, i.e. the block itself.\n\n";
    md << "| block | cafshm transmit | raw TCP | plain CAF | transmit ÷ TCP | CAF ÷ TCP | daemon A | daemon B | cafshm client | TCP source / sink HWM | CAF source / sink HWM |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& x : r.remote.rows) {
      md << "| " << human_size(x.size) << " | " << spread(x.xmit_gbps) << " | " << spread(x.tcp_gbps)
         << " | " << spread(x.caf_gbps) << " | " << ratio(x.xmit_gbps.median, x.tcp_gbps.median)
         << " | " << ratio(x.caf_gbps.median, x.tcp_gbps.median) << " | " << rss(x.daemon_a)
         << " | " << rss(x.daemon_b) << " | " << rss(x.xmit_client) << " | "
         << num(x.tcp_source.hwm_mib) << " / " << num(x.tcp_sink.hwm_mib) << " | "
         << num(x.caf_source.hwm_mib) << " / " << num(x.caf_sink.hwm_mib) << " |";
      if (!x.error.empty())
        md << " error: " << x.error;
      md << "\n";
    }
    md << "\nremote.chunk × remote.window at " << human_size(r.remote.sweep_size) << " blocks:\n\n";
    md << "| chunk | window | window bytes | remote.cache | transmit GB/s | daemon A heap peak MiB | daemon B heap peak MiB |\n|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& s : r.remote.sweep) {
      md << "| " << human_size(s.chunk) << " | " << s.window << " | "
         << human_size(s.chunk * s.window) << " | " << (s.cache ? human_size(s.cache) : "0") << " | "
         << spread(s.gbps) << " | "
         << num(s.daemon_a.anon_peak_mib) << " | " << num(s.daemon_b.anon_peak_mib) << " |";
      if (!s.error.empty())
        md << " error: " << s.error;
      md << "\n";
    }
    md << "\nWith remote.tls at both engines (certificates of a CA made for the run, mutual "
          "verification; the payload on a TLS 1.3 data connection), against a raw TLS socket pair: "
          "the raw TCP pair's framing inside one TLS 1.3 session between two processes using "
          "OpenSSL directly with the same certificates, mutual verification"
       << (r.remote.tls_cipher.empty() ? std::string{}
                                       : " (negotiated: " + r.remote.tls_cipher + ")")
       << ". The plain rows' transmit ÷ TCP next to it for comparison.\n\n";
    md << "| block | transmit with TLS | raw TLS pair | TLS transmit ÷ TLS pair | plain transmit ÷ TCP | daemon A | daemon B | TLS source / sink HWM |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& x : r.remote.tls) {
      const auto* plain = remote_at(r.remote, x.size);
      md << "| " << human_size(x.size) << " | " << spread(x.xmit_gbps) << " | "
         << spread(x.pair_gbps) << " | " << ratio(x.xmit_gbps.median, x.pair_gbps.median) << " | "
         << (plain ? ratio(plain->xmit_gbps.median, plain->tcp_gbps.median) : std::string{"–"})
         << " | " << rss(x.daemon_a) << " | " << rss(x.daemon_b) << " | "
         << num(x.pair_source.hwm_mib) << " / " << num(x.pair_sink.hwm_mib) << " |";
      if (!x.error.empty())
        md << " error: " << x.error;
      md << "\n";
    }
    if (!r.remote.tls_error.empty())
      md << "\nTLS rows: " << r.remote.tls_error << "\n";
    md << "\nEngine requests during a transfer: a second client of the sending engine makes "
          "blocking `client::find_process` round trips (over "
       << (rq.transport.empty() ? std::string{"–"} : rq.transport)
       << "), 1 ms apart, for 500 ms with no transfer running, then during a "
       << human_size(rq.size)
       << " transmit between the plain engines (starting 10 ms after the transmit was requested, "
          "counted only if it ended before transmit returned); the two phases alternate, "
       << rq.transfers << " transfers (" << spread(rq.transfer_gbps) << " GB/s). µs:\n\n";
    md << "| phase | round trips | median | p99 | min | max |\n|---|---:|---:|---:|---:|---:|\n";
    for (auto [name, st] : {std::pair{"idle", &rq.idle_us}, std::pair{"during the transfer", &rq.during_us}})
      md << "| " << name << " | " << st->n << " | " << num(st->median) << " | " << num(st->p99)
         << " | " << num(st->min) << " | " << num(st->max) << " |\n";
    md << "\nDuring ÷ idle: median " << num(rtt_median_ratio) << "×, p99 " << num(rtt_p99_ratio)
       << "×.\n";
    if (!rq.error.empty())
      md << "\nError: " << rq.error << "\n";
    md << "\nTransmits of content the destination's cache holds: per repetition the block is "
          "changed and sent (a miss: the destination asks for the digest, the payload moves and "
          "is cached), then sent unchanged (a hit: no payload); remote.cache twice the block, "
          "remote.cache_hit of the destination as given. ms:\n\n";
    md << "| cache_hit | block | miss median (min–max) | hit median (min–max) | miss ÷ hit |\n"
          "|---|---:|---:|---:|---:|\n";
    for (const auto& c : r.remote.cache) {
      md << "| " << c.policy << " | " << human_size(c.size) << " | " << spread(c.miss_ms) << " | "
         << spread(c.hit_ms) << " | " << ratio(c.miss_ms.median, c.hit_ms.median) << " |";
      if (!c.error.empty())
        md << " error: " << c.error;
      md << "\n";
    }
    if (!r.remote.error.empty())
      md << "\nError: " << r.remote.error << "\n";
    md << "\n![remote throughput](remote_throughput.png)\n";
  }

  // 5
  if (o.has("scale")) {
    md << "\n## 5. Scale: clients against one engine\n\n"
          "N client processes on one cafshmd, for "
       << num(r.scale.seconds) << " s per phase. Hand-off: N/2 pairs hand " << human_size(r.scale.size)
       << " blocks back and forth at once (RTT over all pairs' samples, µs median / p99; round "
          "trips/s summed). Allocation: all N processes free+allocate (blocking client calls, "
          "64 B..64 KiB) at once; pairs/s summed.\n\n";
    md << "| clients | pool RTT | pool round trips/s | no-pool RTT | no-pool round trips/s | alloc pairs/s (all) | alloc pairs/s per client |\n"
          "|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& s : r.scale.rows) {
      md << "| " << s.clients << " | " << lat(s.pool_rtt) << " | " << big(s.pool_rate) << " | "
         << lat(s.engine_rtt) << " | " << big(s.engine_rate) << " | " << big(s.alloc_rate) << " | "
         << big(s.alloc_per_client.median) << " |";
      if (!s.error.empty())
        md << " error: " << s.error;
      md << "\n";
    }
    if (!r.scale.error.empty())
      md << "\nError: " << r.scale.error << "\n";
  }

  // 6
  if (!r.inbox.rows.empty()) {
    const auto& in = r.inbox;
    const inbox_row* basp = nullptr;
    for (const auto& x : in.rows)
      if (x.variant.find("BASP") != std::string::npos)
        basp = &x;
    const iceoryx_row* iox = in.iceoryx.rows.empty() ? nullptr : &in.iceoryx.rows.front();
    md << "\n## 6. Inbox ping-pong (local fast path)\n\n"
          "Two processes bounce one record of "
       << in.record_bytes
       << " B through two shared-memory inboxes (docs/fastpath.md); RTT in µs, median / p99. "
          "Both readers use the same idle strategy. Rows without CAF: the record alone. CAF rows: "
          "`(frame_atom, u32, block_ref)` between an event-based actor in each process (both "
          "actor systems with one scheduler thread), serialised into the inbox and delivered by "
          "a receiver thread (sharing/1: two thread wake-ups per hop), or by the workers of "
          "`cafshm::polling_scheduler` (one wake-up per hop when parking, none while spinning); "
          "the BASP row sends the same message between the same actors through the io middleman "
          "(TCP loopback). ÷ columns: the row's median over BASP's and over iceoryx's (64 B, "
          "the hand-off protocol of §1, this run).\n\n";
    md << "| path | RTT | ÷ BASP | ÷ iceoryx polling | ÷ iceoryx WaitSet |\n"
          "|---|---:|---:|---:|---:|\n";
    for (const auto& x : in.rows) {
      md << "| " << x.variant << " | " << lat(x.rtt) << " | "
         << (basp ? ratio(x.rtt.median, basp->rtt.median) : "–") << " | "
         << (iox ? ratio(x.rtt.median, iox->polling.median) : "–") << " | "
         << (iox ? ratio(x.rtt.median, iox->waitset.median) : "–") << " |";
      if (!x.error.empty())
        md << " error: " << x.error;
      md << "\n";
    }
    if (iox)
      md << "| iceoryx 64 B, polling subscriber | " << lat(iox->polling) << " | | | |\n"
         << "| iceoryx 64 B, WaitSet subscriber | " << lat(iox->waitset) << " | | | |\n";
    if (!in.iceoryx.error.empty())
      md << "\niceoryx: " << in.iceoryx.error << "\n";
    md << "\n";
  }

  // 7
  if (o.has("growth")) {
    const auto& g = r.growth;
    md << "\n## 7. An arena that grows\n\n"
          "An engine with `engine.arena: "
       << human_size(g.arena) << "` and `engine.max_arena: " << human_size(g.max_arena)
       << "` (default capacities otherwise, scrub on_free). In-process: a `memory_manager`, timed "
          "around the request that adds a data segment (`shm_open`, `posix_fallocate` of the whole "
          "segment, `mmap`) and the free that removes it (`munmap`, `shm_unlink`; a block whose "
          "free removes its segment is not scrubbed). Through cafshmd: a "
          "client allocates the large block, maps it, writes its first and last byte, reads them "
          "back through the engine, frees it. Then the pipeline example at 3840×2160 through the "
          "same cafshmd. /dev/shm had "
       << human_size(g.shm_free / mib_bytes * mib_bytes) << " free at the start.\n\n";
    if (!g.scaled_note.empty())
      md << "**Scaled down:** " << g.scaled_note << ".\n\n";
    md << "| what | median | p99 | min–max | n |\n|---|---:|---:|---:|---:|\n";
    auto line = [&](const std::string& what, const stat& x, const char* unit) {
      md << "| " << what << " | " << num(x.median) << " " << unit << " | " << num(x.p99) << " "
         << unit << " | " << num(x.min) << "–" << num(x.max) << " | " << x.n << " |\n";
    };
    line("in-process: allocate " + human_size(g.big_block) + ", adds a segment of that size",
         g.add_big_ms, "ms");
    line("in-process: its free, removes the segment", g.remove_big_ms, "ms");
    line("in-process: allocate 4KiB past a full arena, adds a segment of " + human_size(g.arena),
         g.add_step_ms, "ms");
    line("in-process: free of that 4KiB block, removes the segment", g.remove_step_ms, "ms");
    line("in-process: allocate+free of 4KiB that fits (no segment)", g.plain_alloc_us, "µs");
    line("cafshmd: client::allocate " + human_size(g.big_block) + " (adds the segment)",
         g.engine_big_alloc_ms, "ms");
    line("cafshmd: client::map of it", g.engine_map_ms, "ms");
    md << "\nThe large block through cafshmd: first and last byte "
       << (g.big_bytes_ok ? "written through the view and read back" : "**not** read back")
       << "; " << g.segments_with_big << " data segments while it lived, " << g.segments_after
       << " after its free. Pipeline, " << g.frames << " frames of 3840×2160 RGB: "
       << num(g.fps.median) << " fps (" << num(g.fps.min) << "–" << num(g.fps.max) << ", "
       << g.fps.n << " runs); the engine added " << g.segments_added
       << " data segments over the whole row (high-water mark of used arena bytes: "
       << human_size(g.peak_arena / mib_bytes * mib_bytes) << ", rounded down to MiB).\n\n";
    md << "Admin memory at default capacities for this ceiling: " << g.admin_bytes << " B = "
       << num(100.0 * static_cast<double>(g.admin_bytes) / static_cast<double>(g.max_arena))
       << " % of " << human_size(g.max_arena) << " (target ≤ 0.5 %).\n";
    if (!g.error.empty())
      md << "\nError: " << g.error << "\n";
  }

  // 8
  if (o.has("fanout")) {
    const auto& f = r.fanout;
    md << "\n## 8. Fan-out: one sender, N receivers\n\n"
          "One cafshmd A and N receiving cafshmd on loopback (remote.chunk "
       << human_size(f.chunk) << ", remote.window " << f.window
       << ", remote.cache 0, arenas of the block's size, fresh daemons for each N). A client of A "
          "transmits one "
       << human_size(f.size)
       << " block to a process at every receiver: **in turn, new peers** one after another, "
          "the first send to each engine (it links on the way); **in turn** the same over the "
          "linked peers; **all at once** N threads released together. Wall: in turn the sum of "
          "the transmits, at once from the release to the last answer; median (min–max) of "
       << f.reps
       << " passes (1 for new peers). Aggregate GB/s = N × block ÷ median wall. Every copy is read "
          "back at its receiver (XXH3 against the source's). A's memory in MiB: RssAnon before, "
          "peak during (sampled every 4 ms) and after the passes, VmHWM (reset before them; "
          "includes the block's arena pages).\n\n";
    md << "| N | mode | wall s | aggregate GB/s | transmit s, median (min–max) | failed | verified "
          "| A RssAnon before / peak / after | A VmHWM |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& x : f.rows) {
      for (const auto& c : x.cases) {
        md << "| " << x.peers << " | " << c.mode << " | " << spread(c.wall_s) << " | "
           << num(c.gbps) << " | " << spread(c.xmit_s) << " | " << c.failed << " of "
           << c.transmits << " | " << c.verified << " | " << num(c.anon_before_mib) << " / "
           << num(c.anon_peak_mib) << " / " << num(c.anon_after_mib) << " | " << num(c.hwm_mib)
           << " |";
        if (!c.error.empty())
          md << " error: " << c.error;
        md << "\n";
      }
      if (!x.error.empty())
        md << "| " << x.peers << " | error: " << x.error << " | | | | | | | |\n";
    }
    md << "\nA's RssAnon (MiB) with the block written, then after the send to each new peer:\n\n";
    md << "| N | start | after each new peer |\n|---:|---:|---|\n";
    for (const auto& x : f.rows) {
      std::string list;
      for (auto v : x.anon_after_peer_mib)
        list += (list.empty() ? "" : ", ") + num(v);
      md << "| " << x.peers << " | " << num(x.anon_start_mib) << " | " << list << " |\n";
    }
  }
}

} // namespace bench
