// Messages between the tests of actor messages over inboxes and cafshm-actor-peer.
#pragma once

#include <caf/atom.hpp>

namespace actor_peer {
using ping_atom = caf::atom_constant<caf::atom("ap_ping")>;
using pong_atom = caf::atom_constant<caf::atom("ap_pong")>;
using seq_atom = caf::atom_constant<caf::atom("ap_seq")>;
using report_atom = caf::atom_constant<caf::atom("ap_report")>;
using ask_atom = caf::atom_constant<caf::atom("ap_ask")>;
using quit_atom = caf::atom_constant<caf::atom("ap_quit")>;
using hold_atom = caf::atom_constant<caf::atom("ap_hold")>;
using relay_atom = caf::atom_constant<caf::atom("ap_relay")>;
} // namespace actor_peer
