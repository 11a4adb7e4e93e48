// A process with an actor that other local processes reach through its actor inbox, for the
// tests of actor messages over the local fast path (tests/test_fast_actor_messages.cpp) and the
// hand-off benchmark. It registers with the cafshmd at 127.0.0.1:--port as --name (with
// --transport shm|basp, default shm; --actor-inbox BYTES sets local.actor_inbox), spawns the
// actor and publishes it as --publish, then prints "ready <slot> <pid>".
//
// The actor answers:
//   (ping_atom, i32 i)              -> (pong_atom, i), and counts whether the message came
//                                      from a proxy of the actor inbox (its sender is one)
//   (seq_atom, u32 sender, u32 n)   -> nothing; checks that each sender's n come 0, 1, 2, ...
//   (report_atom)                   -> (u64 messages, u64 through_inbox, u64 out_of_order)
//   (ask_atom, actor other, i32 i)  -> asks `other` (ping_atom, i) and answers its answer
//   (hold_atom)                     -> never answered (the promise is kept until the actor ends)
//   (quit_atom, u32 code)           -> ends: 0 normal, else exit_reason::user_shutdown
// Commands on stdin, one per line, each answered with one line:
//   stats  -> "stats delivered=D malformed=M unknown=U refused=R sent=S killed=K"
//             (the actor transport's counters, actor_proxy.hpp; all 0 without one)
//   watch N -> monitors the actor published as N (an actor of another process) from an actor
//             of this one: "watching proxy=P" (P: 1 if the handle is an inbox proxy), or
//             "ERROR ..." (the process goes on)
//   downs  -> "downs N reason=R": the down messages the watching actors got, the first's reason
//   exit   -> "bye", then the process ends
// Errors: "ERROR <what>" and exit code 1.
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>
#include <unistd.h>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/response_promise.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "../support/program_options.hpp"
#include "cafshm/client.hpp"
#include "cafshm/module.hpp"
#include "fastpath/actor_proxy.hpp"
#include "fastpath/actor_transport.hpp"
#include "actor_peer_protocol.hpp"

using namespace cafshm;

