// A process for the multi-process tests. Modes:
//   receiver --engine HOST:PORT --name NAME
//       registers, publishes an actor on a free port and prints "ready PORT SLOT". The actor
//       answers (verify, ref, owned) with the XXH3 of the block read in place through a view
//       (freeing the block afterwards when owned), and (probe, ref) with the error codes that a
//       view and an engine read of the block yield (0 = allowed).
//   publisher --engine HOST:PORT --name NAME --actor ACTOR
//       registers, publishes an actor at the engine as ACTOR (client::publish) that answers
//       (ping) with this process's slot, prints "published SLOT" and runs until killed.
//   writer --engine HOST:PORT --name NAME --blocks N --size BYTES
//       registers, allocates N blocks, names the first, grants read on the second to the process
//       "test", maps all read-write, prints "writing SLOT" and overwrites them until killed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "../support/program_options.hpp"
#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"
#include "test_peer_protocol.hpp"

using namespace cafshm;

namespace {

caf::behavior receiver(caf::event_based_actor*, client* me) {
  return {
    [me](verify_atom, const block_ref& ref, bool owned) -> caf::result<uint64_t> {
      auto view = me->map(ref, access_mode::read);
      if (!view)
        return view.error();
      uint64_t hash = XXH3_64bits(view->data(), view->size());
      if (auto ok = me->unmap(std::move(*view)); !ok)
        return ok.error();
      if (owned)
        if (auto ok = me->free(ref); !ok)
          return ok.error();
      return hash;
    },
    [me](probe_atom, const block_ref& ref) {
      auto view = me->map(ref, access_mode::read);
      auto read = me->read(ref, 0, 1);
      auto code = [](const caf::error& e) { return static_cast<uint8_t>(code_of(e)); };
      std::vector<uint8_t> codes{view ? uint8_t{0} : code(view.error()),
                                 read ? uint8_t{0} : code(read.error())};
      // Unmapped before the answer: a view dropped instead would be unmapped by a message the
      // engine may see only after the asker's next request (e.g. a revoke, refused while the
      // view is open).
      if (view)
        if (auto unmapped = me->unmap(std::move(*view)); !unmapped)
          codes.push_back(code(unmapped.error()));
      return codes;
    },
  };
}

int run_receiver(caf::actor_system& sys, client& me) {
  auto handler = sys.spawn(receiver, &me);
  auto port = sys.middleman().publish(handler, 0, "127.0.0.1");
  if (!port) {
    std::cerr << "peer: cannot publish: " << sys.render(port.error()) << "\n";
    return 1;
  }
  std::cout << "ready " << *port << " " << me.id() << std::endl;
  std::string line;
  std::getline(std::cin, line); // runs until stdin closes or the test kills it
  caf::anon_send_exit(handler, caf::exit_reason::user_shutdown);
  return 0;
}

int run_publisher(caf::actor_system& sys, client& me, const std::string& actor_name) {
  auto slot = me.id();
  auto handler = sys.spawn([slot](caf::event_based_actor*) -> caf::behavior {
    return {[slot](ping_atom) { return slot; }};
  });
  if (auto ok = me.publish(handler, actor_name); !ok) {
    std::cerr << "peer: " << describe(ok.error()) << "\n";
    return 1;
  }
  std::cout << "published " << slot << std::endl;
  std::string line;
  std::getline(std::cin, line);
  caf::anon_send_exit(handler, caf::exit_reason::user_shutdown);
  return 0;
}

int run_writer(client& me, int blocks, uint64_t size) {
  std::vector<block_view> views;
  for (int i = 0; i < blocks; ++i) {
    auto ref = me.allocate(size);
    if (!ref) {
      std::cerr << "peer: " << describe(ref.error()) << "\n";
      return 1;
    }
    if (i == 0)
      me.name(*ref, "writer-" + std::to_string(::getpid()));
    if (i == 1)
      if (auto test = me.find_process("test"))
        me.share(*ref, *test, access_mode::read);
    auto view = me.map(*ref, access_mode::read_write);
    if (!view) {
      std::cerr << "peer: " << describe(view.error()) << "\n";
      return 1;
    }
    views.push_back(std::move(*view));
  }
  std::cout << "writing " << me.id() << std::endl;
  for (unsigned char round = 0;; ++round)
    for (auto& v : views)
      std::memset(v.data(), round, v.size());
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cafshm-test-peer receiver|writer --engine HOST:PORT --name NAME ...\n";
    return 2;
  }
  std::string mode = argv[1];
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  settings s;
  s.role = role::client;
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  auto engine = parse_endpoint(test::option(argc, argv, "--engine"));
  if (!engine) {
    std::fprintf(stderr, "test-peer: --engine HOST:PORT expected\n");
    return 2;
  }
  auto me = client::connect(sys, *engine,
                            test::option(argc, argv, "--name", "peer"));
  if (!me) {
    std::cerr << "peer: " << describe(me.error()) << "\n";
    return 1;
  }
  if (mode == "receiver")
    return run_receiver(sys, *me);
  if (mode == "publisher")
    return run_publisher(sys, *me, test::option(argc, argv, "--actor", "published"));
  if (mode == "writer")
    return run_writer(*me, std::stoi(test::option(argc, argv, "--blocks", "4")),
                      std::stoull(test::option(argc, argv, "--size", "65536")));
  std::cerr << "peer: unknown mode " << mode << "\n";
  return 2;
}
