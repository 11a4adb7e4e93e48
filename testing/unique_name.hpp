// Names of engines, segments and files that a test or benchmark run creates: unique per process
// and call, so that runs in parallel (`ctest -j2`) never collide.
#pragma once

#include <string>

namespace cafshm::test {

/// "<prefix>-<pid>-<n>".
std::string unique_name(const std::string& prefix);

} // namespace cafshm::test