namespace {

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int fail(const std::string& what) {
  say("ERROR " + what);
  return 1;
}

struct served_state {
  uint64_t messages = 0;
  uint64_t through_inbox = 0;
  uint64_t out_of_order = 0;
  std::map<uint32_t, uint32_t> next; // per sender: the n expected next
  std::vector<caf::response_promise> held; // hold_atom requests, never answered
  static inline const char* name = "cafshm.actor-peer";
};

bool from_inbox_proxy(caf::stateful_actor<served_state>* self) {
  auto& sender = self->current_sender();
  return sender && dynamic_cast<fastpath::inbox_actor_proxy*>(sender->get()) != nullptr;
}

caf::behavior served(caf::stateful_actor<served_state>* self) {
  return {
    [self](actor_peer::ping_atom, int32_t i) {
      ++self->state.messages;
      if (from_inbox_proxy(self))
        ++self->state.through_inbox;
      return caf::make_message(actor_peer::pong_atom::value, i);
    },
    [self](actor_peer::seq_atom, uint32_t sender, uint32_t n) {
      ++self->state.messages;
      if (from_inbox_proxy(self))
        ++self->state.through_inbox;
      auto& expected = self->state.next[sender];
      if (n != expected)
        ++self->state.out_of_order;
      expected = n + 1;
    },
    [self](actor_peer::report_atom) {
      return caf::make_message(self->state.messages, self->state.through_inbox,
                               self->state.out_of_order);
    },
    [self](actor_peer::ask_atom, const caf::actor& other, int32_t i) {
      auto rp = self->make_response_promise();
      self->request(other, std::chrono::seconds{30}, actor_peer::ping_atom::value, i)
        .then([rp](actor_peer::pong_atom, int32_t j) mutable {
                rp.deliver(actor_peer::pong_atom::value, j);
              },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    // Hands the request on to `other`, which answers the requester directly.
    [self](actor_peer::relay_atom, const caf::actor& other, int32_t i) {
      return self->delegate(other, actor_peer::ping_atom::value, i);
    },
    [self](actor_peer::hold_atom) {
      self->state.held.push_back(self->make_response_promise());
      return self->state.held.back();
    },
    [self](actor_peer::quit_atom, uint32_t code) {
      self->quit(code == 0 ? caf::exit_reason::normal : caf::exit_reason::user_shutdown);
    },
  };
}

// What the watching actors (stdin command "watch") heard.
struct down_log {
  std::mutex mtx;
  size_t count = 0;
  std::string first_reason = "none";
};

// Monitors `target` until this process ends, writing its down message into `log`.
caf::behavior watching(caf::event_based_actor* self, caf::actor target,
                       std::shared_ptr<down_log> log) {
  self->set_down_handler([log](caf::down_msg& m) {
    std::lock_guard<std::mutex> guard{log->mtx};
    if (log->count++ == 0)
      log->first_reason = caf::to_string(m.reason);
  });
  self->monitor(target);
  return {[](actor_peer::report_atom) {}};
}

} // namespace

int main(int argc, char** argv) {
  using test::option;
  auto port = static_cast<uint16_t>(std::stoul(option(argc, argv, "--port", "0")));
  auto name = option(argc, argv, "--name", "actor-peer");
  auto publish = option(argc, argv, "--publish", "served");
  auto transport = option(argc, argv, "--transport", "shm") == "basp" ? local_transport::basp
                                                                        : local_transport::shm;
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cfg.set("middleman.attach-utility-actors", true);
  settings s;
  s.role = role::client;
  s.local.transport = transport;
  if (auto bytes = option(argc, argv, "--actor-inbox"); !bytes.empty())
    s.local.actor_inbox_bytes = std::stoull(bytes);
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto me = client::connect(sys, endpoint{"127.0.0.1", port}, name);
  if (!me)
    return fail("connect: " + describe(me.error()));
  auto actor = sys.spawn(served);
  if (auto r = me->publish(actor, publish); !r)
    return fail("publish: " + describe(r.error()));
  say("ready " + std::to_string(to_slot(me->id())) + " " + std::to_string(::getpid()));
  auto downs = std::make_shared<down_log>();
  std::vector<caf::actor> watchers;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.rfind("watch ", 0) == 0) {
      auto found = me->find_actor(line.substr(6));
      if (!found) {
        say("ERROR find_actor: " + describe(found.error()));
        continue;
      }
      bool proxy = dynamic_cast<fastpath::inbox_actor_proxy*>(
                     caf::actor_cast<caf::abstract_actor*>(found->actor))
                   != nullptr;
      watchers.push_back(sys.spawn(watching, found->actor, downs));
      say(std::string{"watching proxy="} + (proxy ? "1" : "0"));
      continue;
    }
    if (line == "downs") {
      std::lock_guard<std::mutex> guard{downs->mtx};
      say("downs " + std::to_string(downs->count) + " reason=" + downs->first_reason);
      continue;
    }
    if (line == "stats") {
      auto t = detail::actors_of(*me);
      auto get = [&](auto member) -> uint64_t {
        return t ? (t->counters().*member).load() : 0;
      };
      using c = fastpath::actor_path_counters;
      say("stats delivered=" + std::to_string(get(&c::delivered))
          + " malformed=" + std::to_string(get(&c::malformed))
          + " unknown=" + std::to_string(get(&c::unknown_receiver))
          + " refused=" + std::to_string(get(&c::refused))
          + " sent=" + std::to_string(get(&c::sent))
          + " killed=" + std::to_string(get(&c::proxies_killed)));
    } else if (line == "exit") {
      say("bye");
      break;
    }
  }
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  for (auto& w : watchers)
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  return 0;
}
