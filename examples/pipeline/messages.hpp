// The messages between the stages (all ordinary CAF messages; frames travel in them only in
// caf mode). Upstream means towards the producer.
//
//   hello   (hello_atom, uint8_t role, actor stage, uint32_t cafshm slot) -> uint32_t own slot
//           An upstream stage (role: pipeline::role of the sender) introduces itself; the
//           downstream stage monitors it. Slots are 0 in caf mode.
//   pool    (pool_atom, std::vector<cafshm::block_ref>)         -> ready_atom
//           shm: the upstream stage's buffer blocks, already shared for reading; the receiver
//           maps each once and keeps the view. caf: an empty list.
//   frame   (frame_atom, uint32_t index, uint32_t slot, cafshm::block_ref)    shm
//           (frame_atom, uint32_t index, uint32_t slot, std::vector<char>)    caf
//           Frame `index` in buffer `slot` of the sender's pool (shm) or in the message (caf).
//   release (release_atom, uint32_t slot)
//           The receiver is done with buffer `slot`: one credit back to the sender.
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
using pool_atom = caf::atom_constant<caf::atom("pl_pool")>;
using ready_atom = caf::atom_constant<caf::atom("pl_ready")>;
using frame_atom = caf::atom_constant<caf::atom("pl_frame")>;
using release_atom = caf::atom_constant<caf::atom("pl_release")>;
using announce_atom = caf::atom_constant<caf::atom("pl_announc")>;
using flush_atom = caf::atom_constant<caf::atom("pl_flush")>;
using start_atom = caf::atom_constant<caf::atom("pl_start")>; // local: main -> producer

} // namespace pipeline
