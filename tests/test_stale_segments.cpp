// The sweep every test process and fuzz target runs at its start (support/stale_segments.hpp):
// it removes test and fuzz segments whose process is gone, and nothing else.
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "support/stale_segments.hpp"

namespace {

using cafshm::test::remove_stale_test_segments;
using cafshm::test::test_segment_owner;

// The pid of a child that has exited and been reaped: no process has it (until the kernel hands
// it out again, which takes a full round of the pid space).
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0)
    ::_exit(0);
  REQUIRE(pid > 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return pid;
}

bool exists(const std::string& name) {
  return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0;
}

// Creates segment `name`; removes it on destruction if it is still there.
struct segment {
  std::string name;
  explicit segment(std::string n) : name(std::move(n)) {
    int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    REQUIRE_MESSAGE(fd >= 0, "cannot create " << name);
    ::close(fd);
  }
  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;
  ~segment() { ::shm_unlink(("/" + name).c_str()); }
};

} // namespace

TEST_CASE("test and fuzz segment names carry the pid of their process") {
  CHECK(test_segment_owner("cafshm-test-mp-1234-7.data") == pid_t{1234});
  CHECK(test_segment_owner("cafshm-test-pipe-a-1234-7.admin") == pid_t{1234});
  CHECK(test_segment_owner("cafshm-test-seg-1234-7") == pid_t{1234});
  CHECK(test_segment_owner("cafshm-test-x-12-34-5.data") == pid_t{34});
  CHECK(test_segment_owner("cafshm-fuzz-remote-1234.data") == pid_t{1234});
  CHECK(test_segment_owner("cafshm-fuzz-mm-1234.admin") == pid_t{1234});
  CHECK(test_segment_owner("cafshm-test-inbox-1234-7.inbox-3") == pid_t{1234});
  // Anything else is not a test's: the demo's engine, other engines, other programs.
  CHECK(test_segment_owner("cafshm-test-mm-1234-7.data.12") == pid_t{1234}); // added segments
  CHECK(test_segment_owner("cafshm-fuzz-mm-1234.data.3") == pid_t{1234});
  CHECK(test_segment_owner("cafshm-fuzz-reqinbox-1234.inbox-0") == pid_t{1234}); // inboxes
  CHECK(test_segment_owner("cafshm-fuzz-reqinbox-1234.inbox-12") == pid_t{1234});
  CHECK_FALSE(test_segment_owner("cafshm-test-mm-1234-7.data.x"));
  CHECK_FALSE(test_segment_owner("cafshm-pipeline.data"));
  CHECK_FALSE(test_segment_owner("cafshm-two-node-a.admin"));
  CHECK_FALSE(test_segment_owner("cafshm-soak-1234.data"));
  CHECK_FALSE(test_segment_owner("cafshm-fuzz-remote-1234"));
  CHECK_FALSE(test_segment_owner("cafshm-test-1234"));
  CHECK_FALSE(test_segment_owner("x-cafshm-test-mp-1234-7.data"));
}

TEST_CASE("the sweep removes the segments of dead test processes, and only those") {
  auto dead = std::to_string(dead_pid());
  auto alive = std::to_string(::getpid());
  segment stale_test{"cafshm-test-stale-" + dead + "-1.data"};
  segment stale_fuzz{"cafshm-fuzz-stale-" + dead + ".admin"};
  segment stale_added{"cafshm-test-stale-" + dead + "-1.data.5"}; // a data segment an arena added
  segment live_test{"cafshm-test-stale-" + alive + "-1.data"};
  segment other{"cafshm-stale-other-" + dead + ".data"};

  CHECK(remove_stale_test_segments() >= 3);
  CHECK_FALSE(exists(stale_test.name));
  CHECK_FALSE(exists(stale_added.name));
  CHECK_FALSE(exists(stale_fuzz.name));
  CHECK(exists(live_test.name));
  CHECK(exists(other.name));
}
