// The typed messaging interface of the communications engine. Every request except stats and
// register carries the requester's session; every failure is a cafshm error (error.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/engine_stats.hpp"
#include "cafshm/protocol.hpp"

namespace cafshm {

using register_atom = caf::atom_constant<caf::atom("shm_reg")>;
using unregister_atom = caf::atom_constant<caf::atom("shm_unreg")>;
using allocate_atom = caf::atom_constant<caf::atom("shm_alloc")>;
using free_atom = caf::atom_constant<caf::atom("shm_free")>;
using write_atom = caf::atom_constant<caf::atom("shm_write")>;
using read_atom = caf::atom_constant<caf::atom("shm_read")>;
using copy_atom = caf::atom_constant<caf::atom("shm_copy")>;
using share_atom = caf::atom_constant<caf::atom("shm_share")>;
using revoke_atom = caf::atom_constant<caf::atom("shm_revoke")>;
using transfer_atom = caf::atom_constant<caf::atom("shm_xfer")>;
using name_atom = caf::atom_constant<caf::atom("shm_name")>;
using lookup_atom = caf::atom_constant<caf::atom("shm_lookup")>;
using remove_atom = caf::atom_constant<caf::atom("shm_remove")>;
using attach_atom = caf::atom_constant<caf::atom("shm_attach")>;
using detach_atom = caf::atom_constant<caf::atom("shm_detach")>;
using process_atom = caf::atom_constant<caf::atom("shm_proc")>;
using stats_atom = caf::atom_constant<caf::atom("shm_stats")>;
using done_atom = caf::atom_constant<caf::atom("shm_done")>;

/// Registry key under which a module in engine role puts its engine.
constexpr caf::atom_value engine_registry_key = caf::atom("cafshm");

// clang-format off
using engine_actor = caf::typed_actor<
  // name, quota (0 = engine default), pid -> registration. The sender is monitored: when it goes
  // down, everything the process holds is reclaimed.
  caf::replies_to<register_atom, std::string, uint64_t, int32_t>::with<registration>,
  caf::replies_to<unregister_atom, session>::with<done_atom>,
  caf::replies_to<allocate_atom, session, uint64_t>::with<block_ref>,
  caf::replies_to<free_atom, session, block_ref>::with<done_atom>,
  // offset, bytes
  caf::replies_to<write_atom, session, block_ref, uint64_t, std::vector<char>>::with<done_atom>,
  // offset, length -> bytes
  caf::replies_to<read_atom, session, block_ref, uint64_t, uint64_t>::with<std::vector<char>>,
  // source, destination, ranges
  caf::replies_to<copy_atom, session, block_ref, block_ref, std::vector<copy_range>>
    ::with<done_atom>,
  // grantee slot, access_mode as uint8_t
  caf::replies_to<share_atom, session, block_ref, uint32_t, uint8_t>::with<done_atom>,
  caf::replies_to<revoke_atom, session, block_ref, uint32_t>::with<done_atom>,
  // new owner's slot
  caf::replies_to<transfer_atom, session, block_ref, uint32_t>::with<block_ref>,
  caf::replies_to<name_atom, session, block_ref, std::string>::with<done_atom>,
  caf::replies_to<lookup_atom, session, std::string>::with<block_ref>,
  caf::replies_to<remove_atom, session, std::string>::with<done_atom>,
  // access_mode as uint8_t -> permission to map the block's pages
  caf::replies_to<attach_atom, session, block_ref, uint8_t>::with<view_lease>,
  caf::replies_to<detach_atom, session, block_ref>::with<done_atom>,
  // process name -> slot of the first live process registered under it
  caf::replies_to<process_atom, session, std::string>::with<uint32_t>,
  caf::replies_to<stats_atom>::with<engine_stats>>;
// clang-format on

class memory_manager;
struct engine_settings;

/// Spawns an engine actor over `mm` (hidden, so that it never delays system shutdown).
/// `liveness_interval` > 0 makes it poll the pids of registered local processes.
engine_actor spawn_engine(caf::actor_system& sys, std::shared_ptr<memory_manager> mm,
                          const engine_settings& settings);

} // namespace cafshm
