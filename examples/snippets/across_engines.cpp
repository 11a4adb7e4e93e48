// Fragments that README.md shows for sending blocks to another engine. Compiled with the
// examples so that the README's code keeps compiling; tests/test_remote.cpp runs the same calls.
// The regions between "// [readme:...]" lines appear verbatim in README.md (a test compares).
#include <iostream>

#include <caf/actor.hpp>

#include "cafshm/client.hpp"

namespace readme {

// Sends `ref` to the process "sink" of the engine at 10.0.0.2:4243 and tells `sink_actor`.
void transmit_to_sink(cafshm::client& me, const cafshm::block_ref& ref,
                      const caf::actor& sink_actor) {
  // [readme:transmit]
  cafshm::transmit_target to;
  to.process = "sink";                  // a process registered at the other engine
  to.deliver_to = sink_actor;           // gets (delivered_atom, block_ref) when it is complete
  auto receipt = me.transmit(ref, "10.0.0.2:4243", to); // or a name from remote.peers
  if (receipt)                          // receipt->remote: the new block there
    std::cout << "cache hit: " << receipt->cache_hit << "\n"; // true: no payload moved
  // [/readme:transmit]
}

// Lets processes on linked engines read `ref`; `other` is a client of another engine.
void export_for_reading(cafshm::client& me, cafshm::client& other,
                        const cafshm::block_ref& ref) {
  // [readme:export]
  me.export_block(ref);                 // processes on linked engines may now read it:
  auto bytes = other.read(ref, 0, 64);  // through their engine and its cache
  // [/readme:export]
  (void) bytes;
}

} // namespace readme
