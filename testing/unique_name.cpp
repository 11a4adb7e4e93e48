#include "testing/unique_name.hpp"

#include <atomic>

#include <unistd.h>

namespace cafshm::test {

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

} // namespace cafshm::test
