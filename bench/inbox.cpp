// Row 6: a small record ping-pong between two processes through two shared-memory inboxes
// (plugin/src/fastpath), with the readers parking at once or spinning first: the inbox and its
// wake-up alone. Then the same with CAF messages (frame_atom, u32, block_ref): serialised into
// the inbox, delivered by a receiver thread into an actor (inbox_delivery.hpp) that answers.
#include <chrono>
#include <cstdio>
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
#include <caf/scoped_actor.hpp>

#include "bench.hpp"
#include "cafshm/block_ref.hpp"
#include "cafshm/error.hpp"
#include "cafshm/module.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_delivery.hpp"
#include "fastpath/inbox_writer.hpp"
#include "processes.hpp"

namespace bench {

using namespace cafshm::fastpath;
using namespace std::chrono_literals;

namespace {

constexpr size_t record_size = 48; // about one serialized (atom, u32, block_ref) message
using frame_atom = caf::atom_constant<caf::atom("frame")>;

/// An actor system like the hand-off row's fastest (sharing, one thread), knowing cafshm's types.
struct caf_config : caf::actor_system_config {
  caf_config() {
    cafshm::add_message_types(*this);
    set("scheduler.policy", caf::atom("sharing"));
    set("scheduler.max-threads", size_t{1});
  }
};

idle_strategy idle_for(long spin_us) {
  return spin_us > 0 ? idle_strategy::spin_then_park(std::chrono::microseconds{spin_us})
                     : idle_strategy::park();
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

inbox_row measure_caf(const options& opts, size_t rounds) {
  inbox_row row;
  row.variant = "CAF message, receiver thread, park at once";
  auto p = start_echo(opts, "inbox-caf-echo", {});
  if (!p.error.empty()) {
    row.error = p.error;
    return row;
  }
  auto& in = p.in;
  auto& out = p.out;
  auto& echo = *p.echo;
  caf_config cfg;
  caf::actor_system sys{cfg};
  std::vector<double> rtt;
  {
    caf::scoped_actor self{sys};
    inbox_receiver receiver{sys, *in, caf::actor{self}};
    cafshm::block_ref ref{1, 2, 3, 4096};
    size_t warmup = rounds / 10;
    for (uint32_t i = 0; i < warmup + rounds && row.error.empty(); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      if (auto sent = send_message(*out, sys, caf::make_message(frame_atom::value, i, ref), 1s);
          !sent) {
        row.error = cafshm::describe(sent.error());
        break;
      }
      self->receive([&](frame_atom, uint32_t, cafshm::block_ref) {},
                    caf::after(std::chrono::seconds{5}) >> [&] { row.error = "no reply within 5 s"; });
      if (i >= warmup && row.error.empty())
        rtt.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  out->send({}, 1s); // an empty record (no message) ends the echo process
  echo.wait(5s);
  row.rtt = summarize(std::move(rtt));
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
  r.rows.push_back(measure_caf(opts, rounds));
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
  auto get = [&](const char* k) {
    auto i = args.find(k);
    return i == args.end() ? std::string{} : i->second;
  };
  auto slot = static_cast<uint32_t>(std::stoul(get("--slot")));
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
  caf_config cfg;
  caf::actor_system sys{cfg};
  // One scheduler thread: the actor is the writer's only user.
  auto* writer = &*out;
  auto echo = sys.spawn([writer, &sys](caf::event_based_actor*) -> caf::behavior {
    return {[writer, &sys](frame_atom, uint32_t i, cafshm::block_ref ref) {
      send_message(*writer, sys, caf::make_message(frame_atom::value, i, ref), 1s);
    }};
  });
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
