// The three stage processes. Each is main() of a process the driver started: it sets up (engine,
// pool, links to the downstream stages, publishing its actor and printing "ready PORT" on
// stdout), lets its actor stream every frame, cleans up and returns the exit code.
#pragma once

#include "options.hpp"

namespace pipeline {

/// Generates frames into its RGB pool, announces each frame's gray checksum to the sink and
/// sends the frame to the transformer; writes a buffer again only after it was released.
int run_producer(const options& opts);

/// Converts every RGB frame to gray into its own gray pool, sends it to the sink and releases
/// the RGB buffer to the producer.
int run_transformer(const options& opts);

/// Verifies the checksum of every gray frame it receives against the producer's announcement,
/// releases the buffer to the transformer, and prints
/// "result frames=N verified=V mismatches=M elapsed_ns=T" when all N frames were handled.
int run_sink(const options& opts);

} // namespace pipeline
