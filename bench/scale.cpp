// Row 5: 2, 4 and 8 client processes (the "peer" helper role) against one cafshmd. Half of them
// hand 4 KiB blocks to the other half (with a pool, and through the engine without a pool); then
// all of them allocate and free through the engine at once.
#include <iostream>
#include <sstream>

#include "bench.hpp"
#include "processes.hpp"

namespace bench {

namespace {

struct result_line {
  double n = 0, seconds = 0, median = 0, p99 = 0;
  std::string error;
};

result_line parse_result(const std::string& rest) {
  result_line r;
  std::istringstream in{rest};
  std::string tok;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq == std::string::npos)
      continue;
    auto k = tok.substr(0, eq);
    auto v = tok.substr(eq + 1);
    if (k == "error") {
      r.error = v;
      continue;
    }
    double x = std::stod(v);
    if (k == "n")
      r.n = x;
    else if (k == "seconds")
      r.seconds = x;
    else if (k == "median")
      r.median = x;
    else if (k == "p99")
      r.p99 = x;
  }
  return r;
}

} // namespace

scale_report run_scale(const options& opts, const sched& s) {
  scale_report rep;
  rep.size = 4096;
  rep.seconds = opts.quick ? 1.0 : 4.0;
  daemon_process d{unique_name("cafshm-bench-s"), engine_options(opts.bin_dir, "512MiB")};
  if (!d.ready()) {
    rep.error = "cafshmd did not start";
    return rep;
  }
  const auto wait = std::chrono::seconds(60);
  for (int n : {2, 4, 8}) {
    std::cerr << "bench: scale: " << n << " clients\n";
    scale_row row;
    row.clients = n;
    std::vector<std::unique_ptr<child_process>> procs;
    std::vector<std::pair<std::string, std::string>> addr; // port, slot
    for (int i = 0; i < n; ++i)
      procs.push_back(std::make_unique<child_process>(std::vector<std::string>{
        opts.self, "--role", "peer", "--engine", d.address_text(), "--name",
        "scale-" + std::to_string(n) + "-" + std::to_string(i), "--policy", s.policy,
        "--threads", std::to_string(s.threads)}));
    for (auto& p : procs) {
      auto ready = p->wait_for_line("ready ", wait);
      if (!ready) {
        row.error = "a client did not start";
        break;
      }
      std::istringstream in{*ready};
      std::string port, slot;
      in >> port >> slot;
      addr.emplace_back(port, slot);
    }
    if (!row.error.empty()) {
      rep.rows.push_back(row);
      continue;
    }
    // odd processes drive, each paired with the even one before it
    std::vector<child_process*> pingers;
    for (int i = 1; i < n; i += 2) {
      procs[i]->write_line("pair " + addr[i - 1].first + " " + addr[i - 1].second);
      if (!procs[i]->wait_for_line("paired", wait))
        row.error = "pairing failed";
      pingers.push_back(procs[i].get());
    }
    auto phase = [&](std::vector<child_process*> who, const std::string& prepare, stat& rtt) {
      double rate = 0;
      for (auto* p : who)
        p->write_line(prepare);
      for (auto* p : who)
        if (!p->wait_for_line("prepared", wait))
          row.error = "prepare failed: " + prepare;
      for (auto* p : who)
        p->write_line("run " + std::to_string(rep.seconds));
      std::vector<double> all;
      std::vector<double> per;
      for (auto* p : who) {
        auto rest = p->wait_for_line("result ", std::chrono::seconds(120));
        if (!rest) {
          row.error = "no result: " + prepare;
          continue;
        }
        auto r = parse_result(*rest);
        if (!r.error.empty())
          row.error = r.error;
        if (r.seconds > 0) {
          rate += r.n / r.seconds;
          per.push_back(r.n / r.seconds);
        }
        if (prepare.rfind("prepare alloc", 0) != 0) {
          if (auto samples = p->wait_for_line("samples", wait)) {
            std::istringstream in{*samples};
            double x;
            while (in >> x)
              all.push_back(x);
          }
        }
      }
      for (auto* p : who) {
        p->write_line("release");
        p->wait_for_line("released", wait);
      }
      rtt = prepare.rfind("prepare alloc", 0) == 0 ? summarize(per) : summarize(all);
      return rate;
    };
    row.pool_rate = phase(pingers, "prepare touch " + std::to_string(rep.size), row.pool_rtt);
    row.engine_rate = phase(pingers, "prepare engine " + std::to_string(rep.size), row.engine_rtt);
    std::vector<child_process*> everyone;
    for (auto& p : procs)
      everyone.push_back(p.get());
    row.alloc_rate = phase(everyone, "prepare alloc 0", row.alloc_per_client);
    for (auto& p : procs)
      p->close_stdin();
    for (auto& p : procs)
      p->wait(std::chrono::seconds(10));
    rep.rows.push_back(row);
  }
  return rep;
}

} // namespace bench
