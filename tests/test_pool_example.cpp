// examples/pool (build/bin/cafshm-pool-example) end to end: a cafshmd, a consumer and a producer
// as three processes. The consumer publishes its actor at the engine, the producer finds it
// there and sends frames through a pool; both are event-based actors. Run once with CAF's
// default scheduler and once with one scheduler thread (sharing, max-threads=1), where a
// blocking call inside an actor would deadlock. Every run must leave the engine as it found it.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "cafshm/client.hpp"
#include "support/client_system.hpp"
#include "testing/daemon_process.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using test::child_process;
using test::client_system;
using test::daemon_process;
using test::eventually;
using test::unique_name;

namespace {

std::string example_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-pool-example";
}

void run_example(const std::vector<std::string>& scheduler_args) {
  daemon_process d{unique_name("cafshm-test-pool-example")};
  REQUIRE(d.ready());
  client_system cs;
  auto observer = client::connect(cs.sys, d.address(), "observer");
  REQUIRE(observer);
  auto before = observer->stats();
  REQUIRE(before);

  auto args = [&](const std::string& role) {
    std::vector<std::string> argv{example_bin(), "--role=" + role,
                                  "--engine=" + d.address_text(),
                                  "--consumer-name=" + unique_name("consumer"),
                                  "--frames=200", "--blocks=3", "--frame-bytes=65536"};
    argv.insert(argv.end(), scheduler_args.begin(), scheduler_args.end());
    return argv;
  };
  auto consumer_args = args("consumer");
  auto producer_args = args("producer");
  producer_args[3] = consumer_args[3]; // the same published name
  child_process consumer{consumer_args};
  REQUIRE(consumer.wait_for_line("consumer ready", 20s));
  child_process producer{producer_args};

  auto received = consumer.wait_for_line("consumer received ", 60s);
  REQUIRE(received);
  CHECK(*received == "200 frames, 0 damaged");
  REQUIRE(producer.wait_for_line("producer sent 200 frames", 60s));
  auto producer_status = producer.wait(20s);
  auto consumer_status = consumer.wait(20s);
  REQUIRE(producer_status);
  REQUIRE(consumer_status);
  CHECK(WIFEXITED(*producer_status));
  CHECK(WEXITSTATUS(*producer_status) == 0);
  CHECK(WIFEXITED(*consumer_status));
  CHECK(WEXITSTATUS(*consumer_status) == 0);
  // Both processes are gone: their registrations, blocks and views with them.
  CHECK(eventually(*observer, 10s, [&](const engine_stats& st) {
    return st.processes == before->processes && st.blocks == before->blocks
           && st.free_bytes == before->free_bytes;
  }));
}

} // namespace

TEST_CASE("pool example: two processes with CAF's default scheduler") {
  run_example({});
}

TEST_CASE("pool example: two processes on one scheduler thread each") {
  run_example({"--scheduler.policy=sharing", "--scheduler.max-threads=1"});
}
