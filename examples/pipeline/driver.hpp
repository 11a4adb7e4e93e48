// The driver: starts sink, transformer and producer (this same program with --role), wires them
// up through the ports their "ready PORT" lines announce, waits for the sink's result, makes sure
// every stage exited successfully, and prints
//   pipeline transport=T frames=N fps=X GBps=Y
// If anything fails or the deadline passes, it kills and reaps every stage and exits 1.
#pragma once

#include "options.hpp"

namespace pipeline {

int run_driver(options opts);

} // namespace pipeline
