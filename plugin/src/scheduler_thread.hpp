// Whether the calling thread is the only worker of an actor system's scheduler: a blocking wait
// there stops every actor of the system, including the ones that would answer it.
#pragma once

#include <caf/fwd.hpp>
#include <caf/error.hpp>

namespace cafshm {

bool on_sole_scheduler_thread(caf::actor_system& sys) noexcept;

/// errc::would_deadlock naming `call`, or no error if the calling thread may block.
caf::error check_may_block(caf::actor_system& sys, const char* call);

} // namespace cafshm
