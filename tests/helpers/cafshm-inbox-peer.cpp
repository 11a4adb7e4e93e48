// A process that talks to inboxes (plugin/src/fastpath) for the inbox tests and the inbox row of
// the benchmarks. Modes (--mode):
//   send   appends --count records to the inbox object --inbox as sender --slot; record i carries
//          the payload "<slot> <i>" padded with '.' to --size bytes (default: unpadded); waits up
//          to --wait-ms (default 10000) for space. With --stop after_claim|after_mark it then
//          starts one more record, stops at that point, prints "stopped" and waits to be killed.
//   echo   creates the inbox of engine --engine, slot --slot, prints "ready", opens the inbox
//          object --peer, and sends every record it receives back there unchanged, until it has
//          echoed --rounds records. With --jitter-us N it pauses a random 0..N µs (half of the
//          time busy, half sleeping) after each reply before it waits again; --spin-us sets its
//          idle strategy's spin (default: park at once); --park-ms its futex timeout.
//   caf-send  sends --count CAF messages (frame_atom, i, block_ref{i + 1, i, 7, 64 * i}) to the
//          inbox object --inbox as sender --slot, serialised by an actor system that knows
//          cafshm's message types; with --garbage it first sends a record that is no message.
// Output (stdout, one line each, flushed): "sent N", "stopped", "ready", "echoed N",
// "ERROR <what>" (exit code 1).
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/message.hpp>

#include "../support/program_options.hpp"
#include "cafshm/block_ref.hpp"
#include "cafshm/error.hpp"
#include "cafshm/module.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_delivery.hpp"
#include "fastpath/inbox_writer.hpp"

using namespace cafshm;
using namespace cafshm::fastpath;
using namespace std::chrono_literals;

namespace {

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int fail(const std::string& what) {
  say("ERROR " + what);
  return 1;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

void jitter(std::mt19937& rng, unsigned max_us) {
  if (max_us == 0)
    return;
  auto us = std::uniform_int_distribution<unsigned>{0, max_us}(rng);
  if (rng() & 1) {
    auto end = std::chrono::steady_clock::now() + std::chrono::microseconds{us};
    while (std::chrono::steady_clock::now() < end) {
    }
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds{us});
  }
}

int run_send(int argc, char** argv) {
  using test::option;
  auto slot = static_cast<uint32_t>(std::stoul(option(argc, argv, "--slot", "1")));
  auto count = std::stoul(option(argc, argv, "--count", "1"));
  auto size = std::stoul(option(argc, argv, "--size", "0"));
  auto wait = std::chrono::milliseconds{std::stol(option(argc, argv, "--wait-ms", "10000"))};
  auto stop = option(argc, argv, "--stop");
  auto w = inbox_writer::open(option(argc, argv, "--inbox"), slot, 10s);
  if (!w)
    return fail(describe(w.error()));
  auto payload = [&](unsigned long i) {
    auto text = std::to_string(slot) + " " + std::to_string(i);
    if (text.size() < size)
      text.resize(size, '.');
    return text;
  };
  for (unsigned long i = 0; i < count; ++i)
    if (auto sent = w->send(bytes_of(payload(i)), wait); !sent)
      return fail("record " + std::to_string(i) + ": " + describe(sent.error()));
  say("sent " + std::to_string(count));
  if (stop.empty())
    return 0;
  auto point = stop == "after_claim" ? inbox_writer::TEST_stop_point::after_claim
                                     : inbox_writer::TEST_stop_point::after_mark;
  w->TEST_stop_at(point, [] {
    say("stopped");
    for (;;)
      ::pause();
  });
  w->send(bytes_of(payload(count)), wait);
  return fail("the stopped send returned");
}

int run_echo(int argc, char** argv) {
  using test::option;
  auto slot = static_cast<uint32_t>(std::stoul(option(argc, argv, "--slot", "1")));
  auto rounds = std::stoul(option(argc, argv, "--rounds", "1"));
  auto jitter_us = static_cast<unsigned>(std::stoul(option(argc, argv, "--jitter-us", "0")));
  idle_strategy idle;
  idle.spin = std::chrono::microseconds{std::stol(option(argc, argv, "--spin-us", "0"))};
  idle.park_timeout = std::chrono::milliseconds{std::stol(option(argc, argv, "--park-ms", "100"))};
  auto in = inbox::create(option(argc, argv, "--engine"), slot);
  if (!in)
    return fail(describe(in.error()));
  say("ready");
  auto out = inbox_writer::open(option(argc, argv, "--peer"), slot, 10s);
  if (!out)
    return fail(describe(out.error()));
  std::mt19937 rng{static_cast<unsigned>(::getpid())};
  std::vector<std::byte> reply;
  unsigned long echoed = 0;
  while (echoed < rounds) {
    auto n = in->reader().receive([&](const inbox_record& r) {
      reply.assign(r.payload.begin(), r.payload.end());
    }, idle, std::chrono::hours{24 * 366}, 1);
    if (n == 0)
      continue;
    if (auto sent = out->send(reply, 10s); !sent)
      return fail(describe(sent.error()));
    ++echoed;
    jitter(rng, jitter_us);
  }
  say("echoed " + std::to_string(echoed));
  return 0;
}

int run_caf_send(int argc, char** argv) {
  using test::option;
  using frame_atom = caf::atom_constant<caf::atom("frame")>;
  auto slot = static_cast<uint32_t>(std::stoul(option(argc, argv, "--slot", "1")));
  auto count = static_cast<uint32_t>(std::stoul(option(argc, argv, "--count", "1")));
  auto w = inbox_writer::open(option(argc, argv, "--inbox"), slot, 10s);
  if (!w)
    return fail(describe(w.error()));
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  if (option(argc, argv, "--garbage") == "yes")
    if (auto sent = w->send(bytes_of("\x01\x02 not a message"), 10s); !sent)
      return fail(describe(sent.error()));
  for (uint32_t i = 0; i < count; ++i) {
    block_ref ref{i + 1, i, 7, 64ull * i};
    if (auto sent = send_message(*w, sys, caf::make_message(frame_atom::value, i, ref), 10s);
        !sent)
      return fail("message " + std::to_string(i) + ": " + describe(sent.error()));
  }
  say("sent " + std::to_string(count));
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto mode = test::option(argc, argv, "--mode");
  if (mode == "send")
    return run_send(argc, argv);
  if (mode == "echo")
    return run_echo(argc, argv);
  if (mode == "caf-send")
    return run_caf_send(argc, argv);
  return fail("unknown --mode '" + mode + "'");
}
