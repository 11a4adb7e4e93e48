// The main of every test executable: removes what killed test runs left in /dev/shm, then runs
// doctest.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "support/stale_segments.hpp"

int main(int argc, char** argv) {
  cafshm::test::remove_stale_test_segments();
  doctest::Context context{argc, argv};
  return context.run();
}
