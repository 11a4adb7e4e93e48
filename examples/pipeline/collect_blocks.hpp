// The end of a stage that sends frames from a cafshm::pool: waiting until every block came back
// from downstream (released, or given back because the receiver went down), so that the pool
// closes only when no receiver reads from it any more.
#pragma once

#include <functional>
#include <vector>

#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>

#include "cafshm/pool.hpp"

namespace pipeline {

/// Loans every block of `pool` into `held` as it comes back (free ones at once, the others
/// through `self` when they return), then calls `done` once; `failed` if a loan fails. `pool`
/// and `held` must live as long as `self` (e.g. in its state); nothing else may loan from
/// `pool` meanwhile.
void collect_blocks(caf::event_based_actor* self, cafshm::pool& pool,
                    std::vector<cafshm::pool::loan>& held, std::function<void()> done,
                    std::function<void(caf::error&)> failed);

} // namespace pipeline
