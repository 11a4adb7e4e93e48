// The messages between the stages (all ordinary CAF messages). Upstream means towards the
// producer.
//
//   hello   (hello_atom, uint8_t role, actor stage, cafshm::process_id) -> cafshm::process_id
//           An upstream stage (role: pipeline::role of the sender) introduces itself and its
//           process; the downstream stage monitors it and answers with its own process, with
//           which shm mode shares the sender's pool. In caf mode both are process_id{} (unused).
//   frame   (frame_atom, uint32_t index, cafshm::pool_frame)              shm
//           Frame `index` in a block of the sender's cafshm::pool (shared for reading with the
//           receiver's process). The receiver opens it with its cafshm::pool_reader, which maps
//           each block on first sight, and releases the frame_view when done: that gives the
//           block back to the sender's pool, whose loans wait for it (the pool's back-pressure).
//           Blocks sealed for a receiver that went down come back by themselves.
//           (frame_atom, uint32_t index, std::vector<char>)               caf
//           Frame `index` in the message.
//           (frame_atom, uint32_t index, cafshm::block_ref)               shm, sink behind a
//           second engine: the transformer's transmitted copy of gray frame `index`, a block of
//           the sink's engine that the sink now owns (it maps, checks and frees it).
//   credit  (credit_atom)
//           The receiver is done with one frame: the sender may have one more in flight (at
//           most --pool per hop). Only where no pool counts for the sender: caf mode, and the
//           sink behind a second engine to the transformer (one transmitted gray frame done).
//   announce (announce_atom, uint32_t index, uint64_t gray checksum, int64_t produced_ns)
//           producer -> sink: what the gray image of frame `index` must hash to; produced_ns is
//           steady_clock time when the producer started generating it.
//   flush   (flush_atom) -> ready_atom
//           producer -> sink after its last announce: answered after every earlier announce was
//           handled. The sink ends only after it answered (or the producer went down).
#pragma once

#include <caf/atom.hpp>

namespace pipeline {

using hello_atom = caf::atom_constant<caf::atom("pl_hello")>;
using ready_atom = caf::atom_constant<caf::atom("pl_ready")>;
using frame_atom = caf::atom_constant<caf::atom("pl_frame")>;
using credit_atom = caf::atom_constant<caf::atom("pl_credit")>;
using announce_atom = caf::atom_constant<caf::atom("pl_announc")>;
using flush_atom = caf::atom_constant<caf::atom("pl_flush")>;
using start_atom = caf::atom_constant<caf::atom("pl_start")>; // local: main -> producer

} // namespace pipeline
