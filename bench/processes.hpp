// The benchmark's processes: its helper roles and cafshmd, started through the shared testing
// library (testing/), with the engine configuration of benchmark runs.
#pragma once

#include <string>

#include "testing/child_process.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

namespace bench {

using cafshm::test::child_process;
using cafshm::test::daemon_options;
using cafshm::test::daemon_process;
using cafshm::test::unique_name;

/// A cafshmd of a benchmark run: `arena`, room for many blocks and grants, and `extra_yaml`
/// (top-level sections such as `remote:`) as given.
inline daemon_options engine_options(const std::string& bin_dir, const std::string& arena,
                                     const std::string& extra_yaml = {}) {
  daemon_options o;
  o.arena = arena;
  o.liveness_interval = "200ms";
  o.engine_yaml = "  max_blocks: 8192\n  max_grants: 4096\n";
  o.extra_yaml = extra_yaml;
  o.bin_dir = bin_dir;
  return o;
}

} // namespace bench
