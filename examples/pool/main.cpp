// Two processes hand frames through a cafshm pool, both as event-based actors:
//
//   cafshmd --port 4242 &
//   cafshm-pool-example --role=consumer &
//   cafshm-pool-example --role=producer --frames=1000
//
// The consumer publishes its actor at the engine as "pool-consumer"; the producer finds it
// there (no ports to pass around), creates a pool shared with the consumer's process and sends
// frames, each one ordinary CAF message. Every frame carries its number in all its bytes; the
// consumer checks them and releases the frame, which gives the block back to the producer's
// pool. CAF's own options work too, e.g. --scheduler.policy=sharing --scheduler.max-threads=1.
//
// The regions between "// [readme:...]" lines appear verbatim in README.md (a test compares).
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>

#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"
#include "cafshm/pool.hpp"

namespace {

using done_atom = caf::atom_constant<caf::atom("ex_done")>;
using next_atom = caf::atom_constant<caf::atom("ex_next")>;
using find_atom = caf::atom_constant<caf::atom("ex_find")>;

struct example_config : caf::actor_system_config {
  std::string role = "consumer";
  std::string engine = "127.0.0.1:4242";
  std::string consumer_name = "pool-consumer";
  uint32_t frames = 100;
  uint32_t blocks = 4;
  uint64_t frame_bytes = 1 << 20;

  example_config() {
    opt_group{custom_options_, "global"}
      .add(role, "role", "producer or consumer")
      .add(engine, "engine", "HOST:PORT of cafshmd")
      .add(consumer_name, "consumer-name", "name the consumer's actor is published under")
      .add(frames, "frames", "frames the producer sends (the consumer expects as many)")
      .add(blocks, "blocks", "blocks in the producer's pool")
      .add(frame_bytes, "frame-bytes", "bytes of each frame");
  }
};

bool frame_is_intact(std::span<const char> bytes, uint32_t n) {
  for (size_t i = 0; i + sizeof(n) <= bytes.size(); i += sizeof(n))
    if (std::memcmp(bytes.data() + i, &n, sizeof(n)) != 0)
      return false;
  return true;
}

// [readme:consumer]
// The consumer: maps each pool block once (pool_reader), reads frames in place, releases them.
struct consumer_state {
  std::unique_ptr<cafshm::pool_reader> reader;
  uint32_t expected = 0;
  uint32_t received = 0;
  uint32_t damaged = 0;
};

caf::behavior consumer(caf::stateful_actor<consumer_state>* self, cafshm::client* me,
                       uint32_t expected) {
  self->state.reader = std::make_unique<cafshm::pool_reader>(*me);
  self->state.expected = expected;
  return {
    [=](const cafshm::pool_frame& frame, uint32_t n) {
      self->state.reader->open(self, frame).then(
        [=](cafshm::frame_view&& view) {
          if (!frame_is_intact(view.chars(), n))
            ++self->state.damaged;
          view.release(); // the block goes back to the producer's pool
          if (++self->state.received == self->state.expected) {
            std::cout << "consumer received " << self->state.received << " frames, "
                      << self->state.damaged << " damaged" << std::endl;
            self->quit();
          }
        },
        [=](caf::error& err) {
          std::cerr << "consumer: " << cafshm::describe(err) << "\n";
          self->quit(err);
        });
    },
  };
}
// [/readme:consumer]

// [readme:producer]
// The producer: finds the consumer by name, makes a pool shared with its process, then loans a
// block, writes a frame into it and sends it, as fast as blocks come back.
struct producer_state {
  cafshm::pool pool;
  caf::actor consumer;
  uint32_t next = 1;
  std::vector<cafshm::pool::loan> returned; // at the end: every block back from the consumer
};

caf::behavior producer(caf::stateful_actor<producer_state>* self, cafshm::client* me,
                       example_config* cfg) {
  auto send_next = [=] {
    self->state.pool.get_loan(self).then(
      [=](cafshm::pool::loan&& loan) {
        if (self->state.next > cfg->frames) { // all sent: wait until every block came back
          self->state.returned.push_back(std::move(loan));
          if (self->state.returned.size() == self->state.pool.count())
            self->quit(); // now the pool may close
          else
            self->send(self, next_atom::value);
          return;
        }
        uint32_t n = self->state.next++;
        for (size_t i = 0; i + sizeof(n) <= loan.size(); i += sizeof(n))
          std::memcpy(loan.data() + i, &n, sizeof(n));
        auto length = loan.size();
        auto& dest = self->state.consumer;
        self->send(dest, self->state.pool.seal(std::move(loan), length, dest), n);
        self->send(self, next_atom::value);
      },
      [=](caf::error& err) { self->quit(err); });
  };
  self->send(self, find_atom::value);
  return {
    [=](find_atom) {
      me->find_actor(self, cfg->consumer_name).then(
        [=](cafshm::published_actor&& found) {
          self->state.consumer = found.actor;
          cafshm::pool_options opts{cfg->blocks, cfg->frame_bytes, {found.process}};
          cafshm::pool::create(self, *me, opts).then(
            [=](cafshm::pool&& made) {
              self->state.pool = std::move(made);
              send_next();
            },
            [=](caf::error& err) { self->quit(err); });
        },
        [=](caf::error&) { // not published yet: ask again shortly
          self->delayed_send(self, std::chrono::milliseconds(50), find_atom::value);
        });
    },
    [=](next_atom) { send_next(); },
  };
}
// [/readme:producer]

} // namespace

int main(int argc, char** argv) {
  example_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << "pool example: " << to_string(err) << "\n";
    return 2;
  }
  if (cfg.cli_helptext_printed)
    return 0;
  // [readme:connect]
  cafshm::settings s;
  s.role = cafshm::role::client;   // the engine runs in cafshmd
  auto engine = cafshm::parse_endpoint(cfg.engine);
  if (!engine) {
    std::cerr << "--engine: expected HOST:PORT, got " << cfg.engine << "\n";
    return 2;
  }
  s.client.engine = *engine;       // or client.engine in a YAML file
  cafshm::module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto me = cafshm::client::connect(sys, cfg.role); // registers as "producer" or "consumer"
  // [/readme:connect]
  if (!me) {
    std::cerr << "pool example: " << cafshm::describe(me.error()) << "\n";
    return 1;
  }
  if (cfg.role == "consumer") {
    auto actor = sys.spawn(consumer, &*me, cfg.frames);
    // [readme:publish]
    if (auto ok = me->publish(actor, cfg.consumer_name); !ok) { // findable by name
      std::cerr << "pool example: " << cafshm::describe(ok.error()) << "\n";
      return 1;
    }
    // [/readme:publish]
    std::cout << "consumer ready" << std::endl;
    sys.await_all_actors_done();
    std::cout << "consumer done" << std::endl;
    return 0;
  }
  if (cfg.role != "producer") {
    std::cerr << "--role: producer or consumer\n";
    return 2;
  }
  sys.spawn(producer, &*me, &cfg);
  sys.await_all_actors_done();
  std::cout << "producer sent " << cfg.frames << " frames" << std::endl;
  return 0;
}
