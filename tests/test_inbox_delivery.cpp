// CAF messages from another process through a shared-memory inbox into a local actor
// (plugin/src/fastpath/inbox_delivery.hpp): they arrive complete and in order, and a record
// that is no message is counted and dropped without stopping the ones after it.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/module.hpp"
#include "fastpath/inbox_delivery.hpp"
#include "testing/child_process.hpp"
#include "test_names.hpp"

using namespace cafshm;
using namespace cafshm::fastpath;
using namespace std::chrono_literals;
using cafshm::test::child_process;
using cafshm_test::unique_name;

namespace {

using frame_atom = caf::atom_constant<caf::atom("frame")>;

std::string peer_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-inbox-peer";
}

struct inbox_guard {
  std::string engine;
  uint32_t slot;
  ~inbox_guard() { inbox::remove(engine, slot); }
};

} // namespace

TEST_CASE("messages of another process arrive through the inbox at a local actor, in order") {
  auto engine = unique_name("cafshm-test-inbox-caf");
  inbox_guard guard{engine, 1};
  caf::actor_system_config cfg;
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto in = inbox::create(engine, 1);
  REQUIRE_OK(in);
  constexpr uint32_t count = 500;
  caf::scoped_actor self{sys};
  caf::actor test_actor = self;
  // Tells the test each index and whether the block_ref came through intact.
  auto target = sys.spawn([test_actor](caf::event_based_actor* a) -> caf::behavior {
    return {[=](frame_atom, uint32_t i, block_ref ref) {
      bool ok = ref == block_ref{i + 1, i, 7, 64ull * i};
      a->send(test_actor, caf::ok_atom::value, i, ok);
    }};
  });
  std::vector<uint32_t> order;
  {
    inbox_receiver receiver{sys, *in, target};
    child_process sender{{peer_bin(), "--mode", "caf-send", "--inbox", in->name(), "--slot", "3",
                          "--count", std::to_string(count), "--garbage", "yes"}};
    bool all_ok = true;
    for (uint32_t n = 0; n < count; ++n) {
      bool got = false;
      self->receive(
        [&](caf::ok_atom, uint32_t i, bool intact) {
          order.push_back(i);
          all_ok = all_ok && intact;
          got = true;
        },
        caf::after(std::chrono::seconds{20}) >> [] {});
      if (!got) {
        auto said = sender.read_line(1s);
        FAIL("message " << n << " did not arrive within 20 s; the sender "
                        << (sender.running() ? "still runs" : "has ended") << " and said: "
                        << said.value_or("nothing") << "; the receiver delivered "
                        << receiver.delivered() << ", dropped " << receiver.malformed());
      }
    }
    CHECK(all_ok);
    CHECK(sender.wait_for_line("sent ", 20s) == std::to_string(count));
    CHECK(receiver.delivered() == count);
    CHECK(receiver.malformed() == 1);
  } // the receiver thread stops here
  for (uint32_t i = 0; i < count; ++i)
    REQUIRE(order[i] == i);
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}
