// Row 6: a small record ping-pong between two processes through two shared-memory inboxes
// (plugin/src/fastpath), with the readers parking at once or spinning first: the inbox and its
// wake-up alone. Then the same with CAF messages (frame_atom, u32, block_ref) between an
// event-based actor in each process: serialised into the inbox and delivered (inbox_delivery.hpp)
// by a receiver thread (two wake-ups per hop), or by the workers of cafshm::polling_scheduler
// parking at once or spinning first (one wake-up per hop, or none while spinning); the same
// actors through the io middleman (BASP over TCP loopback); and iceoryx's 64 B round trip
// (iceoryx.cpp), all in the same run.
#include <chrono>
#include <functional>
#include <future>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "bench.hpp"
#include "cafshm/block_ref.hpp"
#include "cafshm/error.hpp"
#include "cafshm/module.hpp"
#include "cafshm/polling_scheduler.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_delivery.hpp"
#include "fastpath/inbox_writer.hpp"
#include "fastpath/poll_registry.hpp"
#include "processes.hpp"

namespace bench {

using namespace cafshm::fastpath;
using namespace std::chrono_literals;

namespace {

constexpr size_t record_size = 48; // about one serialized (atom, u32, block_ref) message
using frame_atom = caf::atom_constant<caf::atom("frame")>;

/// Who delivers CAF messages from the inbox to the actor, or BASP instead of inboxes.
enum class caf_path { receiver_thread, polling, basp };

caf_path path_named(const std::string& name) {
  return name == "polling" ? caf_path::polling
         : name == "basp"  ? caf_path::basp
                           : caf_path::receiver_thread;
}

const char* name_of(caf_path p) {
  switch (p) {
    case caf_path::polling: return "polling";
    case caf_path::basp: return "basp";
    default: return "thread";
  }
}

/// An actor system with one scheduler thread, knowing cafshm's types: sharing (the hand-off
/// row's fastest), or cafshm::polling_scheduler; with the middleman for BASP.
struct caf_config : caf::actor_system_config {
  explicit caf_config(caf_path path = caf_path::receiver_thread) {
    cafshm::add_message_types(*this);
    if (path == caf_path::polling)
      load<cafshm::polling_scheduler>();
    if (path == caf_path::basp)
      load<caf::io::middleman>();
    set("scheduler.policy", caf::atom("sharing"));
    set("scheduler.max-threads", size_t{1});
  }
};

// spin_us > 0: spin that long, then park; < 0: the same with sched_yield between polls
// (local.idle: yield) for -spin_us; 0: park at once.
idle_strategy idle_for(long spin_us) {
  if (spin_us < 0)
    return idle_strategy::yielding_spin_then_park(std::chrono::microseconds{-spin_us});
  return spin_us > 0 ? idle_strategy::spin_then_park(std::chrono::microseconds{spin_us})
                     : idle_strategy::park();
}

std::string idle_text(long spin_us) {
  if (spin_us == 0)
    return "park at once";
  return (spin_us < 0 ? "yielding spin " : "spin ") + std::to_string(std::labs(spin_us))
         + " µs, then park";
}

// This process's inbox (slot 1), an echo process of `role` with its own inbox (slot 2), and a
// writer into the echo's inbox; `error` says what failed.
struct echo_pair {
  std::optional<inbox> in;
  std::unique_ptr<child_process> echo;
  std::optional<inbox_writer> out;
  std::string error;
};

echo_pair start_echo(const options& opts, const std::string& role,
                     std::vector<std::string> extra_args) {
  echo_pair p;
  auto engine = unique_name("cafshm-bench-inbox");
  auto in = inbox::create(engine, 1);
  if (!in) {
    p.error = cafshm::describe(in.error());
    return p;
  }
  p.in.emplace(std::move(*in));
  std::vector<std::string> argv{opts.self, "--role", role, "--engine", engine, "--slot", "2",
                                "--peer", p.in->name()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  p.echo = std::make_unique<child_process>(std::move(argv));
  if (!p.echo->wait_for_line("ready", 10s)) {
    p.error = "the echo process did not start";
    return p;
  }
  auto out = inbox_writer::open(inbox::segment_name(engine, 2), 1, 10s);
  if (!out) {
    p.error = cafshm::describe(out.error());
    return p;
  }
  p.out.emplace(std::move(*out));
  return p;
}

inbox_row measure(const options& opts, const std::string& variant, long spin_us, size_t rounds) {
  inbox_row row;
  row.variant = variant;
  row.spin_us = spin_us;
  auto p = start_echo(opts, "inbox-echo", {"--spin-us", std::to_string(spin_us)});
  if (!p.error.empty()) {
    row.error = p.error;
    return row;
  }
  auto& in = p.in;
  auto& out = p.out;
  auto& echo = *p.echo;
  auto idle = idle_for(spin_us);
  std::vector<std::byte> payload(record_size, std::byte{0x5a});
  std::vector<double> rtt;
  rtt.reserve(rounds);
  size_t warmup = rounds / 10;
  for (size_t i = 0; i < warmup + rounds; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (auto sent = out->send(payload, 1s); !sent) {
      row.error = cafshm::describe(sent.error());
      break;
    }
    if (in->reader().receive([](const inbox_record&) {}, idle, 5s, 1) != 1) {
      row.error = "no reply within 5 s";
      break;
    }
    if (i >= warmup)
      rtt.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                      .count());
  }
  out->send({}, 1s); // an empty record ends the echo process
  echo.wait(5s);
  row.rtt = summarize(std::move(rtt));
  return row;
}

using start_atom = caf::atom_constant<caf::atom("b_istart")>;

// The measuring actor: sends frame i, takes the echo's answer, sends frame i + 1, ...; keeps
// the round trips after the warm-up and fulfils `done` after the last (or with an error).
struct ping_state {
  std::function<bool(const caf::message&)> send; // to the echo process; false: failed
  size_t warmup = 0, rounds = 0;
  std::vector<double> rtt;
  std::chrono::steady_clock::time_point t0;
  std::promise<std::string> done;
};

caf::behavior pinger(caf::event_based_actor* self, std::shared_ptr<ping_state> st) {
  auto next = [self, st](uint32_t i) {
    st->t0 = std::chrono::steady_clock::now();
    if (!st->send(caf::make_message(frame_atom::value, i, cafshm::block_ref{1, 2, 3, 4096}))) {
      st->done.set_value("cannot send frame " + std::to_string(i));
      self->quit();
    }
  };
  return {
    [next](start_atom) { next(0); },
    [self, st, next](frame_atom, uint32_t i, cafshm::block_ref) {
      auto rtt = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now()
                                                           - st->t0)
                   .count();
      if (i >= st->warmup)
        st->rtt.push_back(rtt);
      if (i + 1 == st->warmup + st->rounds) {
        st->done.set_value("");
        self->quit();
        return;
      }
      next(i + 1);
    }};
}

inbox_row measure_caf(const options& opts, caf_path path, long spin_us, size_t rounds) {
  inbox_row row;
  row.spin_us = spin_us;
  row.variant = path == caf_path::basp ? std::string{"CAF message, BASP (io middleman)"}
                : path == caf_path::polling
                  ? "CAF message, polling scheduler, " + idle_text(spin_us)
                  : std::string{"CAF message, receiver threads, park at once"};
  std::vector<std::string> extra{"--path", name_of(path), "--spin-us", std::to_string(spin_us)};
  auto p = start_echo(opts, "inbox-caf-echo", extra);
  if (!p.error.empty()) {
    row.error = p.error;
    return row;
  }
  auto& echo = *p.echo;
  caf_config cfg{path};
  caf::actor_system sys{cfg};
  cafshm::fastpath::poll_registry::instance().set_idle(sys, idle_for(spin_us));
  auto st = std::make_shared<ping_state>();
  st->warmup = rounds / 10;
  st->rounds = rounds;
  st->rtt.reserve(rounds);
  std::optional<caf::actor> remote;
  if (path == caf_path::basp) {
    auto port = echo.wait_for_line("port ", 10s);
    auto h = port ? sys.middleman().remote_actor("127.0.0.1", static_cast<uint16_t>(std::stoi(*port)))
                  : caf::expected<caf::actor>{caf::sec::cannot_connect_to_node};
    if (!h) {
      row.error = "remote_actor: " + sys.render(h.error());
      p.out->send({}, 1s);
      echo.wait(5s);
      return row;
    }
    remote = *h;
  }
  auto* writer = &*p.out;
  auto ping = sys.spawn([&](caf::event_based_actor* self) {
    if (remote)
      st->send = [self, r = *remote](const caf::message& m) {
        self->send(r, m);
        return true;
      };
    else
      st->send = [writer, &sys](const caf::message& m) {
        return static_cast<bool>(send_message(*writer, sys, m, 1s));
      };
    return pinger(self, st);
  });
  {
    std::optional<inbox_receiver> receiver;
    if (!remote)
      receiver.emplace(sys, *p.in, ping);
    caf::anon_send(ping, start_atom::value);
    auto f = st->done.get_future();
    if (f.wait_for(std::chrono::seconds{5 + rounds / 100}) != std::future_status::ready)
      row.error = "the ping-pong did not finish";
    else
      row.error = f.get();
    if (!row.error.empty())
      caf::anon_send_exit(ping, caf::exit_reason::user_shutdown);
  }
  p.out->send({}, 1s); // an empty record (no message) ends the echo process
  echo.wait(5s);
  row.rtt = summarize(std::move(st->rtt));
  return row;
}

} // namespace

