// End-to-end tests of the pipeline demo (examples/pipeline, build/bin/cafshm-pipeline): producer,
// transformer and sink as three processes, with frames in cafshm blocks (shm) or in CAF messages
// (caf), against a cafshmd of the test's own. Every run must verify every frame, leave the
// engine's accounting empty and leave no stage process behind; injected faults must fail the
// run. Nothing here measures time.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing/child_process.hpp"
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

std::string pipeline_bin() {
  return std::string{CAFSHM_BIN_DIR} + "/cafshm-pipeline";
}

struct run_result {
  std::optional<int> status; // wait status; nullopt if the run outlived its deadline (killed)
  std::vector<std::string> lines; // stdout and stderr

  bool succeeded() const {
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  }
  bool failed_cleanly() const { // exited with an error code (not killed, not hanging)
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) != 0;
  }
  bool mentions(const std::string& text) const {
    for (const auto& line : lines)
      if (line.find(text) != std::string::npos)
        return true;
    return false;
  }
  std::string output() const {
    std::string result;
    for (const auto& line : lines)
      result += line + "\n";
    return result;
  }
};

// Runs cafshm-pipeline with `args` to its end (stderr merged into stdout). A run that outlives
// `deadline` is killed by child_process's destructor and reported with an empty status.
run_result run_pipeline(const std::vector<std::string>& args,
                        std::chrono::seconds deadline = 120s) {
  // This process adopts orphans (see stages_left_behind), so the stages of a driver that
  // exited without reaping them would show up as our children.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  std::vector<std::string> argv{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", pipeline_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  child_process driver{argv};
  run_result result;
  const auto end = std::chrono::steady_clock::now() + deadline;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(end
                                                                 - std::chrono::steady_clock::now());
  };
  while (left().count() > 0) {
    auto line = driver.read_line(left());
    if (!line)
      break; // EOF: the driver and its stages closed their output
    result.lines.push_back(std::move(*line));
  }
  if (left().count() > 0)
    result.status = driver.wait(left());
  return result;
}

// cafshm-pipeline processes that are children of this test process: stages that a driver left
// behind (reparented to us, the subreaper). Reaps them.
int stages_left_behind() {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    std::ifstream in{entry.path() / "stat"};
    std::string stat;
    if (!std::getline(in, stat))
      continue;
    // "pid (comm) state ppid ..."; comm may contain spaces, so parse from the last ')'
    auto open = stat.find('(');
    auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos)
      continue;
    auto comm = stat.substr(open + 1, close - open - 1);
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2)
      continue;
    if (comm == "cafshm-pipeline" && ppid == ::getpid()) {
      ++count;
      auto pid = static_cast<pid_t>(std::stoi(stat.substr(0, open)));
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  return count;
}

// The engine holds nothing but the registration of the client asking.
bool engine_is_empty(const engine_stats& st) {
  return st.blocks == 0 && st.grants == 0 && st.names == 0 && st.processes == 1
         && st.free_bytes == st.arena_bytes;
}

std::string describe_stats(const engine_stats& st) {
  return "blocks=" + std::to_string(st.blocks) + " grants=" + std::to_string(st.grants)
         + " processes=" + std::to_string(st.processes) + " free=" + std::to_string(st.free_bytes)
         + "/" + std::to_string(st.arena_bytes);
}

// Runs the pipeline and checks that it verified all `frames` frames and printed exactly its
// one result line, and that nothing is left behind.
void check_run(const std::vector<std::string>& args, const std::string& transport,
               uint32_t frames) {
  auto r = run_pipeline(args);
  INFO("output:\n" << r.output());
  REQUIRE(r.succeeded());
  REQUIRE(r.lines.size() == 1);
  auto prefix = "pipeline transport=" + transport + " frames=" + std::to_string(frames) + " fps=";
  CHECK(r.lines[0].rfind(prefix, 0) == 0);
  CHECK(r.lines[0].find(" GBps=") != std::string::npos);
  CHECK(stages_left_behind() == 0);
}

// Right after a successful run (every stage unregistered before exiting), the accounting is
// back to empty at once.
void check_engine_empty_now(const daemon_process& d) {
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "test-pipeline");
  REQUIRE(c);
  auto st = c->stats();
  REQUIRE(st);
  INFO(describe_stats(*st));
  CHECK(engine_is_empty(*st));
}

} // namespace