inbox_report run_inbox(const options& opts) {
  inbox_report r;
  r.record_bytes = record_size;
  size_t rounds = opts.quick ? 2000 : 20000;
  r.rows.push_back(measure(opts, "park at once", 0, rounds));
  r.rows.push_back(measure(opts, "spin 20 µs, then park", 20, rounds));
  r.rows.push_back(measure(opts, "spin 200 µs, then park", 200, rounds));
  r.rows.push_back(measure(opts, idle_text(-200), -200, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::receiver_thread, 0, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::polling, 0, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::polling, 20, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::polling, 200, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::polling, -20, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::polling, -200, rounds));
  r.rows.push_back(measure_caf(opts, caf_path::basp, 0, rounds));
  r.iceoryx = run_iceoryx(opts, {64});
  return r;
}

int role_inbox_echo(const std::map<std::string, std::string>& args) {
  auto get = [&](const char* k, const char* fallback) {
    auto i = args.find(k);
    return i == args.end() ? std::string{fallback} : i->second;
  };
  auto slot = static_cast<uint32_t>(std::stoul(get("--slot", "2")));
  auto in = inbox::create(get("--engine", ""), slot);
  if (!in) {
    std::fprintf(stderr, "inbox-echo: %s\n", cafshm::describe(in.error()).c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  auto out = inbox_writer::open(get("--peer", ""), slot, 10s);
  if (!out) {
    std::fprintf(stderr, "inbox-echo: %s\n", cafshm::describe(out.error()).c_str());
    return 1;
  }
  auto idle = idle_for(std::stol(get("--spin-us", "0")));
  std::vector<std::byte> reply;
  for (;;) {
    auto n = in->reader().receive([&](const inbox_record& r) {
      reply.assign(r.payload.begin(), r.payload.end());
    }, idle, 30s, 1);
    if (n == 0 || reply.empty())
      return 0;
    if (!out->send(reply, 1s))
      return 1;
  }
}

int role_inbox_caf_echo(const std::map<std::string, std::string>& args) {
  auto get = [&](const char* k, const char* fallback = "") {
    auto i = args.find(k);
    return i == args.end() ? std::string{fallback} : i->second;
  };
  auto slot = static_cast<uint32_t>(std::stoul(get("--slot")));
  auto path = path_named(get("--path", "thread"));
  auto in = inbox::create(get("--engine"), slot);
  if (!in) {
    std::fprintf(stderr, "inbox-caf-echo: %s\n", cafshm::describe(in.error()).c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  auto out = inbox_writer::open(get("--peer"), slot, 10s);
  if (!out) {
    std::fprintf(stderr, "inbox-caf-echo: %s\n", cafshm::describe(out.error()).c_str());
    return 1;
  }
  caf_config cfg{path};
  caf::actor_system sys{cfg};
  cafshm::fastpath::poll_registry::instance().set_idle(sys,
                                                       idle_for(std::stol(get("--spin-us", "0"))));
  // One scheduler thread: the actor is the writer's only user. Over BASP it answers the sender.
  auto* writer = &*out;
  auto echo = sys.spawn([writer, &sys, path](caf::event_based_actor* self) -> caf::behavior {
    return {[=, &sys](frame_atom, uint32_t i, cafshm::block_ref ref) {
      if (path == caf_path::basp)
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), frame_atom::value, i,
                   ref);
      else
        send_message(*writer, sys, caf::make_message(frame_atom::value, i, ref), 1s);
    }};
  });
  if (path == caf_path::basp) {
    auto port = sys.middleman().publish(echo, 0, "127.0.0.1");
    if (!port) {
      std::fprintf(stderr, "inbox-caf-echo: publish: %s\n", sys.render(port.error()).c_str());
      return 1;
    }
    std::printf("port %u\n", static_cast<unsigned>(*port));
    std::fflush(stdout);
  }
  {
    inbox_receiver receiver{sys, *in, echo};
    // The peer ends the run with a record that is no message.
    while (receiver.malformed() == 0)
      std::this_thread::sleep_for(10ms);
  }
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace bench