TEST_CASE("pipeline: shm transport verifies every frame and returns all memory") {
  daemon_process d{unique_name("cafshm-test-pipe"), "256MiB"};
  REQUIRE(d.ready());
  check_run({"--transport", "shm", "--frames", "20", "--width", "640", "--height", "480",
             "--engine", d.address_text()},
            "shm", 20);
  check_engine_empty_now(d);
  // An odd frame size (rows of 99 bytes) and a pool of one buffer per stage.
  check_run({"--transport", "shm", "--frames", "20", "--width", "33", "--height", "7", "--pool",
             "1", "--engine", d.address_text()},
            "shm", 20);
  check_engine_empty_now(d);
}

TEST_CASE("pipeline: caf transport verifies every frame") {
  check_run({"--transport", "caf", "--frames", "20", "--width", "640", "--height", "480"}, "caf",
            20);
  check_run({"--transport", "caf", "--frames", "20", "--width", "33", "--height", "7", "--pool",
             "1"},
            "caf", 20);
}

TEST_CASE("pipeline: both transports at the default 1920x1080 frame size") {
  daemon_process d{unique_name("cafshm-test-pipe"), "256MiB"};
  REQUIRE(d.ready());
  check_run({"--transport", "shm", "--frames", "20", "--engine", d.address_text()}, "shm", 20);
  check_engine_empty_now(d);
  check_run({"--transport", "caf", "--frames", "20", "--engine", d.address_text()}, "caf", 20);
  check_engine_empty_now(d); // caf mode never registers with the engine
}

TEST_CASE("pipeline: a corrupted gray frame fails the run") {
  daemon_process d{unique_name("cafshm-test-pipe"), "256MiB"};
  REQUIRE(d.ready());
  for (std::string transport : {"shm", "caf"}) {
    CAPTURE(transport);
    auto r = run_pipeline({"--transport", transport, "--frames", "10", "--width", "64",
                           "--height", "48", "--fault", "corrupt", "--engine", d.address_text()});
    INFO("output:\n" << r.output());
    CHECK(r.failed_cleanly());
    CHECK(r.mentions("1 of 10 frames failed their checksum"));
    CHECK_FALSE(r.mentions("pipeline transport="));
    CHECK(stages_left_behind() == 0);
  }
  check_engine_empty_now(d);
}

TEST_CASE("pipeline: a stage that dies fails the run and leaves nothing behind") {
  daemon_process d{unique_name("cafshm-test-pipe"), "256MiB"};
  REQUIRE(d.ready());
  for (std::string transport : {"shm", "caf"}) {
    CAPTURE(transport);
    auto r = run_pipeline({"--transport", transport, "--frames", "40", "--width", "320",
                           "--height", "240", "--fault", "crash", "--engine", d.address_text()});
    INFO("output:\n" << r.output());
    CHECK(r.failed_cleanly());
    CHECK(r.mentions("the transformer was killed by signal 9"));
    CHECK_FALSE(r.mentions("pipeline transport="));
    CHECK(stages_left_behind() == 0);
  }
  // The engine reclaims what the killed stages held when it notices they are gone.
  client_system cs;
  auto c = client::connect(cs.sys, d.address(), "test-pipeline");
  REQUIRE(c);
  CHECK(eventually(*c, 10s, engine_is_empty));
}

TEST_CASE("pipeline: without an engine the shm transport fails with a message") {
  daemon_process d{unique_name("cafshm-test-pipe"), "256MiB"};
  REQUIRE(d.ready());
  auto port = d.port();
  d.stop(); // a port that nobody listens on any more
  auto r = run_pipeline({"--transport", "shm", "--frames", "5", "--width", "64", "--height",
                         "48", "--engine", "127.0.0.1:" + std::to_string(port)});
  INFO("output:\n" << r.output());
  CHECK(r.failed_cleanly());
  CHECK(r.mentions("cannot register with the engine"));
  CHECK(stages_left_behind() == 0);
}

TEST_CASE("pipeline: the sink behind a second engine gets every frame by transmit") {
  const std::string no_cache = "remote:\n  chunk: 256KiB\n  window: 4\n  cache: 0\n";
  daemon_process a{unique_name("cafshm-test-pipe-a"), "128MiB", 0, no_cache};
  daemon_process b{unique_name("cafshm-test-pipe-b"), "128MiB", 0, no_cache};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  check_run({"--transport", "shm", "--frames", "20", "--width", "640", "--height", "480",
             "--engine", a.address_text(), "--sink-engine", b.address_text()},
            "shm", 20);
  check_engine_empty_now(a);
  check_engine_empty_now(b);
  // The caf transport has no engines to put a sink behind.
  auto r = run_pipeline({"--transport", "caf", "--frames", "5", "--sink-engine", b.address_text()});
  CHECK_FALSE(r.succeeded());
}
